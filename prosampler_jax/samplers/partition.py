"""B3 batches (Thirukovalluru et al., NeurIPS'25): a balanced partition of a rank-window kNN graph.

Once per epoch (:class:`~prosampler_jax.samplers.epoch_order.EpochOrderSampler`):

1. Each item's ``rank_start + rank_window`` nearest other items by cosine
   (:func:`prosampler_jax.neighbors.top_k` on the bank's device: exact, or among k-means cells beyond
   20k items), of which only ranks ``[rank_start, rank_start + rank_window)`` (0 = the nearest) are
   kept: skipping the ``rank_start`` nearest is B3's guard against false negatives.
2. Only *mutual* pairs are edges (j in i's window and i in j's).
3. METIS (``pymetis``, a maintained wrapper of the reference partitioner B3 calls) splits the graph into
   N / B parts with few cut edges; parts larger than B give random members to a pool, from which the
   parts smaller than B are filled (the smallest from the items trimmed last, as B3 does), so every
   part is one batch of exactly B. The batch order is shuffled by (seed, epoch).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
import pymetis
from scipy import sparse

from prosampler_jax import _checks
from prosampler_jax import neighbors
from prosampler_jax.normalize import normalized_rows
from prosampler_jax.samplers import epoch_order

# B3's window at its scale (millions of items): skip the 30 nearest, keep the next 100.
B3_RANK_START = 30
B3_RANK_WINDOW = 100


def default_ranks(num_examples: int) -> tuple[int, int]:
  """(rank_start, rank_window) = (min(30, N // 100), min(100, max(1, N // 20))): B3's (30, 100) from
  N = 3,000 on (its guard, 30, is 1% of such a set) and the same shares of smaller sets, so a few
  thousand items keep a window of about a twentieth of the data and a guard of a hundredth."""
  return min(B3_RANK_START, num_examples // 100), min(B3_RANK_WINDOW, max(1, num_examples // 20))


class PartitionSampler(epoch_order.EpochOrderSampler):
  """Batches = the parts of a balanced METIS partition of the mutual rank-window kNN graph (B3).

  ``rank_start`` r0 and ``rank_window`` n: each item links to its neighbours of rank r0 … r0 + n − 1
  (0-based, the item itself excluded) when the link is mutual; ``None`` takes :func:`default_ranks`.
  """

  bank_on_device = True

  def __init__(self, num_examples: int, batch_size: int, *, rank_start: int | None = None,
               rank_window: int | None = None, seed: int = 0):
    super().__init__(num_examples, batch_size, seed=seed)
    start, window = default_ranks(self.num_examples)
    self.rank_start = start if rank_start is None else _checks.check_int("rank_start", rank_start, low=0)
    self.rank_window = (window if rank_window is None else
                        _checks.check_int("rank_window", rank_window, low=1))
    if self.rank_start + self.rank_window > self.num_examples - 1:
      raise ValueError(f"rank_start + rank_window = {self.rank_start + self.rank_window} is out of range; "
                       f"allowed: at most N − 1 = {self.num_examples - 1}.")

  def _params(self) -> dict[str, Any]:
    return {**super()._params(), "rank_start": self.rank_start, "rank_window": self.rank_window}

  def _cut(self, pool: np.ndarray, embeddings, rng: np.random.Generator) -> np.ndarray:
    b = self.batch_size
    count = pool.size // b
    n = pool.size
    start = min(self.rank_start, n - 2)
    k = min(start + self.rank_window, n - 1)
    x = normalized_rows(embeddings, jnp.asarray(pool))
    _, ids = neighbors.top_k(x, x, x, k, seed=int(rng.integers(0, 2**31 - 1)))
    adjacency = mutual_window_graph(ids, start)
    parts = _partition(adjacency, count, seed=int(rng.integers(0, 2**31 - 1)))
    return pool[balanced_parts(parts, count, b, rng)].astype(np.int32)


def mutual_window_graph(ids: np.ndarray, rank_start: int):
  """CSR (indptr, indices) of the pairs i–j with j in i's ranks ``[rank_start, k)`` of ``ids``
  ``[n, k]`` (best first; −1: none) and i in j's: the graph B3 partitions."""
  n = ids.shape[0]
  window = ids[:, rank_start:]
  keep = window >= 0
  indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
  directed = sparse.csr_array((np.ones(int(indptr[-1]), np.int8), window[keep], indptr), shape=(n, n))
  mutual = directed.multiply(directed.T).tocsr()  # (i, j) and (j, i) both present
  mutual.sort_indices()
  return mutual.indptr.astype(np.int64), mutual.indices.astype(np.int64)


def _partition(adjacency, num_parts: int, *, seed: int) -> np.ndarray:
  """METIS k-way part of every node (all 0 for one part)."""
  indptr, indices = adjacency
  if num_parts == 1:
    return np.zeros(len(indptr) - 1, np.int64)
  result = pymetis.part_graph(num_parts, pymetis.CSRAdjacency(indptr, indices),
                              options=pymetis.Options(seed=seed))
  return np.asarray(result.vertex_part, np.int64)


def balanced_parts(parts: np.ndarray, num_parts: int, batch_size: int,
                   rng: np.random.Generator) -> np.ndarray:
  """int ``[num_parts, B]`` node ids: every part trimmed or filled to exactly B (needs
  ``len(parts) = num_parts · B``). Parts go largest first: each gives random members beyond B to a pool;
  then each short part takes the pool's most recently added items."""
  members = [rng.permutation(np.flatnonzero(parts == p)) for p in range(num_parts)]
  pool: list[int] = []
  batches = []
  for p in sorted(range(num_parts), key=lambda p: -len(members[p])):  # stable: ties by part id
    own = members[p]
    pool.extend(own[batch_size:].tolist())
    own = own[:batch_size]
    need = batch_size - len(own)
    if need:
      own = np.concatenate([own, np.asarray(pool[-need:], np.int64)])
      del pool[-need:]
    batches.append(own)
  return np.stack(batches)
