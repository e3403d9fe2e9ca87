"""Tail Batch Sampling (TBS / GCBS, Sachidananda et al., ICML'23): batches cut from a low-bandwidth order.

The paper states the method but ships no code; this file is a reference implementation. Once per epoch:

1. L2-normalise the bank on its device and estimate the similarity threshold: the ``quantile`` of the
   similarities between random rows and columns.
2. Keep each item's *tail*: at most ``max_neighbors`` of its most similar items above the threshold
   (:mod:`prosampler_jax.neighbors`, in JAX on the bank's device; exactly, or among nearby k-means cells
   for millions of items). Only those ``[N, max_neighbors]`` ids come to the host, chunk by chunk.
3. Put them in a symmetric ``scipy.sparse`` graph and order the items with reverse Cuthill–McKee,
   which minimises the graph's bandwidth, so similar items end up close in the order.
4. Cut the order into contiguous batches of B and shuffle the order of the batches.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from prosampler_jax import _checks
from prosampler_jax import neighbors
from prosampler_jax.normalize import normalized_rows
from prosampler_jax.samplers import epoch_order

GRAPHS = neighbors.METHODS  # "auto", "exact", "knn": how each item's tail neighbours are searched
# Tail edges kept per item. At 20k items, B = 256 the caps 16-128 give equally hard batches (mean negative
# cosine 0.386-0.394), 64 the hardest; the uncapped graph (≈ B pairs per item) gives 0.19: reverse
# Cuthill–McKee cannot keep its bandwidth (15k) near B. See experiments/bench/tail.py and the README.
DEFAULT_MAX_NEIGHBORS = 64
_THRESHOLD_ITEMS = 1024  # rows and columns sampled to estimate the threshold (≈ 10^6 pairs).


class TailSampler(epoch_order.EpochOrderSampler):
  """Orders items by reverse Cuthill–McKee on the tail-similarity graph and cuts the order into batches.

  One order per epoch (the paper's semantics: encode, then train an epoch), made at the epoch's first
  window and continued by later windows (:class:`~prosampler_jax.samplers.epoch_order.EpochOrderSampler`).

  ``quantile`` q is the quantile of pairwise similarities above which a pair may be an edge, and
  ``max_neighbors`` k keeps at most that many per item (its most similar above the threshold), so
  memory is ``O(N · k)`` whatever B is. The default q (:func:`default_quantile`) puts about
  min(B, 4k) pairs per item above the threshold. The threshold is the q-quantile of the similarities between
  1024 random rows and 1024 random columns (all pairs when n ≤ 1024). ``graph``: "exact" (every pair,
  ``O(N²)``), "knn" (k-means cells, for millions of items) or "auto" (exact up to
  ``neighbors.AUTO_EXACT_MAX_N`` items). ``embeddings`` may be one array ``[N, D]`` or a tuple ``(x, y)`` of
  paired views, whose similarity (x̂·ŷᵀ + ŷ·x̂ᵀ)/2 is symmetric.

  Every device computation of a whole-epoch order has shapes fixed by (N, B, D): no compilation after
  the first epoch.
  """

  reads_pairs = True  # the symmetrised cross-view similarity of (x, y) when the data is paired

  bank_on_device = True

  def __init__(self, num_examples: int, batch_size: int, *, quantile: float | None = None,
               max_neighbors: int = DEFAULT_MAX_NEIGHBORS, graph: str = "auto", seed: int = 0):
    super().__init__(num_examples, batch_size, seed=seed)
    self.quantile = (None if quantile is None else
                     _checks.check_float("quantile", quantile, low=0.0, high=1.0, low_open=True,
                                         high_open=True))
    self.max_neighbors = _checks.check_int("max_neighbors", max_neighbors, low=1)
    self.graph = _checks.check_choice("graph", graph, GRAPHS)

  def _params(self) -> dict[str, Any]:
    return {**super()._params(), "quantile": self.quantile, "max_neighbors": self.max_neighbors,
            "graph": self.graph}

  # ---------------------------------------------------------------- sampling

  def _check_embeddings(self, embeddings):
    if not isinstance(embeddings, tuple):
      return super()._check_embeddings(embeddings)
    if len(embeddings) != 2:
      raise ValueError(f"embeddings is a tuple of length {len(embeddings)}; allowed: one array [N, D] "
                       "or a pair (x, y).")
    x = self._check_bank("embeddings[0]", embeddings[0])
    y = self._check_bank("embeddings[1]", embeddings[1])
    if x.shape[1] != y.shape[1]:
      raise ValueError(f"embeddings[1] has D={y.shape[1]} but embeddings[0] has D={x.shape[1]}; "
                       f"allowed: D={x.shape[1]}.")
    return x, y

  def _cut(self, pool: np.ndarray, embeddings, rng: np.random.Generator) -> np.ndarray:
    """Tail order of the ``pool`` items cut into ``len(pool) / B`` contiguous batches (global indices);
    the pool's random order is the relabelling that breaks reverse Cuthill–McKee's ties."""
    x, y = embeddings if isinstance(embeddings, tuple) else (embeddings, None)
    b = self.batch_size
    count = pool.size // b
    n = pool.size
    quantile = self.quantile if self.quantile is not None else default_quantile(n, b,
                                                                                self.max_neighbors)
    queries, keys, points = _pool_vectors(x, y, jnp.asarray(pool))
    threshold = _threshold(queries, keys, n, quantile, rng)
    adjacency = _tail_graph(queries, keys, points, threshold, min(self.max_neighbors, n - 1), self.graph,
                            seed=int(rng.integers(0, 2**31 - 1)))
    order = csgraph.reverse_cuthill_mckee(adjacency, symmetric_mode=True)
    return pool[order].reshape(count, b).astype(np.int32)


def default_quantile(n: int, batch_size: int, max_neighbors: int) -> float:
  """q = 1 − min(B, 4·k)/n: about B pairs per item above the threshold (the scale of one batch) until
  B reaches 4·k; from there the threshold stops moving with B, so the kept graph, and its memory, are
  the same for every larger B. (At n = 20k, B = 256 = 4·64, every item already has k = 64 pairs above
  it; a lower threshold would only add weak pairs to the items in sparse regions.)"""
  return max(0.0, 1.0 - min(batch_size, 4 * max_neighbors) / n)


@jax.jit
def _paired_vectors(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Queries ``[x, y]/2`` and keys ``[y, x]``: their products are the symmetrised (x·yᵀ + y·xᵀ)/2."""
  return 0.5 * jnp.concatenate([x, y], axis=1), jnp.concatenate([y, x], axis=1)


def _pool_vectors(x: jax.Array, y: jax.Array | None, index: jax.Array):
  """(queries, keys, points to cluster) of the pool's items, normalised on the bank's device by jitted
  functions of fixed shapes (one compile per pool size); unpaired data is all three at once."""
  x = normalized_rows(x, index)
  if y is None:
    return x, x, x
  return (*_paired_vectors(x, normalized_rows(y, index)), x)


def _threshold(queries: jax.Array, keys: jax.Array, n: int, quantile: float,
               rng: np.random.Generator) -> float:
  """``quantile`` of off-diagonal similarities between random rows and columns of the ``n`` items
  (exact if n ≤ 1024); only the sampled rows come to the host."""
  size = min(n, _THRESHOLD_ITEMS)
  rows = rng.choice(n, size, replace=False)
  cols = rng.choice(n, size, replace=False)
  sims = np.asarray(queries[jnp.asarray(rows)]) @ np.asarray(keys[jnp.asarray(cols)]).T
  return float(np.quantile(sims[rows[:, None] != cols[None, :]], quantile))


def _tail_graph(queries: jax.Array, keys: jax.Array, points: jax.Array, threshold: float, k: int,
                graph: str, *, seed: int) -> sparse.csr_array:
  """Symmetric sparse graph: item i and j are linked when one is among the other's ``k`` most similar
  items above ``threshold`` (searched by ``graph``, one of ``GRAPHS``)."""
  _, ids = neighbors.top_k(queries, keys, points, k, threshold=threshold, method=graph, seed=seed)
  return symmetric_graph(ids)


def symmetric_graph(ids: np.ndarray) -> sparse.csr_array:
  """The undirected graph of directed neighbour lists ``ids`` ``[N, k]`` (−1: no neighbour), as CSR."""
  n = ids.shape[0]
  valid = ids >= 0
  indptr = np.concatenate([[0], np.cumsum(valid.sum(axis=1))]).astype(np.int64)
  directed = sparse.csr_array((np.ones(int(indptr[-1]), np.int8), ids[valid], indptr), shape=(n, n))
  return (directed + directed.T).tocsr()
