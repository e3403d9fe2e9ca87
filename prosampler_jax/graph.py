"""ProSampler's (KDD'23) proximity graph: each item keeps its K most cosine-similar of M candidates.

``num_candidates`` M sets how hard the graph is: M = K is a random graph (walks give ≈ uniform
batches), M ≥ N − 1 is the kNN graph (hardest negatives). Three backends build it:

- ``"candidates"``: JAX on the device the bank lives on; every row draws its own M candidates (the
  paper's semantics), gathers them, scores them and keeps the ``top_k``; chunked over rows so memory
  is bounded by a chunk size, not by N·M·D. ``candidate_draw="shared"`` lets groups of rows share one
  draw (one matmul per group: faster, but rows are correlated; see ``CANDIDATE_DRAWS``).
- ``"exact"``: JAX blocked matmul of row blocks × column blocks with a running ``top_k`` merge.
- ``"nndescent"``: pynndescent on the host (approximate kNN), rows re-sorted by exact cosine.

``proximity_graph`` returns the graph where it was built (a ``jax.Array`` for the JAX backends), so a
bank on a device is normalised, scored and walked there without a host round trip;
``build_proximity_graph`` is the same graph as a NumPy array.
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
from prosampler_jax import neighbors
from prosampler_jax.normalize import l2_normalize

BACKENDS = ("auto", "candidates", "exact", "nndescent")
# How rows of the "candidates" backend draw: "per_row" (default), each row its own uniform M-subset of
# the other N − 1 items, independent across rows, as the paper does; "shared", random groups of up to
# 64 rows share one draw. Shared draws are cheaper (one matmul per group instead of a per-row gather)
# and each row is still uniform, but rows are correlated: in-degrees spread more, rows of one group can
# get identical neighbour lists when M ≈ K, and walk item frequencies are less even (measured in
# experiments/bench/candidate_draws.py).
CANDIDATE_DRAWS = ("per_row", "shared")
# "auto" uses the exact kNN graph up to this N and pynndescent beyond it.
AUTO_EXACT_MAX_N = 20_000

# Shared draws: rows per draw, at most _MAX_GROUP_SIZE and at most (M + 1) / _DRAWS_PER_ITEM, so each
# item still lands in ≥ _DRAWS_PER_ITEM draws (keeps in-edges; see _shared_draw_graph).
_MAX_GROUP_SIZE = 64
_DRAWS_PER_ITEM = 16
# Working-set budget of one chunk (gathered vectors + similarities), in bytes: small on a CPU (cache),
# large on an accelerator (fewer, fuller kernels).
_CHUNK_BYTES_CPU = 48 << 20
_CHUNK_BYTES_ACCELERATOR = 1 << 30
# The oversampled draw falls short of the wanted distinct items with at most this probability per row.
_DRAW_FAILURE_PROB = 1e-12


def build_proximity_graph(embeddings, *, num_neighbors: int, num_candidates: int | None = None,
                          backend: str = "auto", seed: int = 0,
                          candidate_draw: str = "per_row") -> np.ndarray:
  """Returns int32 ``[N, K]``: row i holds K distinct neighbours of i (not i), by decreasing cosine.

  Each row keeps the top ``num_neighbors`` K of ``num_candidates`` M candidates drawn uniformly
  without replacement from the other N − 1 items, independently per row (``None`` or M ≥ N − 1: all,
  the kNN graph). ``backend``: "candidates", "exact" or "nndescent" (the last two build only the kNN
  graph), or "auto": "exact" for the kNN graph up to N = 20 000, "nndescent" beyond, "candidates" if
  M < N − 1. ``candidate_draw``: one of ``CANDIDATE_DRAWS``.
  """
  return np.asarray(proximity_graph(embeddings, num_neighbors=num_neighbors,
                                    num_candidates=num_candidates, backend=backend, seed=seed,
                                    candidate_draw=candidate_draw))


def proximity_graph(embeddings, *, num_neighbors: int, num_candidates: int | None = None,
                    backend: str = "auto", seed: int = 0, candidate_draw: str = "per_row"):
  """``build_proximity_graph`` without the copy to the host: a ``jax.Array`` on the bank's device for
  the JAX backends (a NumPy bank goes to the default device), a NumPy array for "nndescent"."""
  emb = _checks.check_embeddings("embeddings", embeddings, on_device=True)
  n = emb.shape[0]
  k = _checks.check_int("num_neighbors", num_neighbors, low=1, high=n - 1)
  m = None if num_candidates is None else _checks.check_int("num_candidates", num_candidates, low=k)
  backend = _checks.check_choice("backend", backend, BACKENDS)
  seed = _checks.check_int("seed", seed, low=0, high=2**32 - 1)
  candidate_draw = _checks.check_choice("candidate_draw", candidate_draw, CANDIDATE_DRAWS)
  knn = m is None or m >= n - 1
  if backend == "auto":
    backend = "candidates" if not knn else "exact" if n <= AUTO_EXACT_MAX_N else "nndescent"
  if backend in ("exact", "nndescent") and not knn:
    raise ValueError(f"num_candidates={m} is out of range for backend={backend!r}, which builds "
                     f"the kNN graph; allowed: None or >= N - 1 = {n - 1} (or use "
                     "backend='candidates').")
  emb = l2_normalize(emb)  # unit rows (zero rows stay zero), on the bank's device: dot = cosine
  if backend == "nndescent":
    return _nndescent_graph(np.asarray(emb), k, seed)
  if knn:  # M ≥ N − 1: every other item is a candidate, which is the exact kNN graph.
    return _exact_graph(emb, np.arange(n, dtype=np.int32), k)
  if candidate_draw == "shared":
    return _shared_draw_graph(emb, k, m, seed)
  return _per_row_graph(emb, k, m, seed)


def _chunk_bytes(array: jax.Array) -> int:
  """The working-set budget of one chunk on the platform that holds ``array``."""
  platform = next(iter(array.devices())).platform
  return _CHUNK_BYTES_CPU if platform == "cpu" else _CHUNK_BYTES_ACCELERATOR


# --------------------------------------------------------------------------------------------------
# "candidates", per row: each row its own uniform M-subset of the other N − 1 items.


def _per_row_graph(emb: jax.Array, k: int, m: int, seed: int) -> jax.Array:
  """Top-K of M candidates drawn independently per row; one jitted call, rows in chunks.

  Row i's draw depends only on (seed, i): L ≥ M uniform draws with replacement from the N − 1 other
  items (ids ≥ i shifted by one), of which the first M distinct in draw order are kept; L is chosen
  so that fewer than M distinct happens with probability < 1e-12, and then that row takes a prefix of
  a random permutation instead. Chunking only bounds memory and does not change the result.
  """
  n, d = emb.shape
  length = _oversample_length(n - 1, m)
  chunk = int(max(1, min(n, _chunk_bytes(emb) // (4 * length * (d + 4)))))
  num_chunks = -(-n // chunk)
  graph = _per_row_chunks(emb, jax.random.key(seed), num_neighbors=k, num_draw=m, length=length,
                          chunk=chunk, num_chunks=num_chunks)
  return graph[:n]


@functools.partial(jax.jit, static_argnames=("num_neighbors", "num_draw", "length", "chunk",
                                             "num_chunks"))
def _per_row_chunks(emb, key, *, num_neighbors, num_draw, length, chunk, num_chunks):
  """Neighbours ``[num_chunks · chunk, K]`` (rows past N repeat earlier rows and are dropped)."""
  n = emb.shape[0]
  others = n - 1

  def draw_rows(rows):
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(rows)
    split = jax.vmap(jax.random.split)(keys)
    permutation = lambda: jax.vmap(
        lambda kk: _draw_permutation(kk, 1, others, num_draw, length)[0][0])(split[:, 1])
    if length >= others:
      return permutation(), jnp.arange(length)[None, :] < num_draw
    draws = jax.vmap(lambda kk: jax.random.randint(kk, (length,), 0, others, dtype=jnp.int32))(
        split[:, 0])
    draws, keep, _, ok = _draw_oversampled(draws, others, num_draw)
    # Rare: a row drew too few distinct items; only that row takes a permutation prefix instead.
    fallback = lax.cond(jnp.all(ok), lambda: draws, permutation)
    draws = jnp.where(ok[:, None], draws, fallback)
    keep = jnp.where(ok[:, None], keep, jnp.arange(length)[None, :] < num_draw)
    return draws, keep

  def one_chunk(rows):
    draws, keep = draw_rows(rows)
    cand = draws + (draws >= rows[:, None]).astype(jnp.int32)  # skip the row itself
    sims = jnp.einsum("rd,rld->rl", emb[rows], emb[cand], precision=lax.Precision.HIGHEST)
    _, idx = lax.top_k(jnp.where(keep, sims, -jnp.inf), num_neighbors)
    return jnp.take_along_axis(cand, idx, axis=1)

  rows = (jnp.arange(num_chunks * chunk, dtype=jnp.int32) % n).reshape(num_chunks, chunk)
  return lax.map(one_chunk, rows).reshape(-1, num_neighbors)


# --------------------------------------------------------------------------------------------------
# "candidates", shared: rows in groups sharing one uniform draw of M + 1 items (opt-in).


def _shared_draw_graph(emb: jax.Array, k: int, m: int, seed: int) -> jax.Array:
  """Top-K of M uniform candidates per row, where random groups of rows share one draw.

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
  groups_per_chunk = max(1, min(num_groups, _CHUNK_BYTES_CPU // (4 * length * (d + group + 2))))
  num_chunks = -(-num_groups // groups_per_chunk)
  # Random groups (similar rows do not share draws); the tail is padded with repeats, then dropped.
  order = np.random.default_rng(seed).permutation(n).astype(np.int32)
  rows = np.resize(order, num_chunks * groups_per_chunk * group)
  rows = jnp.asarray(rows.reshape(num_chunks, groups_per_chunk, group))
  key = jax.random.key(seed)
  out = [_shared_draw_chunk(emb, rows[c], jax.random.fold_in(key, c), num_neighbors=k,
                            num_draw=m1, length=length) for c in range(num_chunks)]
  neighbors = jnp.concatenate(out).reshape(-1, k)[:n]
  return jnp.zeros((n, k), jnp.int32).at[jnp.asarray(order)].set(neighbors)


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
def _shared_draw_chunk(emb, rows, key, *, num_neighbors, num_draw, length):
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


def _exact_graph(emb, query_rows: np.ndarray, k: int) -> jax.Array:
  """Exact top-K neighbours (self excluded) of ``query_rows`` among all N items, in row blocks
  (:func:`neighbors.top_k_blocks`: column blocks with a running top-k; the graph stays on the device)."""
  emb = jnp.asarray(emb)
  table, table_ids = neighbors.column_table(emb)
  rows = min(neighbors.EXACT_ROWS, len(query_rows))
  num_row_blocks = -(-len(query_rows) // rows)
  padded = jnp.asarray(np.resize(query_rows.astype(np.int32), num_row_blocks * rows))
  no_threshold = jnp.float32(-jnp.inf)
  out = [neighbors.top_k_blocks(emb[ids], ids, table, table_ids, no_threshold, k=k)[1]
         for ids in (padded[b * rows:(b + 1) * rows] for b in range(num_row_blocks))]
  return jnp.concatenate(out)[:len(query_rows)]


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
    graph[bad] = np.asarray(_exact_graph(emb, bad.astype(np.int32), k))
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
