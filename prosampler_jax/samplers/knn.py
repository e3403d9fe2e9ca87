"""kNN batches: an anchor and its B − 1 nearest neighbours (an ablation baseline, worse than uniform)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from prosampler_jax import neighbors
from prosampler_jax.normalize import l2_normalize
from prosampler_jax.samplers import base


class KnnSampler(base.BatchSampler):
  """Each batch is a random anchor plus its B − 1 exact nearest neighbours by cosine.

  The hardest possible batches; ProSampler (KDD'23) shows they train *worse* than uniform ones because
  they are full of false negatives. Anchors are drawn without replacement from the items this epoch's
  earlier windows have not covered (a window's batches are made at once, so they may overlap).
  """

  bank_on_device = True

  def __init__(self, num_examples: int, batch_size: int, *, seed: int = 0):
    super().__init__(num_examples, batch_size, seed=seed)

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    # Only the anchors' rows of the exact kNN graph (num_batches rows, not N).
    anchors = self._start_items(epoch, window, num_batches)
    unit = l2_normalize(embeddings)
    _, nearest = neighbors.exact_top_k(unit[jnp.asarray(anchors)], unit, self.batch_size - 1,
                                       query_ids=anchors)
    return np.concatenate([anchors[:, None], nearest], axis=1)
