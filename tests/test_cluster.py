"""Tests for the cluster sampler (CDE / TAS-B): batches inside k-means clusters, leftovers pooled along
the route, greedy routes follow nearest centroids."""

from __future__ import annotations

import numpy as np
import pytest

import sampler_data
from prosampler_jax import samplers
from prosampler_jax.samplers import cluster


@pytest.mark.parametrize("packing", cluster.PACKINGS)
def test_every_batch_comes_from_one_blob(packing):
  x, labels = sampler_data.blobs(12, 40)  # 480 items, B = 40: 12 clusters, one per blob
  batches = samplers.ClusterSampler(480, 40, packing=packing, seed=0).sample(0, x)
  assert batches.shape == (12, 40) and np.unique(batches).size == 480
  assert all(np.unique(labels[b]).size == 1 for b in batches)


def test_whole_batches_stay_inside_a_cluster_and_the_rest_follows_the_route():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), [10, 7, 7])  # 24 items, B = 4
  route = np.array([2, 0, 1])
  batches = cluster.cluster_batches(labels, route, 4, rng, np.arange(24) + 100)
  assert np.array_equal(np.sort(batches.ravel()), np.arange(24) + 100)
  whole = batches[:2 + 1 + 1]  # ⌊7/4⌋ + ⌊10/4⌋ + ⌊7/4⌋ = 4 whole batches, in route order
  assert [np.unique(labels[b - 100]).tolist() for b in whole] == [[2], [0], [0], [1]]
  rest = labels[batches[4:].ravel() - 100]  # 3 of cluster 2, then 2 of 0, then 3 of 1
  assert rest.tolist() == [2, 2, 2, 0, 0, 1, 1, 1]


def test_the_greedy_route_always_moves_to_the_nearest_unvisited_centroid():
  angles = np.array([0.0, 3.0, 0.5, 2.0, 1.0])
  centroids = np.stack([np.cos(angles), np.sin(angles)], axis=1)
  assert cluster.greedy_route(centroids, 0).tolist() == [0, 2, 4, 3, 1]


def test_bad_packing_fails():
  with pytest.raises(ValueError, match="packing"):
    samplers.ClusterSampler(100, 10, packing="tsp")
