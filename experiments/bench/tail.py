"""Tail Batch Sampling at training scale, side by side in one run. Prints one JSON object.

Sections (clustered synthetic embeddings, ``experiments.bench.synthetic``, already on the device):

- ``windowed``: one epoch ordered by a whole-epoch call vs the same epoch asked for window by window as
  the trainer does (N = 10k, B = 32, t = 10 steps per window), and their ratio (goal ≤ 1.2).
- ``memory_per_batch_size``: kept pairs per item and the process's peak RSS for B = 256 and 1024 at
  N = 100k (each in a fresh process, so the peaks do not mix; goal: equal within 10%).
- ``cap``: the ``max_neighbors`` cap against a nearly uncapped graph at N = 20k, B = 256 (exact search):
  kept pairs per item, the share of items at the cap, batch hardness (``mean_neg_cos``), the RCM
  bandwidth of the graph in its own order, and the share of the uncapped graph's edges that end up
  inside a batch.
- ``backends``: exact vs kNN search (``graph="exact" | "knn"``) at ``--backend_sizes``, on 100 clusters
  and on clusters of 1000 items: seconds per epoch
  with its phases (``prepare``: dispatching the pool's gather and normalisation, whose device time shows in
  ``threshold``, the first phase to wait; ``search_exact`` / ``search_knn``; ``graph``;
  ``reverse_cuthill_mckee``; ``rest``), peak RSS,
  batch hardness, and the kNN backend's recall of the exact backend's (capped) tail edges — on every row
  where the exact search runs (N ≤ ``--exact_max_n``), on ``--recall_rows`` random rows beyond.

  python -m experiments.bench.tail                                  # everything (~7 min on 2 CPU cores)
  python -m experiments.bench.tail --sections=backends --backend_sizes=1000000
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import resource
import time
from typing import Iterator

from absl import app
from absl import flags
import jax
import numpy as np

from experiments.bench import synthetic
from prosampler_jax import diagnostics
from prosampler_jax import neighbors
from prosampler_jax import samplers
from prosampler_jax.samplers import tail

SECTIONS = ("windowed", "memory_per_batch_size", "cap", "backends")
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), f"Which sections to run, of {SECTIONS}.")
_BACKEND_SIZES = flags.DEFINE_list("backend_sizes", ["100000", "1000000"], "N for the backends section.")
_EXACT_MAX_N = flags.DEFINE_integer("exact_max_n", 100_000, "Largest N the exact backend runs at.")
_RECALL_ROWS = flags.DEFINE_integer("recall_rows", 2000, "Rows whose exact tail edges score recall "
                                    "beyond --exact_max_n.")
_DIM = flags.DEFINE_integer("dim", 128, "Embedding width D.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the data and the samplers.")

PHASES = {"prepare": (tail, "_pool_vectors"), "threshold": (tail, "_threshold"), "search_exact": (neighbors, "exact_top_k"),
          "search_knn": (neighbors, "cell_top_k"), "graph": (tail, "symmetric_graph"),
          "reverse_cuthill_mckee": (tail.csgraph, "reverse_cuthill_mckee")}


@contextlib.contextmanager
def phase_timers(phases: dict[str, float], captured: dict) -> Iterator[None]:
  """While the block runs, adds each wrapped helper's wall time to ``phases`` (the real helpers run) and
  keeps the last output of each in ``captured`` (the neighbour ids, the graph, the order)."""
  originals = {name: getattr(owner, attr) for name, (owner, attr) in PHASES.items()}

  def timed(name, fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
      start = time.perf_counter()
      out = fn(*args, **kwargs)
      phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
      captured[name] = out
      return out
    return call

  for name, (owner, attr) in PHASES.items():
    setattr(owner, attr, timed(name, originals[name]))
  try:
    yield
  finally:
    for name, (owner, attr) in PHASES.items():
      setattr(owner, attr, originals[name])


def timed_epoch(sampler: samplers.TailSampler, epoch: int, emb) -> tuple[dict, dict]:
  """One whole-epoch call: (seconds, batches, phases, kept pairs per item) and what the phases made."""
  phases, captured = {}, {}
  with phase_timers(phases, captured):
    start = time.perf_counter()
    batches = sampler.sample(epoch, emb)
    seconds = time.perf_counter() - start
  graph = captured["graph"]
  report = {"seconds": seconds, "batches": int(batches.shape[0]),
            "kept_pairs_per_item": graph.nnz / graph.shape[0],
            "phases": {**phases, "rest": seconds - sum(phases.values())}}
  return report, {**captured, "batches": batches}


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_fresh_process(fn, *args):
  """``fn(*args)`` in a new process (its own peak RSS), returning its JSON-able result."""
  with multiprocessing.get_context("spawn").Pool(1) as pool:
    return pool.apply(fn, args)


def _embeddings(n: int, dim: int, seed: int, clusters: int = synthetic.CLUSTERS) -> jax.Array:
  return jax.device_put(synthetic.clustered_embeddings(n, seed, dim, clusters))


# ---------------------------------------------------------------------------------- sections


def windowed_vs_whole(n: int = 10_000, batch_size: int = 32, refresh_steps: int = 10, *, dim: int,
                      seed: int, epochs: int = 3) -> dict:
  """Best of ``epochs`` warm epochs, each way; the first (compiling) epoch of each is not counted."""
  emb = _embeddings(n, dim, seed)
  whole, windowed = samplers.TailSampler(n, batch_size, seed=seed), samplers.TailSampler(n, batch_size,
                                                                                        seed=seed)
  windows = -(-(n // batch_size) // refresh_steps)
  whole_s, windowed_s = [], []
  for epoch in range(epochs + 1):
    start = time.perf_counter()
    whole.sample(epoch, emb)
    whole_s.append(time.perf_counter() - start)
    start = time.perf_counter()
    for w in range(windows):
      windowed.sample(epoch, emb, num_batches=refresh_steps, window=w)
    windowed_s.append(time.perf_counter() - start)
  best_whole, best_windowed = min(whole_s[1:]), min(windowed_s[1:])
  return {"N": n, "B": batch_size, "t": refresh_steps, "windows": windows,
          "whole_epoch_seconds": best_whole, "windowed_epoch_seconds": best_windowed,
          "ratio": best_windowed / best_whole, "first_epoch_seconds": [whole_s[0], windowed_s[0]]}


def memory_case(n: int, batch_size: int, dim: int, seed: int) -> dict:
  """Two epochs of ``TailSampler(n, batch_size)`` in this process: seconds, kept pairs, peak RSS."""
  emb = _embeddings(n, dim, seed)
  base_rss = _peak_rss_mib()
  sampler = samplers.TailSampler(n, batch_size, seed=seed)
  epochs = [timed_epoch(sampler, e, emb)[0] for e in range(2)]
  return {"B": batch_size, "graph": "knn" if n > neighbors.AUTO_EXACT_MAX_N else "exact",
          "seconds": [e["seconds"] for e in epochs],
          "kept_pairs_per_item": epochs[-1]["kept_pairs_per_item"],
          "peak_rss_mib": _peak_rss_mib(), "rss_before_sampling_mib": base_rss}


def _bandwidth(graph, order: np.ndarray) -> int:
  """max |position(i) − position(j)| over the graph's edges, in ``order``."""
  position = np.empty(order.size, np.int64)
  position[order] = np.arange(order.size)
  coo = graph.tocoo()
  return int(np.abs(position[coo.row] - position[coo.col]).max())


