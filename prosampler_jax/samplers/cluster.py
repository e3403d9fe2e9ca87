"""Cluster batches (CDE, Morris & Rush 2024; TAS-Balanced, Hofstätter et al., SIGIR'21): each batch is
drawn from one k-means cluster of the embeddings, so its negatives share a topic.

Once per epoch (:class:`~prosampler_jax.samplers.epoch_order.EpochOrderSampler`):

1. Spherical k-means (:mod:`prosampler_jax.kmeans`) on the bank's device, about N/B clusters, a fixed
   number of Lloyd steps from seeded random starts, chunked so that millions of items fit.
2. The clusters are put in a route — a random order (``packing="random"``), or a greedy walk that
   starts at a random cluster and always moves to the nearest unvisited centroid (``"greedy"``, CDE's
   ``tsp_greedy``) — and each cluster's items are shuffled.
3. Each cluster gives ``⌊size / B⌋`` batches of its own items; the rest of every cluster (fewer than B
   each) are pooled in route order and cut into batches, so with ``"greedy"`` a pooled batch mixes
   neighbouring clusters, with ``"random"`` unrelated ones (in CDE too the route only decides which
   clusters share a batch at their boundaries). The batch order is then shuffled by (seed, epoch).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from prosampler_jax import _checks
from prosampler_jax import kmeans
from prosampler_jax.normalize import normalized_rows
from prosampler_jax.samplers import epoch_order

PACKINGS = ("random", "greedy")
LLOYD_STEPS = 10  # Lloyd steps of the k-means (CDE runs faiss with 100 on a GPU; 10 here: cost)


class ClusterSampler(epoch_order.EpochOrderSampler):
  """Batches of B items from one k-means cluster each (about N/B clusters), the rest pooled in route
  order; ``packing``: the route through the clusters, one of ``PACKINGS``."""

  bank_on_device = True

  def __init__(self, num_examples: int, batch_size: int, *, packing: str = "random", seed: int = 0):
    super().__init__(num_examples, batch_size, seed=seed)
    self.packing = _checks.check_choice("packing", packing, PACKINGS)

  def _params(self) -> dict[str, Any]:
    return {**super()._params(), "packing": self.packing}

  def _cut(self, pool: np.ndarray, embeddings, rng: np.random.Generator) -> np.ndarray:
    b = self.batch_size
    count = pool.size // b
    centroids, cluster = kmeans.spherical_kmeans(normalized_rows(embeddings, jnp.asarray(pool)), count,
                                                 iterations=LLOYD_STEPS,
                                                 seed=int(rng.integers(0, 2**31 - 1)))
    route = (rng.permutation(count) if self.packing == "random" else
             greedy_route(np.asarray(centroids), int(rng.integers(0, count))))
    return cluster_batches(np.asarray(cluster), route, b, rng, pool)


def greedy_route(centroids: np.ndarray, start: int) -> np.ndarray:
  """The clusters in the order of a greedy walk: from ``start``, always to the most similar (cosine)
  unvisited centroid. O(C²) on the host; C = N / B is a few thousand at ImageNet scale."""
  sims = centroids @ centroids.T
  visited = np.zeros(len(centroids), bool)
  route = np.empty(len(centroids), np.int64)
  current = start
  for step in range(len(centroids)):
    route[step], visited[current] = current, True
    if step + 1 < len(centroids):
      current = int(np.argmax(np.where(visited, -np.inf, sims[current])))
  return route


def cluster_batches(cluster: np.ndarray, route: np.ndarray, batch_size: int, rng: np.random.Generator,
                    items: np.ndarray) -> np.ndarray:
  """int32 ``[n / B, B]`` batches of ``items`` (n a multiple of B) grouped by ``cluster``: every
  cluster's first ``⌊size / B⌋ · B`` items (in random order) as whole batches, then the rest of every
  cluster, in ``route`` order, cut into batches."""
  position = np.empty(route.size, np.int64)
  position[route] = np.arange(route.size)
  order = np.lexsort((rng.random(cluster.size), position[cluster]))  # by route, shuffled inside
  sorted_cluster = cluster[order]
  sizes = np.bincount(cluster, minlength=route.size)
  first = np.concatenate([[0], np.cumsum(sizes[route])])[position[sorted_cluster]]
  rank = np.arange(cluster.size) - first  # rank of each item inside its cluster
  whole = rank < (sizes[sorted_cluster] // batch_size) * batch_size
  batches = np.concatenate([order[whole], order[~whole]])
  return items[batches].reshape(-1, batch_size).astype(np.int32)
