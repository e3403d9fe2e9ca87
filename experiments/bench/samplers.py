"""Sampler building blocks side by side: graph backends, the JAX walk vs a Python walk, and TBS.

For each N (clustered synthetic embeddings, D = 128, B = 256, K = 100, M = 1000, α = 0.2) it times
(a) ``build_proximity_graph`` per backend (first call, which compiles, and a second, warm call);
(b) one epoch (N // B batches) of ``random_walk_batches`` on the candidates graph, best of 3, with
    the graph already on the device and from the NumPy graph (validation + host→device copy
    included);
(c) the same epoch by a plain-Python walk in the reference's style (per batch: a start among the
    uncovered items, a walk with restart collecting a set until B distinct, mark covered), best of
    3, and the ratio (c) / (b);
(d) one whole epoch of every sampler in ``samplers.SAMPLERS`` (uniform, ProSampler, kNN, Tail Batch
    Sampling, B3 partition, cluster batches) on a bank already on the device, at D = ``--epoch_dim``
    (default 64) and B = 256: the first call (which compiles) and the best of 2 warm epochs.
Tail Batch Sampling's scale figures have their own benchmark: ``experiments.bench.tail``.
Prints one JSON object.

  python -m experiments.bench.samplers                        # N = 10k, 100k
  python -m experiments.bench.samplers --large                # adds N = 1M
  python -m experiments.bench.samplers --sizes 10000 --exact_max_n 100000
"""

from __future__ import annotations

import json
import random
import time

from absl import app
from absl import flags
import jax
import numpy as np

from experiments.bench import synthetic
from prosampler_jax import graph
from prosampler_jax import samplers
from prosampler_jax import walk

_SIZES = flags.DEFINE_list("sizes", ["10000", "100000"], "Numbers of items N to benchmark.")
_LARGE = flags.DEFINE_bool("large", False, "Also benchmark N = 1,000,000.")
_BACKENDS = flags.DEFINE_list("backends", ["candidates", "exact", "nndescent"],
                              "Graph backends to time.")
_EXACT_MAX_N = flags.DEFINE_integer("exact_max_n", graph.AUTO_EXACT_MAX_N,
                                    "Time the exact backend only up to this N (it is O(N²·D)).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats of a walk epoch; the best counts.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data, the graphs and the walks.")
_EPOCH_DIM = flags.DEFINE_integer("epoch_dim", 64, "Embedding width of the whole-epoch timings (d).")

DIM, BATCH, NEIGHBORS, CANDIDATES, RESTART = 128, 256, 100, 1000, 0.2


def clustered_embeddings(n: int, seed: int) -> np.ndarray:
  """``n`` points around 100 random centres in D = 128."""
  return synthetic.clustered_embeddings(n, seed, DIM)


def python_walk_epoch(adjacency: list[list[int]], batch_size: int, restart_prob: float, seed: int,
                      max_steps: int) -> list[list[int]]:
  """N // B batches by a plain-Python walk with restart (the reference's per-step loop)."""
  n = len(adjacency)
  rng = random.Random(seed)
  order = list(range(n))
  rng.shuffle(order)
  covered = [False] * n
  next_start = 0
  batches = []
  for _ in range(n // batch_size):
    while covered[order[next_start]]:  # A start among the uncovered items (order is random).
      next_start += 1
    start = current = order[next_start]
    batch, seen = [start], {start}
    steps = 0
    while len(batch) < batch_size:
      steps += 1
      if steps > max_steps:  # Same top-up as the JAX kernel (never reached on these graphs).
        current = rng.randrange(n)
      elif rng.random() < restart_prob:
        current = start
        continue
      else:
        current = rng.choice(adjacency[current])
      if current not in seen:
        seen.add(current)
        batch.append(current)
    for item in batch:
      covered[item] = True
    batches.append(batch)
  return batches


def _timed(fn, *args, **kwargs):
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args, **kwargs))
  return out, time.perf_counter() - start


def bench_graphs(emb: np.ndarray, seed: int) -> tuple[dict, dict[str, np.ndarray]]:
  """(a): first (compiling) and warm build time per backend."""
  n = emb.shape[0]
  report, graphs = {}, {}
  for backend in _BACKENDS.value:
    if backend == "exact" and n > _EXACT_MAX_N.value:
      report[backend] = {"skipped": f"N > --exact_max_n={_EXACT_MAX_N.value}"}
      continue
    m = CANDIDATES if backend == "candidates" else None
    build = lambda s: graph.build_proximity_graph(emb, num_neighbors=NEIGHBORS, num_candidates=m,
                                                  backend=backend, seed=s)
    _, first = _timed(build, seed)
    graphs[backend], warm = _timed(build, seed + 1)
    report[backend] = {"seconds": warm, "first_call_seconds": first,
                       "compile_seconds": max(first - warm, 0.0)}
  if "exact" in graphs and "nndescent" in graphs:
    report["nndescent"]["recall_vs_exact"] = float(np.mean(
        [np.isin(a, e).mean() for a, e in zip(graphs["nndescent"], graphs["exact"])]))
  return report, graphs


