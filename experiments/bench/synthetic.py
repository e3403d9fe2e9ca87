"""Synthetic inputs the benchmarks share (no flags, no input pipeline, no TensorFlow)."""

from __future__ import annotations

import numpy as np

CLUSTERS = 100


def clustered_embeddings(n: int, seed: int, dim: int) -> np.ndarray:
  """``n`` float32 points around 100 random centres in D = ``dim`` (noise of the centres' scale)."""
  rng = np.random.default_rng(seed)
  centers = rng.standard_normal((CLUSTERS, dim))
  x = centers[rng.integers(0, CLUSTERS, n)] + 0.7 * rng.standard_normal((n, dim))
  return x.astype(np.float32)
