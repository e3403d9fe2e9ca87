"""The TBS benchmark: its phase timers wrap the sampler's real helpers and put them back, and each
section measures what it says on small inputs."""

from __future__ import annotations

import numpy as np

from experiments.bench import tail as tail_bench
from prosampler_jax import samplers


def test_phases_cover_the_epoch_and_the_helpers_are_restored():
  originals = {name: getattr(owner, attr) for name, (owner, attr) in tail_bench.PHASES.items()}
  emb = np.random.default_rng(0).normal(size=(1200, 8)).astype(np.float32)
  sampler = samplers.TailSampler(1200, 64, max_neighbors=8, graph="exact")
  report, made = tail_bench.timed_epoch(sampler, 0, emb)
  assert {name: getattr(owner, attr) for name, (owner, attr) in tail_bench.PHASES.items()} == originals
  assert report["batches"] == 1200 // 64
  assert set(report["phases"]) == {"prepare", "threshold", "search_exact", "graph",
                                   "reverse_cuthill_mckee", "rest"}
  assert all(seconds > 0 for name, seconds in report["phases"].items() if name != "rest")
  assert report["phases"]["rest"] >= 0  # the timed helpers run inside the epoch, never beside it
  # The cap keeps at most 8 per item's own list; linked both ways, at most 16 stored per item.
  assert 4 < report["kept_pairs_per_item"] <= 16
  np.testing.assert_array_equal(np.sort(made["batches"].ravel()), np.unique(made["batches"]))


def test_windowed_epochs_cost_about_a_whole_epoch():
  report = tail_bench.windowed_vs_whole(2000, 16, 5, dim=8, seed=0, epochs=1)
  assert report["windows"] == 25
  assert report["ratio"] < 3.0, report  # one ordering per epoch (per-window orderings: ≈ 9×)


def test_cap_effect_compares_every_cap_with_the_uncapped_graph():
  report = tail_bench.cap_effect(3000, 64, caps=(4, 16), uncapped=512, dim=16, seed=0)
  runs = {run["max_neighbors"]: run for run in report["runs"]}
  assert list(runs) == [4, 16, 512]
  assert runs[4]["kept_pairs_per_item"] < runs[16]["kept_pairs_per_item"] < runs[512]["kept_pairs_per_item"]
  assert runs[4]["items_at_cap"] > 0.9 and runs[512]["items_at_cap"] == 0.0
  for run in runs.values():
    assert 0.0 < run["uncapped_edges_inside_a_batch"] <= 1.0 and run["rcm_bandwidth"] > 0


def test_recall_counts_the_exact_edges_found():
  exact = np.array([[1, 2, -1], [0, 3, 2]])
  found = np.array([[2, 5, -1], [3, 2, 0]])
  assert tail_bench.recall(found, exact) == 4 / 5
