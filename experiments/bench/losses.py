"""Losses at large batch: compile time, program size and fwd+bwd step time, per loss and batch size.

For each loss (nt_xent, dcl, hcl; info_nce and graphcl with --all) and each batch size B it lowers and
compiles ``jax.jit(jax.value_and_grad(loss))`` on ``[B, D]`` views (compile seconds, the program's
bytes of constants, the size of its StableHLO text), and, for B up to --run_max_batch, times the
compiled step (best of --repeats). Compiling needs no memory of the batch's size, so the largest
sizes can be compiled on a small machine; running B = 16384 needs (2B)² float32 logits (4 GiB) and
their gradients. Prints one JSON object. Independent of any input pipeline (runs where TF is absent).

  python -m experiments.bench.losses                                  # B = 1024 … 16384, run ≤ 2048
  python -m experiments.bench.losses --batch_sizes=16384 --run_max_batch=16384   # on an accelerator
"""

from __future__ import annotations

import functools
import json
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from prosampler_jax import losses

_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1024", "4096", "16384"], "Batch sizes B.")
_RUN_MAX_BATCH = flags.DEFINE_integer("run_max_batch", 2048,
                                      "Time the compiled step only up to this B (memory ∝ B²).")
_DIM = flags.DEFINE_integer("dim", 128, "Embedding width D.")
_ALL = flags.DEFINE_bool("all", False, "Also info_nce and graphcl.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs of a compiled step; the best counts.")


def bench_loss(name: str, batch: int, dim: int, run: bool, repeats: int) -> dict:
  """Compile (and optionally run) value_and_grad of one loss on ``[batch, dim]`` views."""
  fn = jax.value_and_grad(functools.partial(getattr(losses, name), temperature=0.5), argnums=(0, 1))
  spec = jax.ShapeDtypeStruct((batch, dim), jnp.float32)
  start = time.perf_counter()
  lowered = jax.jit(fn).lower(spec, spec)
  lower_seconds = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile()
  report = {"lower_seconds": lower_seconds, "compile_seconds": time.perf_counter() - start,
            "program_text_bytes": len(lowered.as_text()),
            "constant_bytes": sum(np.asarray(c).nbytes for c in jax.make_jaxpr(fn)(spec, spec).consts)}
  if run:
    rng = np.random.default_rng(0)
    z1 = jnp.asarray(rng.standard_normal((batch, dim)), jnp.float32)
    z2 = jnp.asarray(rng.standard_normal((batch, dim)), jnp.float32)
    jax.block_until_ready(compiled(z1, z2))
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(compiled(z1, z2))
      times.append(time.perf_counter() - start)
    report["step_seconds"] = min(times)
  return report


def main(argv):
  del argv
  names = ("nt_xent", "dcl", "hcl") + (("info_nce", "graphcl") if _ALL.value else ())
  results = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
             "jax": jax.__version__, "dim": _DIM.value, "losses": {}}
  for name in names:
    results["losses"][name] = {
        str(b): bench_loss(name, b, _DIM.value, b <= _RUN_MAX_BATCH.value, _REPEATS.value)
        for b in map(int, _BATCH_SIZES.value)}
  print(json.dumps(results, indent=1))


if __name__ == "__main__":
  app.run(main)