def bench_walks(neighbors: np.ndarray, seed: int) -> dict:
  """(b) and (c): one epoch of the JAX walk and of the Python walk on the same graph."""
  n = neighbors.shape[0]
  num_batches = n // BATCH
  starts = np.random.default_rng(seed).permutation(n)[:num_batches].astype(np.int32)
  on_device = jax.device_put(neighbors)
  run = lambda nbrs, i: walk.random_walk_batches(nbrs, starts, batch_size=BATCH,
                                                 restart_prob=RESTART, key=jax.random.key(seed + i))
  _, first = _timed(run, on_device, 0)
  device_times, host_times = [], []
  for i in range(_REPEATS.value):  # Interleaved, so a busy moment does not hit one variant only.
    device_times.append(_timed(run, on_device, i + 1)[1])
    host_times.append(_timed(run, neighbors, i + 1)[1])
  batches = np.asarray(run(on_device, 1))
  start = time.perf_counter()
  adjacency = neighbors.tolist()
  to_lists = time.perf_counter() - start
  python_times = []
  for i in range(_REPEATS.value):
    start = time.perf_counter()
    python_walk_epoch(adjacency, BATCH, RESTART, seed + i, 32 * BATCH)
    python_times.append(time.perf_counter() - start)
  jax_s, python_s = min(device_times), min(python_times)
  return {
      "num_batches": num_batches,
      "jax_epoch_seconds": jax_s,
      "jax_epoch_seconds_from_numpy_graph": min(host_times),
      "jax_first_call_seconds": first,
      "python_epoch_seconds": python_s,
      "python_graph_to_lists_seconds": to_lists,
      "ratio_python_over_jax": python_s / jax_s,
      "ratio_python_over_jax_from_numpy_graph": python_s / min(host_times),
      "jax_unique_items_per_epoch": int(np.unique(batches).size),
  }


def bench_sampler_epochs(n: int, dim: int, seed: int) -> dict:
  """(d): per sampler, the first whole-epoch call and the best of 2 warm epochs."""
  emb = jax.device_put(synthetic.clustered_embeddings(n, seed, dim))
  report = {}
  for name in samplers.SAMPLERS:
    sampler = samplers.make_sampler(name, n, BATCH, seed=seed)
    times = []
    for epoch in range(3):
      start = time.perf_counter()
      batches = sampler.sample(epoch, emb)
      times.append(time.perf_counter() - start)
    report[name] = {"first_call_seconds": times[0], "seconds": min(times[1:]),
                    "num_batches": int(batches.shape[0])}
  return report


def main(argv):
  del argv
  sizes = [int(s) for s in _SIZES.value] + ([1_000_000] if _LARGE.value else [])
  seed = _SEED.value
  report = {
      "device": str(jax.devices()[0].device_kind), "num_devices": jax.device_count(),
      "config": {"dim": DIM, "batch_size": BATCH, "num_neighbors": NEIGHBORS,
                 "num_candidates": CANDIDATES, "restart_prob": RESTART, "clusters": synthetic.CLUSTERS},
      "sizes": {},
  }
  for n in sizes:
    emb = clustered_embeddings(n, seed)
    graphs_report, graphs = bench_graphs(emb, seed)
    walk_graph = graphs.get("candidates")
    if walk_graph is None:
      walk_graph = graph.build_proximity_graph(emb, num_neighbors=NEIGHBORS,
                                               num_candidates=CANDIDATES, seed=seed)
    report["sizes"][str(n)] = {"graph": graphs_report, "walk": bench_walks(walk_graph, seed),
                               f"sampler_epochs_d{_EPOCH_DIM.value}":
                                   bench_sampler_epochs(n, _EPOCH_DIM.value, seed)}
  if "100000" in report["sizes"]:
    at_100k = report["sizes"]["100000"]
    report["targets_at_100k"] = {
        "walk_epoch_le_0.1s": at_100k["walk"]["jax_epoch_seconds"] <= 0.1,
        "walk_ge_3x_python": at_100k["walk"]["ratio_python_over_jax"] >= 3.0,
        "candidates_graph_le_10s": at_100k["graph"].get("candidates", {}).get("seconds",
                                                                              np.inf) <= 10.0,
    }
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
