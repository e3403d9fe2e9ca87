"""The package's one k-means: spherical k-means in JAX, on the device that holds the points.

Cosine is the similarity everywhere in this codebase, so the clusters are *spherical*: points and
centroids are unit vectors, a point joins the centroid with the largest dot product, and a centroid is
the normalised mean of its points. Used to cut a bank into cells (Tail Batch Sampling's kNN backend
searches each item's own and nearby cells only).

Every shape is fixed by (N, D, number of clusters, sample size), so a run compiles once per bank size,
and every random choice comes from ``seed``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from prosampler_jax import _checks
from prosampler_jax.normalize import l2_normalize

# Points whose similarities to the centroids are held at once (bounds memory at any N and C).
_ASSIGN_BYTES = 64 << 20
# Points per cluster used to fit the centroids: enough for a stable mean, far fewer than N.
_SAMPLE_PER_CLUSTER = 64


def spherical_kmeans(points, num_clusters: int, *, iterations: int = 10, seed: int = 0,
                     sample_size: int | None = None) -> tuple[jax.Array, jax.Array]:
  """Returns (unit centroids ``[C, D]``, int32 cluster of every point ``[N]``), both on the points' device.

  Centroids start by k-means++ (seeded) and are refined for ``iterations`` Lloyd steps on a random
  subset of ``sample_size`` points (default ``min(N, 64·C)``); then every point is assigned.
  A cluster that loses all its points keeps its previous centroid.
  """
  points = _checks.check_embeddings("points", points, on_device=True)
  n = points.shape[0]
  num_clusters = _checks.check_int("num_clusters", num_clusters, low=1, high=n)
  iterations = _checks.check_int("iterations", iterations, low=0)
  seed = _checks.check_int("seed", seed, low=0, high=2**32 - 1)
  if sample_size is None:
    sample_size = min(n, _SAMPLE_PER_CLUSTER * num_clusters)
  sample_size = _checks.check_int("sample_size", sample_size, low=num_clusters, high=n)
  return _kmeans(points, jax.random.key(seed), num_clusters=num_clusters, iterations=iterations,
                 sample_size=sample_size)


@functools.partial(jax.jit, static_argnames=("num_clusters", "iterations", "sample_size"))
def _kmeans(points, key, *, num_clusters, iterations, sample_size):
  points = l2_normalize(points)
  sample_key, init_key = jax.random.split(key)
  sample = points[jax.random.permutation(sample_key, points.shape[0])[:sample_size]]
  centroids = _plus_plus_init(sample, num_clusters, init_key)

  def lloyd_step(_, centroids):
    cluster = assign(sample, centroids)
    sums = jax.ops.segment_sum(sample, cluster, num_segments=num_clusters)
    counts = jax.ops.segment_sum(jnp.ones_like(cluster), cluster, num_segments=num_clusters)
    return jnp.where(counts[:, None] > 0, l2_normalize(sums), centroids)

  centroids = jax.lax.fori_loop(0, iterations, lloyd_step, centroids)
  return centroids, assign(points, centroids)


def _plus_plus_init(sample: jax.Array, num_clusters: int, key: jax.Array) -> jax.Array:
  """k-means++ starts: each next centroid is a sample point drawn with probability ∝ d², d = 1 − cosine
  to its nearest centroid so far. Random starts leave some well-separated clusters without a centroid
  and give others two, which Lloyd steps rarely undo."""
  first_key, key = jax.random.split(key)
  first = sample[jax.random.randint(first_key, (), 0, sample.shape[0])]
  centroids = jnp.zeros((num_clusters, sample.shape[1]), sample.dtype).at[0].set(first)

  def add(i, carry):
    centroids, nearest, key = carry
    key, draw_key = jax.random.split(key)
    weights = jnp.square(jnp.maximum(nearest, 0.0))
    logits = jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf)
    # All points already at a centroid (fewer distinct points than clusters): any point will do.
    logits = jnp.where(jnp.any(weights > 0), logits, 0.0)
    new = sample[jax.random.categorical(draw_key, logits)]
    return centroids.at[i].set(new), jnp.minimum(nearest, 1.0 - sample @ new), key

  nearest = 1.0 - sample @ first
  centroids, _, _ = jax.lax.fori_loop(1, num_clusters, add, (centroids, nearest, key))
  return centroids


def assign(points: jax.Array, centroids: jax.Array) -> jax.Array:
  """int32 index of each (unit) point's most similar centroid, in chunks of points (traceable)."""
  n, d = points.shape
  chunk = int(max(1, min(n, _ASSIGN_BYTES // (4 * max(centroids.shape[0], d)))))
  num_chunks = -(-n // chunk)
  padded = jnp.pad(points, ((0, num_chunks * chunk - n), (0, 0))).reshape(num_chunks, chunk, d)
  best = jax.lax.map(lambda rows: jnp.argmax(rows @ centroids.T, axis=1).astype(jnp.int32), padded)
  return best.reshape(-1)[:n]
