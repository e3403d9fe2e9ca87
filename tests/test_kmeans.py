"""Tests for prosampler_jax.kmeans: planted clusters are found, seeds decide everything, bad input fails."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import kmeans


def _planted(n=3000, dim=16, clusters=12, noise=0.05, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(clusters, dim))
  labels = rng.integers(0, clusters, n)
  return (centres[labels] + noise * rng.normal(size=(n, dim))).astype(np.float32), labels


def _purity(cluster, labels, num_labels):
  return np.mean([np.bincount(cluster[labels == c]).max() / (labels == c).sum() for c in range(num_labels)])


def test_planted_clusters_are_recovered():
  x, labels = _planted()
  centroids, cluster = kmeans.spherical_kmeans(x, 12, iterations=20, seed=0)
  cluster = np.asarray(cluster)
  assert _purity(cluster, labels, 12) > 0.99
  assert np.unique(cluster).size == 12  # no planted cluster shares a k-means cluster
  np.testing.assert_allclose(np.linalg.norm(np.asarray(centroids), axis=1), 1.0, rtol=1e-5)
  # Every point sits with its most similar centroid.
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)
  np.testing.assert_array_equal(cluster, np.argmax(unit @ np.asarray(centroids).T, axis=1))


@pytest.mark.parametrize("seed", range(5))
def test_plus_plus_starts_put_one_centroid_in_every_separated_cluster(seed):
  # Before any Lloyd step: random starts would leave some of 40 clusters empty and double others.
  x, labels = _planted(n=4000, clusters=40, seed=seed)
  _, cluster = kmeans.spherical_kmeans(x, 40, iterations=0, seed=seed)
  assert np.unique(np.asarray(cluster)).size == 40
  assert _purity(np.asarray(cluster), labels, 40) == 1.0


def test_lloyd_steps_tighten_noisy_clusters():
  x, _ = _planted(n=2000, clusters=20, noise=0.6)
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)
  fit = lambda c: np.mean(np.max(unit @ np.asarray(c).T, axis=1))
  start = kmeans.spherical_kmeans(x, 20, iterations=0, seed=0)[0]
  assert fit(kmeans.spherical_kmeans(x, 20, iterations=10, seed=0)[0]) > fit(start) + 0.01


def test_the_seed_decides_the_result():
  x, _ = _planted(n=500, clusters=30, noise=0.5)
  run = lambda seed: np.asarray(kmeans.spherical_kmeans(x, 30, seed=seed)[0])
  np.testing.assert_array_equal(run(1), run(1))
  assert not np.array_equal(run(1), run(2))


def test_an_emptied_cluster_keeps_its_centroid():
  # Two identical points and three clusters: a cluster that gets no point keeps its first centroid.
  x = jnp.asarray(np.array([[1, 0], [1, 0], [0, 1]], np.float32))
  centroids, cluster = kmeans.spherical_kmeans(x, 3, iterations=5, seed=0)
  assert np.isfinite(np.asarray(centroids)).all()
  assert np.unique(np.asarray(cluster)).size == 2


@pytest.mark.parametrize("kwargs,argument", [
    (dict(num_clusters=0), "num_clusters"),
    (dict(num_clusters=11), "num_clusters"),
    (dict(num_clusters=2, iterations=-1), "iterations"),
    (dict(num_clusters=4, sample_size=3), "sample_size"),
    (dict(num_clusters=2, seed=-1), "seed"),
])
def test_bad_arguments_raise(kwargs, argument):
  x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
  with pytest.raises(ValueError, match=argument):
    kmeans.spherical_kmeans(x, **kwargs)
