"""Tail Batch Sampling (TBS / GCBS, Sachidananda et al., ICML'23): batches cut from a low-bandwidth order.

The paper states the method but ships no code; this file is a reference implementation:

1. L2-normalise the bank and compute similarities tile by tile in JAX (the tiles on and above the
   diagonal, never an N × N array), keeping only the *tail*: pairs above the ``quantile`` threshold.
2. Put the kept pairs in a symmetric ``scipy.sparse`` graph and order the items with reverse
   Cuthill–McKee, which minimises the graph's bandwidth, so similar items end up close in the order.
3. Cut the order into contiguous batches of B and shuffle the order of the batches.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from prosampler_jax import _checks
from prosampler_jax.normalize import l2_normalize
from prosampler_jax.samplers import base

_TILE = 2048  # rows and columns per similarity tile (16 MiB of float32): bounds memory at any N, and
# was the fastest of 1024-4096 on a 2-core CPU.
_THRESHOLD_ITEMS = 1024  # rows and columns sampled to estimate the threshold (≈ 10^6 pairs).


class TailSampler(base.BatchSampler):
  """Orders items by reverse Cuthill–McKee on the tail-similarity graph and cuts the order into batches.

  ``quantile`` q is the quantile of pairwise similarities above which a pair is an edge; the default
  q = 1 − B/n (n items being ordered) keeps about n·B directed pairs, about B neighbours per item. The
  threshold is the q-quantile of the similarities between 1024 random rows and 1024 random columns (all
  pairs when n ≤ 1024), so for large n the number of kept pairs is an estimate. ``embeddings`` may be
  one array ``[N, D]`` or a tuple ``(x, y)`` of paired views, whose cosine similarity x̂·ŷᵀ is
  symmetrised.

  Within one call every index appears at most once while ``num_batches ≤ N // B``. Each window orders
  only the items its epoch has not covered yet, and only if it needs more batches than those give do
  fresh passes over all N follow; so windows that partition an epoch (the last one may use only its
  first rows) use every index at most once. Items are relabelled at random by (seed, epoch, window)
  before the ordering (reverse Cuthill–McKee breaks ties by label) and the ``n mod B`` left-over items
  are cut off at a random offset, so fixed embeddings still give varied batches.
  """

  def __init__(self, num_examples: int, batch_size: int, *, quantile: float | None = None,
               seed: int = 0):
    super().__init__(num_examples, batch_size, seed=seed)
    self.quantile = (None if quantile is None else
                     _checks.check_float("quantile", quantile, low=0.0, high=1.0, low_open=True,
                                         high_open=True))

  def _params(self) -> dict[str, Any]:
    return {**super()._params(), "quantile": self.quantile}

  def _check_embeddings(self, embeddings):
    if not isinstance(embeddings, tuple):
      return super()._check_embeddings(embeddings)
    if len(embeddings) != 2:
      raise ValueError(f"embeddings is a tuple of length {len(embeddings)}; allowed: one array [N, D] "
                       "or a pair (x, y).")
    x = _checks.check_embeddings("embeddings[0]", embeddings[0], num_examples=self.num_examples)
    y = _checks.check_embeddings("embeddings[1]", embeddings[1], num_examples=self.num_examples)
    if x.shape[1] != y.shape[1]:
      raise ValueError(f"embeddings[1] has D={y.shape[1]} but embeddings[0] has D={x.shape[1]}; "
                       f"allowed: D={x.shape[1]}.")
    return x, y

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    x, y = embeddings if isinstance(embeddings, tuple) else (embeddings, None)
    rng = self._rng(epoch, window, base.SALT_TAIL)
    uncovered = np.flatnonzero(~self._covered)
    parts = []
    if uncovered.size >= self.batch_size:  # First the items this epoch has not used, …
      cut = self._cut(x, y, uncovered, rng)
      parts.append(cut[rng.permutation(len(cut))])
    missing = num_batches - sum(len(p) for p in parts)
    if missing > 0:  # … then, if more batches are asked for, fresh passes over all N items.
      if uncovered.size < self.num_examples:
        cut = self._cut(x, y, np.arange(self.num_examples), rng)
      parts += [cut[rng.permutation(len(cut))] for _ in range(-(-missing // len(cut)))]
    return np.concatenate(parts)[:num_batches]

  def _cut(self, x: np.ndarray, y: np.ndarray | None, pool: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Tail order of the ``pool`` items cut into ``len(pool) // B`` contiguous batches (global indices).

    The ``len(pool) mod B`` left-over items are cut off at a random offset at the ends of the order.
    """
    b = self.batch_size
    quantile = self.quantile if self.quantile is not None else max(0.0, 1.0 - b / pool.size)
    y_pool = None if y is None else l2_normalize(y[pool])
    order = _tail_order(l2_normalize(x[pool]), y_pool, quantile, rng)
    count = pool.size // b
    offset = int(rng.integers(0, pool.size - count * b + 1))
    return pool[order[offset:offset + count * b]].reshape(count, b)