def _batch_of_position(order: np.ndarray, batch_size: int) -> np.ndarray:
  """The batch each pool position lands in, given the RCM order of the pool positions."""
  batch = np.empty(order.size, np.int64)
  batch[order] = np.arange(order.size) // batch_size
  return batch


def cap_effect(n: int = 20_000, batch_size: int = 256, caps=(16, 32, 64, 128), uncapped: int = 2048,
               *, dim: int, seed: int) -> dict:
  """Each cap against ``max_neighbors=uncapped`` (above any item's count at the default quantile).

  The same (seed, epoch) gives every run the same pool, so the graphs' node labels (pool positions)
  match across runs and the uncapped graph's edges can be looked up in each run's batches.
  """
  emb = _embeddings(n, dim, seed)
  host = np.asarray(emb)
  rows, orders = [], {}
  for cap in (uncapped, *caps):
    # One threshold for every run (the paper's scale, ≈ B pairs per item): only the cap varies.
    sampler = samplers.TailSampler(n, batch_size, quantile=1.0 - batch_size / n, max_neighbors=cap,
                                   graph="exact", seed=seed)
    report, made = timed_epoch(sampler, 0, emb)
    ids, graph, order = made["search_exact"][1], made["graph"], made["reverse_cuthill_mckee"]
    if cap == uncapped:
      full = graph.tocoo()
    batch = _batch_of_position(order, batch_size)
    rows.append({"max_neighbors": cap, "seconds": report["seconds"],
                 "kept_pairs_per_item": report["kept_pairs_per_item"],
                 "items_at_cap": float(np.mean((ids >= 0).sum(axis=1) == cap)),
                 "mean_neg_cos": diagnostics.batch_stats(made["batches"], host)["mean_neg_cos"],
                 "rcm_bandwidth": _bandwidth(graph, order),
                 "uncapped_edges_inside_a_batch": float(np.mean(batch[full.row] == batch[full.col]))})
  return {"N": n, "B": batch_size, "uncapped_means": f"max_neighbors={uncapped}", "runs": rows[1:] + rows[:1]}


