"""Synthetic inputs the benchmarks share (no flags, no input pipeline, no TensorFlow)."""

from __future__ import annotations

import numpy as np

CLUSTERS = 100


def clustered_embeddings(n: int, seed: int, dim: int, clusters: int = CLUSTERS) -> np.ndarray:
  """``n`` float32 points around ``clusters`` random centres in D = ``dim`` (noise of the centres' scale).

  Within a cluster the noise is isotropic: the more items a cluster holds, the closer its nearest
  neighbours are to a random subset of it (what makes approximate kNN recall low on such data).
  """
  rng = np.random.default_rng(seed)
  centers = rng.standard_normal((clusters, dim))
  x = centers[rng.integers(0, clusters, n)] + 0.7 * rng.standard_normal((n, dim))
  return x.astype(np.float32)
