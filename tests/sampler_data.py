"""Embeddings with planted clusters and checks of batch arrays, shared by the sampler tests."""

from __future__ import annotations

import numpy as np


def planted_clusters(num_examples=2000, dim=16, clusters=20, noise=0.05, seed=0):
  """Unit-norm embeddings around ``clusters`` random unit centres (well separated); and the labels."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(clusters, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  labels = np.arange(num_examples) % clusters
  x = centres[labels] + noise * rng.normal(size=(num_examples, dim))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  return x.astype(np.float32), labels


def blobs(num_blobs, per_blob, dim=16, noise=0.02, seed=0):
  """``num_blobs`` tight blobs of ``per_blob`` consecutive items each (far apart); and the labels."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_blobs, dim))
  labels = np.repeat(np.arange(num_blobs), per_blob)
  x = centres[labels] / np.linalg.norm(centres[labels], axis=1, keepdims=True)
  return (x + noise * rng.normal(size=x.shape)).astype(np.float32), labels


def same_label_rate(batches, labels):
  """Share of in-batch pairs i != j whose items share a label."""
  lab = labels[batches]
  same = lab[:, :, None] == lab[:, None, :]
  b = batches.shape[1]
  return float((same.sum(axis=(1, 2)) - b).sum() / (batches.shape[0] * b * (b - 1)))


def assert_valid(batches, num_examples, num_batches, batch_size):
  """int32 ``[num_batches, batch_size]`` indices in range, no index twice in a row."""
  assert batches.dtype == np.int32
  assert batches.shape == (num_batches, batch_size)
  assert batches.min() >= 0 and batches.max() < num_examples
  assert all(np.unique(row).size == batch_size for row in batches), "a row repeats an index"
