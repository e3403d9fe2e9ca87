"""Tests for the B3 partition sampler: rank window, mutual edges, exact part sizes, one blob per batch."""

from __future__ import annotations

import numpy as np
import pytest

import sampler_data
from prosampler_jax import samplers
from prosampler_jax.samplers import partition


def test_the_graph_keeps_mutual_pairs_inside_the_rank_window_only():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 6)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  sims = x @ x.T
  np.fill_diagonal(sims, -np.inf)
  ranked = np.argsort(-sims, axis=1, kind="stable")[:, :25]
  indptr, indices = partition.mutual_window_graph(ranked.astype(np.int32), rank_start=5)
  edges = {(i, int(j)) for i in range(300) for j in indices[indptr[i]:indptr[i + 1]]}
  window = {(i, int(j)) for i in range(300) for j in ranked[i, 5:]}
  expected = {(i, j) for i, j in window if (j, i) in window}
  assert edges == expected and expected
  nearest = {(i, int(j)) for i in range(300) for j in ranked[i, :5]}
  assert not edges & nearest  # no pair of rank < rank_start is an edge
  assert all((j, i) in edges for i, j in edges)  # symmetric: METIS needs both directions


def test_parts_are_trimmed_or_filled_to_exactly_b():
  rng = np.random.default_rng(1)
  parts = np.repeat(np.arange(4), [13, 5, 8, 6])  # 32 nodes, 4 parts of 8 wanted
  batches = partition.balanced_parts(parts, 4, 8, rng)
  assert batches.shape == (4, 8)
  assert np.array_equal(np.sort(batches.ravel()), np.arange(32))
  # A part of 8 is kept whole; the 13-part keeps 8 of its own, the short parts are topped up.
  own = [np.isin(b, np.flatnonzero(parts == p)).sum() for b, p in zip(batches, [0, 2, 3, 1])]
  assert own == [8, 8, 6, 5]


def test_every_batch_comes_from_one_blob():
  # 480 items, B = 48: one blob per part. The window (ranks 2-41 of a blob's 47 others) gives every item
  # mutual edges; an item without any could be put in any part at no cut.
  x, labels = sampler_data.blobs(10, 48)
  sampler = samplers.PartitionSampler(480, 48, rank_start=2, rank_window=40, seed=0)
  batches = sampler.sample(0, x)
  assert batches.shape == (10, 48) and np.unique(batches).size == 480
  assert all(np.unique(labels[b]).size == 1 for b in batches)


def test_defaults_follow_the_documented_rule_and_bad_ranks_fail():
  assert partition.default_ranks(1_000_000) == (30, 100)
  assert partition.default_ranks(1437) == (14, 71)
  sampler = samplers.PartitionSampler(1437, 128)
  assert (sampler.rank_start, sampler.rank_window) == (14, 71)
  with pytest.raises(ValueError, match="rank_start"):
    samplers.PartitionSampler(100, 10, rank_start=-1)
  with pytest.raises(ValueError, match="rank_window"):
    samplers.PartitionSampler(100, 10, rank_window=0)
  with pytest.raises(ValueError, match="rank_start \\+ rank_window"):
    samplers.PartitionSampler(100, 10, rank_start=50, rank_window=50)
