"""kNN batches: an anchor and its B − 1 nearest neighbours (an ablation baseline, worse than uniform)."""

from __future__ import annotations

import numpy as np

from prosampler_jax import graph as graph_lib
from prosampler_jax.samplers import base


class KnnSampler(base.BatchSampler):
  """Each batch is a random anchor plus its B − 1 exact nearest neighbours by cosine.

  The hardest possible batches; ProSampler (KDD'23) shows they train *worse* than uniform ones because
  they are full of false negatives. Anchors are drawn from the items this epoch has not covered yet.
  """

  bank_on_device = True

  def __init__(self, num_examples: int, batch_size: int, *, seed: int = 0):
    super().__init__(num_examples, batch_size, seed=seed)

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    neighbors = graph_lib.proximity_graph(
        embeddings, num_neighbors=self.batch_size - 1, num_candidates=None, backend="auto",
        seed=self._graph_seed(epoch, window))
    anchors = self._start_items(epoch, window, num_batches)
    return np.concatenate([anchors[:, None], np.asarray(neighbors[anchors])], axis=1)