def _symmetric_sims(xr, yr, x, y, dot=np.dot):
  """Rows of the symmetrised similarity (x yᵀ + y xᵀ)/2; ``y is None`` means x xᵀ."""
  if y is None:
    return dot(xr, x.T)
  return 0.5 * (dot(xr, y.T) + dot(yr, x.T))


def _threshold(x: np.ndarray, y: np.ndarray | None, quantile: float, rng: np.random.Generator) -> float:
  """``quantile`` of off-diagonal similarities between random rows and columns (exact if n ≤ 1024)."""
  n = x.shape[0]
  size = min(n, _THRESHOLD_ITEMS)
  rows = rng.choice(n, size, replace=False)
  cols = rng.choice(n, size, replace=False)
  y_rows, y_cols = (None, None) if y is None else (y[rows], y[cols])
  sims = _symmetric_sims(x[rows], y_rows, x[cols], y_cols)
  return float(np.quantile(sims[rows[:, None] != cols[None, :]], quantile))


@functools.partial(jax.jit, static_argnames=("tile",))
def _tile_tail(x, y, row_offset, col_offset, threshold, num_items, *, tile):
  """Mask of the pairs i < j < ``num_items`` above ``threshold`` in one ``[tile, tile]`` tile.

  The tile holds rows ``[row_offset, row_offset + tile)`` × columns ``[col_offset, col_offset + tile)``;
  ``x`` (and ``y``) hold the ``num_items`` items plus zero rows up to a multiple of ``tile``.
  """
  rows = lambda a, start: None if a is None else lax.dynamic_slice_in_dim(a, start, tile)
  # Full float32 precision, so device similarities match the host threshold estimate.
  dot = functools.partial(jnp.dot, precision=lax.Precision.HIGHEST)
  sims = _symmetric_sims(rows(x, row_offset), rows(y, row_offset), rows(x, col_offset),
                         rows(y, col_offset), dot)
  row = row_offset + jnp.arange(tile)[:, None]
  col = col_offset + jnp.arange(tile)[None, :]
  return (sims > threshold) & (row < col) & (col < num_items)


def _tail_graph(x: np.ndarray, y: np.ndarray | None, threshold: float) -> sparse.csr_array:
  """Symmetric sparse graph of the pairs above ``threshold``, with sorted indices.

  The similarity is symmetric, so only the tiles on and above the diagonal are computed (each pair
  once); a tile's mask comes to the host, where ``np.flatnonzero`` extracts its pairs (far faster on
  CPU than ``jnp.nonzero``). Beyond the inputs and the edges, memory is one ``_TILE²`` tile, never N².
  """
  n = x.shape[0]
  tile = min(n, _TILE)
  padded = -(-n // tile) * tile
  pad = lambda a: None if a is None else jnp.asarray(np.pad(a, ((0, padded - n), (0, 0))))
  x_dev, y_dev = pad(x), pad(y)
  rows, cols = [], []
  for row_offset in range(0, n, tile):
    for col_offset in range(row_offset, n, tile):
      mask = _tile_tail(x_dev, y_dev, row_offset, col_offset, threshold, n, tile=tile)
      flat = np.flatnonzero(np.asarray(mask))
      rows.append((row_offset + flat // tile).astype(np.int32))
      cols.append((col_offset + flat % tile).astype(np.int32))
  rows, cols = np.concatenate(rows), np.concatenate(cols)
  both = (np.concatenate([rows, cols]), np.concatenate([cols, rows]))  # Each pair in both directions.
  return sparse.csr_array((np.ones(both[0].size, np.int8), both), shape=(n, n))  # Sorted, via COO.


def _tail_order(x: np.ndarray, y: np.ndarray | None, quantile: float,
                rng: np.random.Generator) -> np.ndarray:
  """Reverse Cuthill–McKee order of the tail graph, ties broken by a random relabelling of the items."""
  threshold = _threshold(x, y, quantile, rng)
  relabel = rng.permutation(x.shape[0])
  x = x[relabel]
  y = None if y is None else y[relabel]
  order = csgraph.reverse_cuthill_mckee(_tail_graph(x, y, threshold), symmetric_mode=True)
  return relabel[order]
