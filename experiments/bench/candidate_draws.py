"""Per-row vs shared candidate draws of the proximity graph: independence statistics and build time.

For each draw mode (``graph.CANDIDATE_DRAWS``) it reports, side by side in one run:
- at M = K (the graph *is* the draw, N = --stats_n): pairs of rows with identical neighbour sets and the
  in-degree variance over that of independent rows (Binomial; 1.0 means independent);
- at the reference setting (N = --n, D = --dim, M = 1000, K = 100): the graph's build time (first call,
  which compiles, and a warm call), and the Gini coefficient of item frequencies over one epoch of
  walks (α = 0.2, B = 256) on clustered embeddings (0 = every item equally often).
Prints one JSON object. Independent of any input pipeline.

  python -m experiments.bench.candidate_draws                    # N = 100k, D = 64 on this machine
  python -m experiments.bench.candidate_draws --n=105000 --dim=256   # the accelerator figure
"""

from __future__ import annotations

import json
import time

from absl import app
from absl import flags
import jax
import numpy as np

from experiments.bench import synthetic
from prosampler_jax import diagnostics
from prosampler_jax import graph
from prosampler_jax import walk

_N = flags.DEFINE_integer("n", 100_000, "Items N for the timing and the walk statistics.")
_DIM = flags.DEFINE_integer("dim", 64, "Embedding width D.")
_STATS_N = flags.DEFINE_integer("stats_n", 5000, "Items N for the M = K statistics.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data, the graphs and the walks.")

NEIGHBORS, CANDIDATES, BATCH, RESTART = 100, 1000, 256, 0.2


def gini(counts: np.ndarray) -> float:
  """Gini coefficient of non-negative counts (0: all equal)."""
  x = np.sort(counts.astype(np.float64))
  n = x.size
  return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def bench_mode(mode: str, emb: np.ndarray, stats_emb: np.ndarray, seed: int) -> dict:
  """Statistics and timings of one draw mode."""
  at_m_equals_k = graph.build_proximity_graph(stats_emb, num_neighbors=NEIGHBORS,
                                              num_candidates=NEIGHBORS, seed=seed,
                                              candidate_draw=mode)
  emb_device = jax.device_put(emb)
  build = lambda s: jax.block_until_ready(graph.proximity_graph(
      emb_device, num_neighbors=NEIGHBORS, num_candidates=CANDIDATES, seed=s, candidate_draw=mode))
  start = time.perf_counter()
  build(seed)
  first = time.perf_counter() - start
  start = time.perf_counter()
  neighbors = build(seed + 1)
  warm = time.perf_counter() - start
  n = emb.shape[0]
  starts = np.random.default_rng(seed).permutation(n)[:n // BATCH]
  walk_epoch = lambda: jax.block_until_ready(walk.random_walk_batches(
      neighbors, starts, batch_size=BATCH, restart_prob=RESTART, key=jax.random.key(seed)))
  walk_epoch()  # compiles (once per shape, whichever mode comes first)
  start = time.perf_counter()
  batches = walk_epoch()
  walk_seconds = time.perf_counter() - start
  stats = diagnostics.graph_stats(at_m_equals_k)
  return {
      "identical_row_pairs_at_m_eq_k": stats["identical_row_pairs"],
      "in_degree_variance_ratio_at_m_eq_k": stats["in_degree_variance_ratio"],
      "graph_seconds": warm, "graph_first_call_seconds": first,
      "walk_epoch_seconds": walk_seconds,
      "walk_item_frequency_gini": gini(np.bincount(np.asarray(batches).ravel(), minlength=n)),
  }


def main(argv):
  del argv
  seed = _SEED.value
  emb = synthetic.clustered_embeddings(_N.value, seed, _DIM.value)
  stats_emb = np.random.default_rng(seed + 1).standard_normal((_STATS_N.value, 8)).astype(np.float32)
  results = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
             "n": _N.value, "dim": _DIM.value, "stats_n": _STATS_N.value,
             "num_neighbors": NEIGHBORS, "num_candidates": CANDIDATES}
  for mode in graph.CANDIDATE_DRAWS:
    results[mode] = bench_mode(mode, emb, stats_emb, seed)
  results["shared_over_per_row_graph_seconds"] = (results["shared"]["graph_seconds"]
                                                  / results["per_row"]["graph_seconds"])
  print(json.dumps(results, indent=1))


if __name__ == "__main__":
  app.run(main)