def backend_case(n: int, graph: str, dim: int, seed: int, recall_rows: int | None,
                 clusters: int = synthetic.CLUSTERS) -> tuple[dict, dict]:
  """One epoch of ``graph`` at ``n`` after a compiling one: phases, peak RSS, hardness, and what recall
  needs: every row's neighbour ids, or (``recall_rows``) the exact and found ids of that many rows."""
  emb = _embeddings(n, dim, seed, clusters)
  sampler = samplers.TailSampler(n, 256, graph=graph, seed=seed)
  first, _ = timed_epoch(sampler, 0, emb)
  report, made = timed_epoch(sampler, 1, emb)
  ids = made[f"search_{graph}"][1]
  report.update(first_call_seconds=first["seconds"], peak_rss_mib=_peak_rss_mib(),
                mean_neg_cos=diagnostics.batch_stats(made["batches"], emb)["mean_neg_cos"])
  if recall_rows is None:
    return report, {"ids": ids}
  queries, keys, _ = made["prepare"]
  rows = np.random.default_rng(seed).choice(ids.shape[0], recall_rows, replace=False)
  exact = neighbors.exact_top_k(queries[rows], keys, ids.shape[1], threshold=made["threshold"],
                                query_ids=rows)[1]
  return report, {"ids": ids[rows], "exact_ids": exact}


def recall(found: np.ndarray, exact: np.ndarray) -> float:
  """Share of the exact lists' edges (row, id ≥ 0) that ``found``'s same rows hold."""
  hit = (found[:, :, None] == exact[:, None, :]) & (exact[:, None, :] >= 0)
  return float(hit.any(axis=1).sum() / max(1, (exact >= 0).sum()))


def backends(sizes, *, dim: int, seed: int, exact_max_n: int, recall_rows: int) -> dict:
  """Per N, on 100 clusters and on clusters of 1000 items (the same data at 100k): beyond 100k items a
  cluster of 100 holds more than 1000 isotropic points, whose nearest neighbours are nearly a random
  subset of it, so recall there says more about that data than about the search (hardness does not)."""
  out = {}
  for n in sizes:
    for clusters in sorted({synthetic.CLUSTERS, max(1, n // 1000)}):
      exact_runs = n <= exact_max_n
      knn, knn_ids = _in_fresh_process(backend_case, n, "knn", dim, seed,
                                       None if exact_runs else recall_rows, clusters)
      entry = {"knn": knn}
      if exact_runs:
        exact, exact_ids = _in_fresh_process(backend_case, n, "exact", dim, seed, None, clusters)
        entry["exact"] = exact
        entry["knn_recall"] = recall(knn_ids["ids"], exact_ids["ids"])
        entry["speedup"] = exact["seconds"] / knn["seconds"]
      else:
        entry["knn_recall"] = recall(knn_ids["ids"], knn_ids["exact_ids"])
        entry["knn_recall_rows"] = recall_rows
      out[f"N={n},clusters={clusters}"] = entry
  return out


def main(argv):
  del argv
  dim, seed = _DIM.value, _SEED.value
  unknown = set(_SECTIONS.value) - set(SECTIONS)
  if unknown:
    raise app.UsageError(f"--sections has {sorted(unknown)}; allowed: {', '.join(SECTIONS)}.")
  report = {"device": str(jax.devices()[0].device_kind), "dim": dim,
            "max_neighbors": tail.DEFAULT_MAX_NEIGHBORS, "auto_exact_max_n": neighbors.AUTO_EXACT_MAX_N}
  if "windowed" in _SECTIONS.value:
    report["windowed"] = windowed_vs_whole(dim=dim, seed=seed)
  if "memory_per_batch_size" in _SECTIONS.value:
    cases = [_in_fresh_process(memory_case, 100_000, b, dim, seed) for b in (256, 1024)]
    report["memory_per_batch_size"] = {"N": 100_000, "cases": cases,
                                       "peak_rss_ratio": cases[1]["peak_rss_mib"] / cases[0]["peak_rss_mib"],
                                       "kept_pairs_ratio": cases[1]["kept_pairs_per_item"] /
                                                           cases[0]["kept_pairs_per_item"]}
  if "cap" in _SECTIONS.value:
    report["cap"] = cap_effect(dim=dim, seed=seed)
  if "backends" in _SECTIONS.value:
    report["backends"] = backends([int(s) for s in _BACKEND_SIZES.value], dim=dim, seed=seed,
                                  exact_max_n=_EXACT_MAX_N.value, recall_rows=_RECALL_ROWS.value)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
