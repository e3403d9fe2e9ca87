"""Tail Batch Sampling (TBS / GCBS, Sachidananda et al., ICML'23): batches cut from a low-bandwidth order.

The paper states the method but ships no code; this file is a reference implementation:

1. L2-normalise the bank and compute similarities tile by tile in JAX on the bank's device (the tiles
   on and above the diagonal, never an N × N array), keeping only the *tail*: pairs above the
   ``quantile`` threshold. Only the kept pairs leave the device (on a CPU the tile is read in place).
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
# Accelerators: a tile's kept pairs are compacted on the device into a buffer this many times the
# expected count (a tile that overflows is redone with a buffer that fits).
_EDGE_SLACK = 2.0


class TailSampler(base.BatchSampler):
  """Orders items by reverse Cuthill–McKee on the tail-similarity graph and cuts the order into batches.

  ``quantile`` q is the quantile of pairwise similarities above which a pair is an edge; the default
  q = 1 − B/n (n items being ordered) keeps about n·B directed pairs, about B neighbours per item. The
  threshold is the q-quantile of the similarities between 1024 random rows and 1024 random columns (all
  pairs when n ≤ 1024), so for large n the number of kept pairs is an estimate. ``embeddings`` may be
  one array ``[N, D]`` or a tuple ``(x, y)`` of paired views, whose cosine similarity x̂·ŷᵀ is
  symmetrised.

  Within one call every index appears at most once while ``num_batches ≤ N // B``. Each window orders
  only the items its epoch has not covered yet; rows asked for beyond those are uniform batches when
  the window started mid-epoch (the trainer's last window of an epoch is shorter and never uses them),
  or further shuffles of the same order when the window ordered all N (a whole-epoch call). So windows
  that partition an epoch use every index at most once, and no window orders items it does not use.
  The ``n mod B`` left-over items are dropped uniformly at random before ordering (not at the ends of
  the order, where the outliers sit), and the kept items are relabelled at random by (seed, epoch,
  window) (reverse Cuthill–McKee breaks ties by label), so fixed embeddings still give varied batches.
  All windows share two compiled tile kernels (interior and edge tiles): the items are padded to a fixed
  capacity.
  """

  bank_on_device = True

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
    x = self._check_bank("embeddings[0]", embeddings[0])
    y = self._check_bank("embeddings[1]", embeddings[1])
    if x.shape[1] != y.shape[1]:
      raise ValueError(f"embeddings[1] has D={y.shape[1]} but embeddings[0] has D={x.shape[1]}; "
                       f"allowed: D={x.shape[1]}.")
    return x, y

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    x, y = embeddings if isinstance(embeddings, tuple) else (embeddings, None)
    rng = self._rng(epoch, window, base.SALT_TAIL)
    uncovered = np.flatnonzero(~self._covered)
    if uncovered.size < self.batch_size:  # nothing left to order in this epoch
      return self._uniform_batches(epoch, window, num_batches)
    cut = self._cut(x, y, uncovered, rng)
    parts = [cut[rng.permutation(len(cut))]]
    missing = num_batches - len(cut)
    if missing > 0 and uncovered.size == self.num_examples:  # further passes over the same order
      parts += [cut[rng.permutation(len(cut))] for _ in range(-(-missing // len(cut)))]
    elif missing > 0:  # past what the epoch has left: uniform rows, not a re-ordering of all N
      parts.append(self._uniform_batches(epoch, window, missing))
    return np.concatenate(parts)[:num_batches]

  def _cut(self, x: jax.Array, y: jax.Array | None, pool: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Tail order of the ``pool`` items cut into ``len(pool) // B`` contiguous batches (global indices).

    The ``len(pool) mod B`` left-over items are dropped uniformly at random first; the permutation
    that drops them is also the random relabelling that breaks the ordering's ties.
    """
    b = self.batch_size
    count = pool.size // b
    pool = rng.permutation(pool)[:count * b]
    quantile = self.quantile if self.quantile is not None else max(0.0, 1.0 - b / pool.size)
    capacity = _capacity(self.num_examples)
    index = jnp.asarray(pool)
    x_pool = _padded(l2_normalize(x[index]), capacity)
    y_pool = None if y is None else _padded(l2_normalize(y[index]), capacity)
    threshold = _threshold(x_pool, y_pool, pool.size, quantile, rng)
    adjacency = _tail_graph(x_pool, y_pool, pool.size, threshold, quantile)
    order = csgraph.reverse_cuthill_mckee(adjacency, symmetric_mode=True)
    return pool[order].reshape(count, b)


def _capacity(num_examples: int) -> int:
  """Rows the pool is padded to: a multiple of the tile, the same for every window of a sampler."""
  tile = _tile_size(num_examples)
  return -(-num_examples // tile) * tile


def _tile_size(num_examples: int) -> int:
  return min(_TILE, -(-num_examples // 8) * 8)


def _padded(a: jax.Array, capacity: int) -> jax.Array:
  """``a`` with zero rows appended up to ``capacity`` rows (fixed shapes: one compile per sampler)."""
  return jnp.pad(a, ((0, capacity - a.shape[0]), (0, 0)))


def _symmetric_sims(xr, yr, x, y, dot=np.dot):
  """Rows of the symmetrised similarity (x yᵀ + y xᵀ)/2; ``y is None`` means x xᵀ."""
  if y is None:
    return dot(xr, x.T)
  return 0.5 * (dot(xr, y.T) + dot(yr, x.T))


def _threshold(x: jax.Array, y: jax.Array | None, n: int, quantile: float,
               rng: np.random.Generator) -> float:
  """``quantile`` of off-diagonal similarities between random rows and columns of the first ``n``
  items (exact if n ≤ 1024); only the sampled rows come to the host."""
  size = min(n, _THRESHOLD_ITEMS)
  rows = rng.choice(n, size, replace=False)
  cols = rng.choice(n, size, replace=False)
  fetch = lambda a, ids: None if a is None else np.asarray(a[jnp.asarray(ids)])
  sims = _symmetric_sims(fetch(x, rows), fetch(y, rows), fetch(x, cols), fetch(y, cols))
  return float(np.quantile(sims[rows[:, None] != cols[None, :]], quantile))


@functools.partial(jax.jit, static_argnames=("tile", "edge"))
def _tile_tail(x, y, row_offset, col_offset, threshold, num_items, *, tile, edge=True):
  """Mask of the pairs i < j < ``num_items`` above ``threshold`` in one ``[tile, tile]`` tile.

  The tile holds rows ``[row_offset, row_offset + tile)`` × columns ``[col_offset, col_offset + tile)``;
  ``x`` (and ``y``) hold the ``num_items`` items plus zero rows up to a multiple of ``tile``. ``edge``
  False promises an interior tile (every row before every column, no padding column), where the index
  masks are all true: skipping them saves a third of a tile's time on a CPU.
  """
  rows = lambda a, start: None if a is None else lax.dynamic_slice_in_dim(a, start, tile)
  # Full float32 precision, so device similarities match the host threshold estimate.
  dot = functools.partial(jnp.dot, precision=lax.Precision.HIGHEST)
  sims = _symmetric_sims(rows(x, row_offset), rows(y, row_offset), rows(x, col_offset),
                         rows(y, col_offset), dot)
  if not edge:
    return sims > threshold
  row = row_offset + jnp.arange(tile)[:, None]
  col = col_offset + jnp.arange(tile)[None, :]
  return (sims > threshold) & (row < col) & (col < num_items)


def _is_edge(row_offset: int, col_offset: int, tile: int, num_items: int) -> bool:
  """Whether a tile needs the index masks: it meets the diagonal or holds padding columns."""
  return row_offset + tile > col_offset or col_offset + tile > num_items


@functools.partial(jax.jit, static_argnames=("tile", "size", "edge"))
def _tile_edges(x, y, row_offset, col_offset, threshold, num_items, *, tile, size, edge=True):
  """The kept pairs of one tile compacted on the device: (count, flat positions ``[size]``, -1 pad)."""
  mask = _tile_tail(x, y, row_offset, col_offset, threshold, num_items, tile=tile, edge=edge).ravel()
  (flat,) = jnp.nonzero(mask, size=size, fill_value=-1)
  return jnp.sum(mask, dtype=jnp.int32), flat.astype(jnp.int32)


def _tail_graph(x: jax.Array, y: jax.Array | None, n: int, threshold: float, quantile: float, *,
                compact_on_device: bool | None = None) -> sparse.csr_array:
  """Symmetric sparse graph of the pairs i, j < ``n`` above ``threshold``, with sorted indices.

  The similarity is symmetric, so only the tiles on and above the diagonal are computed (each pair
  once). On a CPU a tile's mask is read in place by ``np.flatnonzero`` (faster there than compacting
  the pairs, or packing the mask into bit words, in the kernel); on an accelerator each tile's pairs
  are compacted on the device into a buffer of ``_EDGE_SLACK`` × the expected count, and only those
  buffers are copied, once, at the end. Beyond the inputs and the edges, memory is one tile, never N².
  ``compact_on_device`` overrides the choice by platform (tests run the accelerator path on a CPU).
  """
  capacity = x.shape[0]
  tile = _tile_size(capacity)
  offsets = [(r, c) for r in range(0, n, tile) for c in range(r, n, tile)]
  if compact_on_device is None:
    compact_on_device = next(iter(x.devices())).platform != "cpu"
  flats = []
  if not compact_on_device:
    for r, c in offsets:
      mask = _tile_tail(x, y, r, c, threshold, n, tile=tile, edge=_is_edge(r, c, tile, n))
      flats.append(np.flatnonzero(np.asarray(mask)))
  else:
    expected = tile * tile * max(1.0 - quantile, 1.0 / tile)
    size = min(tile * tile, 1 << int(np.ceil(np.log2(_EDGE_SLACK * expected + 1024))))
    edges = lambda r, c, s: _tile_edges(x, y, r, c, threshold, n, tile=tile, size=s,
                                        edge=_is_edge(r, c, tile, n))
    results = jax.device_get([edges(r, c, size) for r, c in offsets])
    for (r, c), (count, flat) in zip(offsets, results):
      if count > size:  # rare: this tile kept more pairs than the buffer holds
        _, flat = jax.device_get(edges(r, c, 1 << int(np.ceil(np.log2(count)))))
      flats.append(flat[:count])
  # Each tile's flat positions ascend, so the pairs come sorted by tile, then row, then column.
  lengths = [flat.size for flat in flats]
  within_row, within_col = np.divmod(np.concatenate(flats).astype(np.int32), tile)
  rows = np.repeat(np.array([r for r, _ in offsets], np.int32), lengths) + within_row
  cols = np.repeat(np.array([c for _, c in offsets], np.int32), lengths) + within_col
  # Each pair in both directions, the lower (j, i) copies first: the stable COO → CSR conversion then
  # leaves every row's columns ascending (the i < j of row j in tile order, then its own j > i), so
  # scipy finds the indices sorted and skips its sort (half the build's time at 100k items).
  both = (np.concatenate([cols, rows]), np.concatenate([rows, cols]))
  return sparse.csr_array((np.ones(both[0].size, np.int8), both), shape=(n, n))
