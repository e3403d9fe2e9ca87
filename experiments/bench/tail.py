"""Tail Batch Sampling epochs and where their time goes, for several N and D.

For each N (``--sizes``) and width D (``--dims``) on clustered synthetic embeddings already on the
device (B = 256, the default quantile), it times ``TailSampler(N, B).sample(epoch, emb)``: the first
call (which compiles) and ``--warm`` further epochs, and splits each epoch into the phases of the
sampler's own code path, timed by wrapping its helpers for the duration of the call:
``threshold`` (the quantile estimate; it is the first to wait for the device, so it also holds the
pool's gather, normalisation and padding, dispatched asynchronously before it), ``tiles_and_graph``
(the similarity tiles, the kept pairs and the sparse graph), ``reverse_cuthill_mckee``, and ``rest``
(dispatching that pool work, cutting and shuffling batches). Also the kept pairs per item (about B by design). Prints one JSON
object. Independent of any input pipeline.

  python -m experiments.bench.tail                          # N = 100k, D = 64 and 128
  python -m experiments.bench.tail --sizes=1000000 --dims=128 --warm=0   # the N = 1M figure
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from typing import Iterator

from absl import app
from absl import flags
import jax
import numpy as np

from experiments.bench import synthetic
from prosampler_jax import samplers
from prosampler_jax.samplers import tail

_SIZES = flags.DEFINE_list("sizes", ["100000"], "Numbers of items N.")
_DIMS = flags.DEFINE_list("dims", ["64", "128"], "Embedding widths D.")
_WARM = flags.DEFINE_integer("warm", 2, "Warm epochs timed after the first call; the best counts.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data and the sampler.")

BATCH = 256


@contextlib.contextmanager
def phase_timers(phases: dict[str, float], kept: list[float]) -> Iterator[None]:
  """While the block runs, adds each wrapped helper's wall time to ``phases`` (the real helpers run)
  and appends each tail graph's stored pairs per item to ``kept``."""
  wrapped = {"threshold": (tail, "_threshold"), "tiles_and_graph": (tail, "_tail_graph"),
             "reverse_cuthill_mckee": (tail.csgraph, "reverse_cuthill_mckee")}
  originals = {name: getattr(owner, attr) for name, (owner, attr) in wrapped.items()}

  def timed(name, fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
      start = time.perf_counter()
      out = fn(*args, **kwargs)
      phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
      if name == "tiles_and_graph":
        kept.append(out.nnz / out.shape[0])
      return out
    return call

  for name, (owner, attr) in wrapped.items():
    setattr(owner, attr, timed(name, originals[name]))
  try:
    yield
  finally:
    for name, (owner, attr) in wrapped.items():
      setattr(owner, attr, originals[name])


def _timed_epoch(sampler: samplers.TailSampler, epoch: int, emb: jax.Array) -> dict:
  phases, kept = {}, []
  with phase_timers(phases, kept):
    start = time.perf_counter()
    batches = sampler.sample(epoch, emb)
    seconds = time.perf_counter() - start
  return {"seconds": seconds, "batches": int(batches.shape[0]), "kept_pairs_per_item": kept[-1],
          "phases": {**phases, "rest": seconds - sum(phases.values())}}


def bench_epochs(emb: jax.Array, warm: int, seed: int) -> dict:
  """The first call (compiles) and ``warm`` further epochs, each with its phases."""
  sampler = samplers.TailSampler(emb.shape[0], BATCH, seed=seed)
  first = _timed_epoch(sampler, 0, emb)
  report = {"first_call": first}
  warm_epochs = [_timed_epoch(sampler, epoch, emb) for epoch in range(1, warm + 1)]
  if warm_epochs:
    report["warm_seconds"] = [e["seconds"] for e in warm_epochs]
    report["best_warm"] = min(warm_epochs, key=lambda e: e["seconds"])
  return report


def main(argv):
  del argv
  report = {"device": str(jax.devices()[0].device_kind), "batch_size": BATCH, "runs": {}}
  for n in (int(s) for s in _SIZES.value):
    for dim in (int(d) for d in _DIMS.value):
      emb = jax.device_put(synthetic.clustered_embeddings(n, _SEED.value, dim))
      report["runs"][f"N={n},D={dim}"] = bench_epochs(emb, _WARM.value, _SEED.value)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
