"""Uniform batches: the shuffle baseline every contrastive learner starts from, and its fixed variant."""

from __future__ import annotations

import numpy as np

from prosampler_jax.samplers import base


class UniformSampler(base.BatchSampler):
  """Shuffles the items and cuts them into batches of B (a random permutation per epoch).

  Windows of one epoch draw from the items the epoch has not used yet, so windows that partition an
  epoch together form one permutation of N (minus the ``N mod B`` remainder).
  """

  needs_embeddings = False

  def __init__(self, num_examples: int, batch_size: int, *, seed: int = 0):
    super().__init__(num_examples, batch_size, seed=seed)

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    del embeddings  # Uniform batches ignore the bank.
    return self._uniform_batches(epoch, window, num_batches)


class FixedSampler(UniformSampler):
  """One shuffle, then the same batches every epoch: the baseline GraphCL's released unsupervised TU code
  trained (issue 25: its published "GraphCL" column ran this way, not with a reshuffle per epoch).

  Every epoch (and every window of it) gives the batches ``UniformSampler`` gives in epoch 0 with the
  same seed, so only the seed chooses them.
  """

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    del epoch, embeddings  # The same batches every epoch; no bank.
    return self._uniform_batches(0, window, num_batches)
