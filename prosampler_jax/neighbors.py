"""Each item's k largest inner products above a threshold: exactly, or among nearby k-means cells.

Tail Batch Sampling keeps, per item, at most ``k`` of its most similar items above a similarity
threshold; ProSampler's kNN graph is the same search with no threshold. Both run here, in JAX on the
device that holds the vectors, in fixed-shape chunks whose results are fetched one at a time, so
device memory is one chunk and the caller's host holds ``O(N·k)`` (never ``N²``):

- :func:`exact_top_k`: every query against every key (row strips × column blocks, a running
  ``top_k``). ``O(N²·D)`` work.
- :func:`cell_top_k`: the keys are cut into k-means cells (:mod:`prosampler_jax.kmeans`) and the
  queries of one cell are scored against a fixed budget of candidate keys taken from their own cell and
  the cells whose centroids are nearest. ``O(N·candidates·D)`` work: approximate, for millions of items.

Queries and keys are separate arrays so that paired data can use a similarity that is not a plain
cosine (Tail Batch Sampling's symmetrised ``(x·yᵀ + y·xᵀ)/2`` is ``[x, y]/2 · [y, x]``); with one
array, pass it twice. Item ``i``'s query is never matched with item ``i``'s key.

Why thresholded entries are set to −inf before ``top_k``: XLA's CPU ``top_k`` is 2–4× the cost of the
matrix product on dense rows but much cheaper when most entries are −inf (measured on a 2-core CPU,
D = 128), and the tail keeps a small fraction of each row.
"""

from __future__ import annotations

import functools
import typing

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from prosampler_jax import kmeans

# Exact search: query rows per strip and the most key columns per block.
EXACT_ROWS = 256
EXACT_MAX_COLS = 16_384
# Cell search: items per block (a cell holds whole blocks) and query blocks per fetched chunk.
CELL_BLOCK = 128
_CELL_CHUNK_BLOCKS = 8
# top_k(method="knn"): mean items per k-means cell, and candidate keys each query is scored against (its
# own cell and the nearest ones). Recall of the exact tail edges: 1.0 at 100k clustered items.
CELL_ITEMS = 1024
CELL_CANDIDATES = 4096
# top_k(method="auto") searches exactly up to this many items and among k-means cells beyond
# (experiments/bench/tail.py: on a 2-core CPU at D = 128 the cell search is 9× faster at 100k items).
AUTO_EXACT_MAX_N = 20_000
METHODS = ("auto", "exact", "knn")


