"""The TBS benchmark's phase timers wrap the sampler's real helpers and put them back."""

from __future__ import annotations

import numpy as np

from experiments.bench import tail as tail_bench
from prosampler_jax.samplers import tail


def test_phases_cover_the_epoch_and_the_helpers_are_restored():
  originals = (tail._threshold, tail._tail_graph, tail.csgraph.reverse_cuthill_mckee)
  emb = np.random.default_rng(0).normal(size=(1200, 8)).astype(np.float32)
  report = tail_bench.bench_epochs(emb, warm=1, seed=0)
  assert (tail._threshold, tail._tail_graph, tail.csgraph.reverse_cuthill_mckee) == originals
  epoch = report["best_warm"]
  assert epoch["batches"] == 1200 // tail_bench.BATCH
  assert set(epoch["phases"]) == {"threshold", "tiles_and_graph", "reverse_cuthill_mckee", "rest"}
  assert all(seconds > 0 for name, seconds in epoch["phases"].items() if name != "rest")
  assert epoch["phases"]["rest"] >= 0  # the timed helpers run inside the epoch, never beside it
  # The default quantile keeps about B neighbours per item (an estimate from sampled pairs).
  assert 0.5 * tail_bench.BATCH < epoch["kept_pairs_per_item"] < 2 * tail_bench.BATCH
