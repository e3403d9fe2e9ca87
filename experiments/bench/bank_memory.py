"""Embedding-bank memory per device at full scale, for each storage dtype and layout.

For ``run_config.BANK_DTYPES`` × ``parallel.BANK_SHARDINGS`` it lays a bank of N rows and D columns over the
devices as the trainer does (``parallel.bank_sharding``) and reports, side by side, the MiB one device holds
for the bank and those the first device holds for the sampler's float32 copy while a window is sampled
(the feeder's snapshot: what the graph and the walk read). The figures come from the shardings' shard
shapes, the layout JAX allocates, so nothing is allocated and the full-size figures come from any machine.
Two presets by default, or ``--n``/``--dim``:

- ``imagenet1k``: N = 1,281,167, D = 256 (SimCLR's bank: both 128-wide views).
- ``wiki1m``: N = 1,000,000, D = 1,536 (unsupervised SimCSE with BERT-base: both 768-wide views).

Prints one JSON object. On a CPU it simulates ``--host_devices`` devices.

  python -m experiments.bench.bank_memory                        # both presets, 8 simulated devices
  python -m experiments.bench.bank_memory --n=105000 --dim=256   # STL-10
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags

PRESETS = {"imagenet1k": (1_281_167, 256), "wiki1m": (1_000_000, 1536)}


def bank_report(mesh, n: int, d: int) -> dict:
  """``{"mib_per_device": {"<dtype>/<layout>": {"bank", "sampler_copy"}}, "bank_over_float32_replicated"}``
  for an ``[n, d]`` bank on ``mesh`` (MiB on the device holding the most)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from prosampler_jax import parallel  # pylint: disable=g-import-not-at-top
  from prosampler_jax import run_config  # pylint: disable=g-import-not-at-top

  mib = lambda shape, dtype: round(int(np.prod(shape)) * jnp.dtype(dtype).itemsize / 2**20, 1)
  report = {}
  for dtype in run_config.BANK_DTYPES:
    for layout in parallel.BANK_SHARDINGS:
      shard = parallel.bank_sharding(mesh, layout, d).shard_shape((n, d))
      # The sampler's copy: the whole bank on the first device, as float32 (BatchFeeder._snapshot).
      report[f"{dtype}/{layout}"] = {"bank": mib(shard, dtype), "sampler_copy": mib((n, d), np.float32)}
  baseline = report["float32/replicated"]["bank"]
  return {"mib_per_device": report,
          "bank_over_float32_replicated": {k: round(v["bank"] / baseline, 4) for k, v in report.items()}}


def define_flags():
  flags.DEFINE_integer("n", None, "Bank rows N (default: the presets).")
  flags.DEFINE_integer("dim", None, "Bank width D (default: the presets).")
  flags.DEFINE_integer("host_devices", 8, "Devices to simulate when JAX runs on the CPU.")


def main(argv):
  del argv
  values = flags.FLAGS
  # Before JAX starts its backends: simulated devices only matter (and only apply) on the CPU.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={values.host_devices}")
  import jax  # pylint: disable=g-import-not-at-top
  from prosampler_jax import parallel  # pylint: disable=g-import-not-at-top

  if (values.n is None) != (values.dim is None):
    raise app.UsageError("--n and --dim go together (or neither: the presets).")
  mesh = parallel.make_data_mesh()
  sizes = PRESETS if values.n is None else {"custom": (values.n, values.dim)}
  report = {"device": jax.devices()[0].device_kind, "num_devices": mesh.size}
  for name, (n, d) in sizes.items():
    report[name] = {"n": n, "dim": d, **bank_report(mesh, n, d)}
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  define_flags()
  app.run(main)
