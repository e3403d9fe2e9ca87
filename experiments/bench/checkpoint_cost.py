"""What a checkpoint costs the training loop: the seconds ``Checkpointer.save`` holds the loop, synchronous
and asynchronous, side by side in one run.

A train-state-like pytree (a float32 "params" block and an ``[N, D]`` bank, as the trainer stores it) is
saved ``--saves`` times in each mode. ``blocking_seconds``: how long ``save`` returns after it was called
(the loop's step time lost to the checkpoint); ``total_seconds``: until the step is committed and its
SHA-256 checksums are written (``Checkpointer.wait``). The asynchronous figure is what the trainer uses
(``config.checkpoint_async``). Prints one JSON object.

  python -m experiments.bench.checkpoint_cost                       # 100k × 1536 bf16 bank (300 MiB)
  python -m experiments.bench.checkpoint_cost --n=1000000 --dim=1536  # wiki1m, SimCSE BERT-base
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from absl import app
from absl import flags


def define_flags():
  flags.DEFINE_integer("n", 100_000, "Bank rows N.")
  flags.DEFINE_integer("dim", 1536, "Bank width D.")
  flags.DEFINE_string("bank_dtype", "bfloat16", "Bank storage dtype.")
  flags.DEFINE_integer("params_mib", 64, "Size of the stand-in parameters, MiB of float32.")
  flags.DEFINE_integer("saves", 3, "Saves per mode (the median is reported).")
  flags.DEFINE_string("directory", None, "Where to write (default: a temporary directory).")


def measure(n: int, dim: int, bank_dtype: str, params_mib: int, saves: int, directory: str) -> dict:
  """``{"sync": {...}, "async": {...}, "blocking_ratio": sync / async}`` (medians over ``saves``)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from prosampler_jax import checkpoint  # pylint: disable=g-import-not-at-top

  key = jax.random.key(0)
  state = {"params": jax.random.normal(key, (params_mib * 2**18,), jnp.float32),
           "bank": jax.random.normal(key, (n, dim), bank_dtype),
           "step": jnp.int32(0)}
  jax.block_until_ready(state)
  host, meta = {"order": np.arange(n, dtype=np.int32)}, {"history": [{"event": "epoch", "epoch": 1}]}
  report = {"n": n, "dim": dim, "bank_dtype": bank_dtype, "params_mib": params_mib,
            "bank_mib": round(n * dim * jnp.dtype(bank_dtype).itemsize / 2**20, 1)}
  for mode in ("sync", "async"):
    ckpt = checkpoint.Checkpointer(os.path.join(directory, mode), max_to_keep=1,
                                   asynchronous=mode == "async")
    blocking, total = [], []
    for step in range(1, saves + 1):
      start = time.perf_counter()
      ckpt.save(step, state, host, meta, {"step": step})
      blocking.append(time.perf_counter() - start)
      ckpt.wait()
      total.append(time.perf_counter() - start)
    ckpt.close()
    assert ckpt.verify(saves) is None
    report[mode] = {"blocking_seconds": round(float(np.median(blocking)), 3),
                    "total_seconds": round(float(np.median(total)), 3)}
  report["blocking_ratio"] = round(report["sync"]["blocking_seconds"] /
                                   max(report["async"]["blocking_seconds"], 1e-6), 1)
  return report


def main(argv):
  del argv
  values = flags.FLAGS
  with tempfile.TemporaryDirectory() as scratch:
    report = measure(values.n, values.dim, values.bank_dtype, values.params_mib, values.saves,
                     values.directory or scratch)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  define_flags()
  app.run(main)
