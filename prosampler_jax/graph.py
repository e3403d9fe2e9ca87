"""ProSampler's (KDD'23) proximity graph: each item keeps its K most cosine-similar of M candidates.

``num_candidates`` M sets how hard the graph is: M = K is a random graph (walks give ≈ uniform
batches), M ≥ N − 1 is the kNN graph (hardest negatives). Three backends build it:

- ``"candidates"``: JAX on the default device; draws candidates, gathers them, one matmul per group
  of rows, ``top_k``; chunked over rows so memory is bounded by a chunk size, not by N·M·D.
- ``"exact"``: JAX blocked matmul of row blocks × column blocks with a running ``top_k`` merge.
- ``"nndescent"``: pynndescent on the host (approximate kNN), rows re-sorted by exact cosine.
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from prosampler_jax import _checks
from prosampler_jax.normalize import l2_normalize

BACKENDS = ("auto", "candidates", "exact", "nndescent")
# "auto" uses the exact kNN graph up to this N and pynndescent beyond it.
AUTO_EXACT_MAX_N = 20_000

# Rows that share one candidate draw: at most _MAX_GROUP_SIZE and at most (M + 1) / _DRAWS_PER_ITEM,
# so each item still lands in ≥ _DRAWS_PER_ITEM draws (keeps in-edges; see _candidate_graph).
_MAX_GROUP_SIZE = 64
_DRAWS_PER_ITEM = 16
# Working-set budget of one jitted chunk (gathered vectors + similarities), in bytes.
_CHUNK_BYTES = 48 << 20
# Exact backend: rows per block and the most columns per block.
_EXACT_ROWS = 256
_EXACT_MAX_COLS = 16_384
# The oversampled draw falls short of M + 1 distinct items with at most this probability per group.
_DRAW_FAILURE_PROB = 1e-12


def build_proximity_graph(embeddings, *, num_neighbors: int, num_candidates: int | None = None,
                          backend: str = "auto", seed: int = 0) -> np.ndarray:
  """Returns int32 ``[N, K]``: row i holds K distinct neighbours of i (not i), by decreasing cosine.

  Each row keeps the top ``num_neighbors`` K of ``num_candidates`` M candidates drawn uniformly
  without replacement from the other N − 1 items (``None`` or M ≥ N − 1: all, the kNN graph).
  ``backend``: "candidates", "exact" or "nndescent" (the last two build only the kNN graph), or
  "auto": "exact" for the kNN graph up to N = 20 000, "nndescent" beyond, "candidates" if M < N − 1.
  """
  emb = _checks.check_embeddings("embeddings", embeddings)
  n = emb.shape[0]
  k = _checks.check_int("num_neighbors", num_neighbors, low=1, high=n - 1)
  m = None if num_candidates is None else _checks.check_int("num_candidates", num_candidates, low=k)
  backend = _checks.check_choice("backend", backend, BACKENDS)
  seed = _checks.check_int("seed", seed, low=0, high=2**32 - 1)
  knn = m is None or m >= n - 1
  if backend == "auto":
    backend = "candidates" if not knn else "exact" if n <= AUTO_EXACT_MAX_N else "nndescent"
  if backend in ("exact", "nndescent") and not knn:
    raise ValueError(f"num_candidates={m} is out of range for backend={backend!r}, which builds "
                     f"the kNN graph; allowed: None or >= N - 1 = {n - 1} (or use "
                     "backend='candidates').")
  emb = l2_normalize(emb)  # unit rows (zero rows stay zero): a dot product is the cosine
  if backend == "nndescent":
    return _nndescent_graph(emb, k, seed)
  if knn:  # M ≥ N − 1: every other item is a candidate, which is the exact kNN graph.
    return _exact_graph(emb, np.arange(n, dtype=np.int32), k)
  return _candidate_graph(emb, k, m, seed)


# --------------------------------------------------------------------------------------------------
# "candidates": rows in groups sharing one uniform draw of M + 1 items.


def _candidate_graph(emb: np.ndarray, k: int, m: int, seed: int) -> np.ndarray:
  """Top-K of M uniform candidates per row, on the default device, in chunks of row groups.

  Sampling, in one line: random groups of rows share a uniform ordered draw of M + 1 items and each
  row drops itself (or the draw's last item), so every row's candidates are a uniform M-subset of
  the other N − 1 items at the cost of one matmul per group instead of a per-row N·M·D gather.
  Details: G = clip((M + 1) / 16, 1, 64) rows per group, so each item lands in ≥ 16 draws (keeps
  in-edges); a draw oversamples with replacement and keeps the first M + 1 distinct items in draw
  order (one sort, O(M log M)), or takes a permutation prefix if that is no dearer or it fell short.
  """
  n, d = emb.shape
  group = int(np.clip((m + 1) // _DRAWS_PER_ITEM, 1, _MAX_GROUP_SIZE))
  num_groups = -(-n // group)
  m1 = m + 1
  length = _oversample_length(n, m1)
  groups_per_chunk = max(1, min(num_groups, _CHUNK_BYTES // (4 * length * (d + group + 2))))
  num_chunks = -(-num_groups // groups_per_chunk)
  # Random groups (similar rows do not share draws); the tail is padded with repeats, then dropped.
  order = np.random.default_rng(seed).permutation(n).astype(np.int32)
  rows = np.resize(order, num_chunks * groups_per_chunk * group)
  rows = jnp.asarray(rows.reshape(num_chunks, groups_per_chunk, group))
  key = jax.random.key(seed)
  emb_device = jnp.asarray(emb)
  out = [_candidate_chunk(emb_device, rows[c], jax.random.fold_in(key, c), num_neighbors=k,
                          num_draw=m1, length=length) for c in range(num_chunks)]
  graph = np.empty((n, k), np.int32)
  graph[order] = np.asarray(jnp.concatenate(out)).reshape(-1, k)[:n]
  return graph


def _oversample_length(n: int, m1: int) -> int:
  """Draws (with replacement) holding ``m1`` distinct of ``n`` items w.p. ≥ 1 − 1e-12, or ``n``.

  The collision count of L uniform draws is close to Poisson with mean L − E[distinct]; ``n`` means
  "take a permutation prefix", which is cheaper than oversampling when M + 1 is close to N.
  """
  extra = 0
  while m1 + extra < n:
    length = m1 + extra
    mean = length + n * math.expm1(length * math.log1p(-1.0 / n))
    if extra > mean and _poisson_tail(extra, mean) < _DRAW_FAILURE_PROB:
      return length
    extra += max(1, extra // 8)
  return n


def _poisson_tail(e: int, mean: float) -> float:
  """P(X > e) for X ~ Poisson(mean), summed term by term (exact enough far into the tail)."""
  if mean <= 0:
    return 0.0
  total, i = 0.0, e + 1
  while True:
    term = math.exp(i * math.log(mean) - mean - math.lgamma(i + 1))
    total += term
    if i > mean and term < 1e-18 * max(total, 1e-300):
      return total
    i += 1


def _draw_oversampled(draws: jax.Array, n: int, m1: int):
  """Per row of ``draws`` ``[G_c, L]`` (uniform on ``[0, n)``, with replacement): first m1 distinct.

  The first ``m1`` distinct draws in draw order are a uniform m1-subset in uniform order. Returns
  (draws, keep [G_c, L], last [G_c, L] marking the m1-th kept draw, ok [G_c]: had m1 distinct).
  """
  num_groups, length = draws.shape
  positions = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), draws.shape)
  if n * length < 2**32:  # One single-operand sort of (value, position) packed into uint32.
    packed = jnp.sort(draws.astype(jnp.uint32) * jnp.uint32(length) + positions.astype(jnp.uint32))
    values = (packed // jnp.uint32(length)).astype(jnp.int32)
    sorted_pos = (packed % jnp.uint32(length)).astype(jnp.int32)
  else:
    values, sorted_pos = lax.sort((draws, positions), dimension=1, num_keys=2)
  first = jnp.concatenate([jnp.ones((num_groups, 1), bool), values[:, 1:] != values[:, :-1]],
                          axis=1)
  is_first = jax.vmap(lambda p, f: jnp.zeros((length,), bool).at[p].set(f, unique_indices=True))(
      sorted_pos, first)
  rank = jnp.cumsum(is_first, axis=1, dtype=jnp.int32)
  keep = is_first & (rank <= m1)
  return draws, keep, keep & (rank == m1), rank[:, -1] >= m1


def _draw_permutation(key: jax.Array, num_groups: int, n: int, m1: int, length: int):
  """Per group, the first ``m1`` items of a uniform permutation of ``n`` (padded to ``length``).

  Sorting by two random 32-bit words makes ties (which would bias the order) practically impossible.
  """
  bits = jax.random.bits(key, (2, num_groups, n), jnp.uint32)
  items = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32), (num_groups, n))
  _, _, perm = lax.sort((bits[0], bits[1], items), dimension=1, num_keys=2)
  draws = jnp.pad(perm[:, :m1], ((0, 0), (0, length - m1)))
  positions = jnp.broadcast_to(jnp.arange(length), draws.shape)
  return draws, positions < m1, positions == m1 - 1, jnp.ones((num_groups,), bool)


@functools.partial(jax.jit, static_argnames=("num_neighbors", "num_draw", "length"))
def _candidate_chunk(emb, rows, key, *, num_neighbors, num_draw, length):
  """Neighbours ``[G_c, G, K]`` of one chunk: ``rows`` ``[G_c, G]`` row ids, one draw per group."""
  n = emb.shape[0]
  num_groups = rows.shape[0]
  draw_key, permutation_key = jax.random.split(key)
  if length >= n:
    draw = _draw_permutation(permutation_key, num_groups, n, num_draw, length)
  else:
    draws = jax.random.randint(draw_key, (num_groups, length), 0, n, dtype=jnp.int32)
    draw = _draw_oversampled(draws, n, num_draw)
    draw = lax.cond(jnp.all(draw[3]), lambda: draw,  # Rare: some group drew too few distinct items.
                    lambda: _draw_permutation(permutation_key, num_groups, n, num_draw, length))
  cand, valid, last, _ = draw
  sims = jnp.einsum("gqd,gld->gql", emb[rows], emb[cand], precision=lax.Precision.HIGHEST)
  self_hit = valid[:, None, :] & (cand[:, None, :] == rows[:, :, None])
  has_self = jnp.any(self_hit, axis=-1, keepdims=True)
  use = valid[:, None, :] & ~self_hit & ~(last[:, None, :] & ~has_self)
  _, idx = lax.top_k(jnp.where(use, sims, -jnp.inf), num_neighbors)
  return jax.vmap(lambda c, i: c[i])(cand, idx)


# --------------------------------------------------------------------------------------------------
# "exact": blocked matmul with a running top-k.


def _exact_graph(emb: np.ndarray, query_rows: np.ndarray, k: int) -> np.ndarray:
  """Exact top-K neighbours (self excluded) of ``query_rows`` among all N items, in row blocks."""
  n, d = emb.shape
  num_col_blocks = -(-n // _EXACT_MAX_COLS)
  cols = -(-n // num_col_blocks)
  cols = -(-cols // 128) * 128
  table = np.zeros((num_col_blocks * cols, d), np.float32)
  table[:n] = emb
  table = jnp.asarray(table.reshape(num_col_blocks, cols, d))
  rows = min(_EXACT_ROWS, len(query_rows))
  num_row_blocks = -(-len(query_rows) // rows)
  padded = np.resize(query_rows.astype(np.int32), num_row_blocks * rows)
  emb_device = jnp.asarray(emb)
  out = [_exact_block(emb_device, table, jnp.asarray(padded[b * rows:(b + 1) * rows]),
                      num_neighbors=k) for b in range(num_row_blocks)]
  return np.asarray(jnp.concatenate(out))[:len(query_rows)]


@functools.partial(jax.jit, static_argnames=("num_neighbors",))
def _exact_block(emb, table, row_ids, *, num_neighbors):
  """Top-K columns of ``emb[row_ids] @ table.T`` over column blocks ``table`` ``[C, cols, D]``."""
  n = emb.shape[0]
  num_rows = row_ids.shape[0]
  queries = emb[row_ids]
  cols = table.shape[1]

  def merge(best, block):
    cols_block, offset = block
    col_ids = offset + jnp.arange(cols, dtype=jnp.int32)
    sims = jnp.dot(queries, cols_block.T, precision=lax.Precision.HIGHEST)
    bad = (col_ids[None, :] == row_ids[:, None]) | (col_ids[None, :] >= n)
    values = jnp.concatenate([best[0], jnp.where(bad, -jnp.inf, sims)], axis=1)
    ids = jnp.concatenate([best[1], jnp.broadcast_to(col_ids, (num_rows, cols))], axis=1)
    top, idx = lax.top_k(values, num_neighbors)
    return (top, jnp.take_along_axis(ids, idx, axis=1)), None

  init = (jnp.full((num_rows, num_neighbors), -jnp.inf, jnp.float32),
          jnp.full((num_rows, num_neighbors), -1, jnp.int32))
  offsets = jnp.arange(table.shape[0], dtype=jnp.int32) * cols
  (_, ids), _ = lax.scan(merge, init, (table, offsets))
  return ids


# --------------------------------------------------------------------------------------------------
# "nndescent": pynndescent on the host.


def _nndescent_graph(emb: np.ndarray, k: int, seed: int) -> np.ndarray:
  """Approximate kNN graph by pynndescent (K + 1 neighbours, self dropped), sorted by cosine."""
  # numba compiles pynndescent for ~45 s per fresh process (less with a cache); its OpenMP threads
  # busy-wait on small VMs (DESIGN §6). Defaults only: a caller's own settings win.
  os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache",
                                                        "prosampler_jax", "numba"))
  os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
  import pynndescent  # pylint: disable=g-import-not-at-top  (slow import, only for this backend)

  n = emb.shape[0]
  index = pynndescent.NNDescent(emb, metric="cosine", n_neighbors=k + 1, random_state=seed)
  ids = np.asarray(index.neighbor_graph[0], np.int64)
  graph, complete = _first_k_valid(ids, k)
  bad = np.flatnonzero(~complete)
  if bad.size:  # Rare: too few distinct non-self ids returned; use the exact rows there.
    graph[bad] = _exact_graph(emb, bad.astype(np.int32), k)
  return _sort_rows_by_cosine(emb, graph)


def _first_k_valid(ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
  """First K ids per row in range, not the row itself, not repeated; and which rows had K."""
  n = ids.shape[0]
  order = np.argsort(ids, axis=1, kind="stable")
  sorted_ids = np.take_along_axis(ids, order, axis=1)
  repeat = np.zeros_like(ids, dtype=bool)
  np.put_along_axis(repeat, order[:, 1:], sorted_ids[:, 1:] == sorted_ids[:, :-1], axis=1)
  valid = (ids >= 0) & (ids < n) & (ids != np.arange(n)[:, None]) & ~repeat
  first = np.argsort(~valid, axis=1, kind="stable")[:, :k]
  graph = np.take_along_axis(ids, first, axis=1).astype(np.int32)
  return graph, valid.sum(axis=1) >= k


def _sort_rows_by_cosine(emb: np.ndarray, graph: np.ndarray, chunk: int = 2048) -> np.ndarray:
  """Each row of ``graph`` re-ordered by decreasing exact cosine to its item (stable on ties)."""
  out = np.empty_like(graph)
  for s in range(0, graph.shape[0], chunk):
    ids = graph[s:s + chunk]
    sims = np.einsum("nd,nkd->nk", emb[s:s + chunk], emb[ids])
    out[s:s + chunk] = np.take_along_axis(ids, np.argsort(-sims, axis=1, kind="stable"), axis=1)
  return out