def top_k(queries: jax.Array, keys: jax.Array, points: jax.Array, k: int, *, threshold: float = -np.inf,
          method: str = "auto", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Host (values, ids) ``[N, k]`` of each query's top ``k`` keys above ``threshold``, by ``method``:
  "exact" (:func:`exact_top_k`), "knn" (:func:`cell_top_k` with cells of about 1,024 ``points`` and
  4,096 candidates) or "auto" (exact up to ``AUTO_EXACT_MAX_N`` items)."""
  n = queries.shape[0]
  if method == "auto":
    method = "exact" if n <= AUTO_EXACT_MAX_N else "knn"
  if method == "exact":
    return exact_top_k(queries, keys, k, threshold=threshold)
  return cell_top_k(queries, keys, points, k, threshold=threshold, num_cells=max(1, n // CELL_ITEMS),
                    candidates=CELL_CANDIDATES, seed=seed)


def column_table(keys: jax.Array, key_ids: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """``keys`` ``[N, D]`` as column blocks ``[C, cols, D]`` with their item ids ``[C, cols]`` (−1: padding).

  ``cols`` ≤ 16 384, a multiple of 128, and the blocks split N as evenly as that allows.
  """
  n, d = keys.shape
  num_blocks = -(-n // EXACT_MAX_COLS)
  cols = -(-(-(-n // num_blocks)) // 128) * 128
  pad = num_blocks * cols - n
  ids = jnp.arange(n, dtype=jnp.int32) if key_ids is None else jnp.asarray(key_ids, jnp.int32)
  table = jnp.pad(keys, ((0, pad), (0, 0))).reshape(num_blocks, cols, d)
  return table, jnp.pad(ids, (0, pad), constant_values=-1).reshape(num_blocks, cols)


def masked_top_k(queries, query_ids, keys, key_ids, threshold, k):
  """Per query row, the ``k`` largest ``queries · keys`` above ``threshold`` (traceable).

  ``queries`` ``[R, D]`` with item ids ``query_ids`` ``[R]``; ``keys`` ``[C, D]`` with ids ``key_ids``
  ``[C]`` (−1 marks padding). A key with the query's own id, a padding key and a product ≤
  ``threshold`` never count. Returns (values ``[R, k]`` descending, ids ``[R, k]``); slots with nothing
  left hold (−inf, −1). Full float32 precision, so products match host computations.
  """
  sims = jnp.dot(queries, keys.T, precision=lax.Precision.HIGHEST)
  bad = (key_ids[None, :] == query_ids[:, None]) | (key_ids[None, :] < 0) | ~(sims > threshold)
  values, idx = lax.top_k(jnp.where(bad, -jnp.inf, sims), k)
  return values, jnp.where(values > -jnp.inf, key_ids[idx], -1)


@functools.partial(jax.jit, static_argnames=("k",))
def top_k_blocks(queries, query_ids, table, table_ids, threshold, *, k):
  """:func:`masked_top_k` over key blocks ``table`` ``[C, cols, D]`` (ids ``[C, cols]``), one block at a
  time with a running merge, so memory is one ``[R, cols]`` block whatever the number of keys."""
  num_rows = queries.shape[0]

  def merge(best, block):
    top = masked_top_k(queries, query_ids, *block, threshold, k)
    values, idx = lax.top_k(jnp.concatenate([best[0], top[0]], axis=1), k)
    return (values, jnp.take_along_axis(jnp.concatenate([best[1], top[1]], axis=1), idx, axis=1)), None

  init = (jnp.full((num_rows, k), -jnp.inf, jnp.float32), jnp.full((num_rows, k), -1, jnp.int32))
  (values, ids), _ = lax.scan(merge, init, (table, table_ids))
  return values, ids


def exact_top_k(queries: jax.Array, keys: jax.Array, k: int, *, threshold: float = -np.inf,
                query_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Host (values ``[Q, k]``, ids ``[Q, k]``): each query's exact top ``k`` keys above ``threshold``.

  ``query_ids`` (default ``0 … Q − 1``) are the queries' item ids, each excluded from its own answer:
  pass them when the queries are a subset of the keys' items. Row strips of 256 queries run one after
  another; each strip's result is fetched while the next one computes, so the device holds one strip's
  similarities, and the host the ``[Q, k]`` answer.
  """
  n = queries.shape[0]
  table, table_ids = column_table(keys)
  rows = min(EXACT_ROWS, n)
  num_strips = -(-n // rows)
  ids_given = np.arange(n) if query_ids is None else np.asarray(query_ids)
  query_ids = jnp.asarray(np.resize(ids_given.astype(np.int32), num_strips * rows))
  padded = jnp.pad(queries, ((0, num_strips * rows - n), (0, 0)))
  threshold = jnp.float32(threshold)
  values, ids = np.empty((n, k), np.float32), np.empty((n, k), np.int32)

  def strip(start):
    return start, top_k_blocks(lax.dynamic_slice_in_dim(padded, start, rows),
                               lax.dynamic_slice_in_dim(query_ids, start, rows), table, table_ids,
                               threshold, k=k)

  def store(start, result):
    stop = min(start + rows, n)
    values[start:stop], ids[start:stop] = (np.asarray(a)[:stop - start] for a in result)

  _run_ahead((functools.partial(strip, s * rows) for s in range(num_strips)), store)
  return values, ids


def _run_ahead(jobs, consume) -> None:
  """Calls each job (which dispatches device work and returns ``(key, result)``) before consuming the
  previous job's result on the host, so the device computes one chunk while the host reads another."""
  pending = None
  for job in jobs:
    current = job()
    if pending is not None:
      consume(*pending)
    pending = current
  if pending is not None:
    consume(*pending)


def cell_top_k(queries: jax.Array, keys: jax.Array, cluster_points: jax.Array, k: int, *,
               threshold: float = -np.inf, num_cells: int, candidates: int,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Host (values ``[N, k]``, ids ``[N, k]``): each query's top ``k`` keys above ``threshold`` among
  about ``candidates`` keys from its own and the nearest k-means cells (approximate).

  ``cluster_points`` ``[N, D']`` places item i in a cell (spherical k-means, ``num_cells`` cells).
  Every cell is stored as whole blocks of 128 items; all query blocks of a cell share one candidate
  list: the blocks of the cells whose centroids are most similar to the cell's own (its own first), up
  to ``candidates // 128`` blocks. Every shape is fixed by (N, cells, candidates), so epochs with
  new embeddings reuse the compiled kernels.
  """
  n, d = queries.shape
  block = CELL_BLOCK
  num_candidate_blocks = max(1, candidates // block)
  centroids, cell = kmeans.spherical_kmeans(cluster_points, num_cells, seed=seed)
  layout = _cell_layout(np.asarray(cell), num_cells, block)
  candidate_blocks = _candidate_blocks(np.asarray(centroids @ centroids.T), layout,
                                       num_candidate_blocks)
  capacity = layout.slot_ids.shape[0]  # whole blocks, then one block of padding (index −1 → it)
  slot_ids = jnp.asarray(layout.slot_ids)
  gather = lambda a: jnp.where(slot_ids[:, None] >= 0, a[jnp.maximum(slot_ids, 0)], 0).reshape(
      capacity // block, block, d)
  query_table = gather(queries)
  key_table = query_table if keys is queries else gather(keys)
  id_table = slot_ids.reshape(-1, block)
  query_blocks = np.flatnonzero(layout.block_cell >= 0).astype(np.int32)
  chunk = _CELL_CHUNK_BLOCKS
  num_chunks = -(-query_blocks.size // chunk)
  dummy = capacity // block - 1  # the all-padding block
  query_blocks = np.concatenate([query_blocks, np.full(num_chunks * chunk - query_blocks.size, dummy,
                                                       np.int32)])
  cand = candidate_blocks[np.maximum(layout.block_cell[query_blocks], 0)]
  cand[layout.block_cell[query_blocks] < 0] = dummy
  values, ids = np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int32)
  threshold = jnp.float32(threshold)
  block_items = layout.slot_ids.reshape(-1, block)

  def chunk_job(rows):
    return rows, _cell_chunk(query_table, key_table, id_table, jnp.asarray(query_blocks[rows]),
                             jnp.asarray(cand[rows]), threshold, k=k)

  def store(rows, result):
    items = block_items[query_blocks[rows]].ravel()
    real = items >= 0
    values[items[real]], ids[items[real]] = (np.asarray(a).reshape(-1, k)[real] for a in result)

  _run_ahead((functools.partial(chunk_job, slice(c * chunk, (c + 1) * chunk))
              for c in range(num_chunks)), store)
  return values, ids


@functools.partial(jax.jit, static_argnames=("k",))
def _cell_chunk(query_table, key_table, id_table, query_blocks, candidate_blocks, threshold, *, k):
  """Top ``k`` of each query block's candidate blocks: ``[G, block, k]`` values and ids (one query
  block at a time: a ``lax.map`` measured 2× faster than a ``vmap`` over the chunk on a CPU)."""
  def one(blocks):
    qb, cand = blocks
    return masked_top_k(query_table[qb], id_table[qb], key_table[cand].reshape(-1, key_table.shape[-1]),
                        id_table[cand].reshape(-1), threshold, k)
  return lax.map(one, (query_blocks, candidate_blocks))


class _Layout(typing.NamedTuple):
  """Items grouped by cell into whole blocks."""
  slot_ids: np.ndarray     # [capacity]: the item in each slot, −1 for padding
  block_cell: np.ndarray   # [capacity / block]: each block's cell, −1 for unused blocks
  first_block: np.ndarray  # [cells]: a cell's first block
  num_blocks: np.ndarray   # [cells]: a cell's number of blocks


def _cell_layout(cell: np.ndarray, num_cells: int, block: int) -> _Layout:
  """Places the items of each cell in consecutive whole blocks; capacity is fixed by (N, cells).

  Each cell wastes less than one block, so ``ceil(N / block) + cells`` blocks always suffice; one
  more all-padding block is the target of every "no block" index.
  """
  n = cell.size
  capacity_blocks = -(-n // block) + num_cells + 1
  order = np.argsort(cell, kind="stable")
  counts = np.bincount(cell, minlength=num_cells)
  num_blocks = -(-counts // block)
  first_block = np.concatenate([[0], np.cumsum(num_blocks)[:-1]])
  first_item = np.concatenate([[0], np.cumsum(counts)[:-1]])
  sorted_cell = cell[order]
  rank = np.arange(n) - first_item[sorted_cell]
  slots = first_block[sorted_cell] * block + rank
  slot_ids = np.full(capacity_blocks * block, -1, np.int32)
  slot_ids[slots] = order
  block_cell = np.full(capacity_blocks, -1, np.int32)
  block_cell[:num_blocks.sum()] = np.repeat(np.arange(num_cells, dtype=np.int32), num_blocks)
  return _Layout(slot_ids, block_cell, first_block, num_blocks)


def _candidate_blocks(centroid_sims: np.ndarray, layout: _Layout, budget: int) -> np.ndarray:
  """int32 ``[cells, budget]``: each cell's candidate blocks, nearest cells first (its own first)."""
  num_cells = centroid_sims.shape[0]
  sims = centroid_sims.copy()
  sims[np.arange(num_cells), np.arange(num_cells)] = np.inf  # a cell's own blocks come first
  order = np.argsort(-sims, axis=1, kind="stable")
  blocks = layout.num_blocks[order]  # [cells, cells] blocks of the i-th nearest cell
  ends = np.cumsum(blocks, axis=1)
  wanted = np.arange(budget)
  position = np.stack([np.searchsorted(row, wanted, side="right") for row in ends])
  position_c = np.minimum(position, num_cells - 1)
  cells = np.take_along_axis(order, position_c, axis=1)
  before = np.take_along_axis(ends - blocks, position_c, axis=1)
  result = layout.first_block[cells] + wanted[None, :] - before
  dummy = layout.block_cell.size - 1
  return np.where(position < num_cells, result, dummy).astype(np.int32)
