"""SimCLR on random images with no input pipeline: what the step-time benchmarks train (no flags, no
TensorFlow, so it runs on the accelerator machines)."""

from __future__ import annotations

import jax
import numpy as np

from prosampler_jax import losses
from prosampler_jax.tasks import simclr


class SyntheticImageTask(simclr.SimCLRTask):
  """SimCLR's model, loss and bank rows on random images, with no input pipeline (no TensorFlow).

  For timing the training loop on any machine (the accelerator machines have no TensorFlow): item i is a
  fixed random uint8 image; its two views are the image and its mirror, sent as uint8 like SimCLR's.
  ``evaluate`` measures nothing (returns {}).
  """

  # pylint: disable-next=super-init-not-called  (SimCLRTask's constructor loads a dataset)
  def __init__(self, config, *, num_examples: int, image_size: int, seed: int = 0):
    # Only what the loop and SimCLRTask's forward and loss use.
    self._config = config
    self._loss = losses.bind(config.loss.name, config.loss, allowed=simclr.LOSSES)
    self.bank_dim = 2 * config.model.projection_dim
    self.num_examples = num_examples
    self.pretrain_labels = None
    self.pixel_mean, self.pixel_std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    self._images = np.random.default_rng(seed).integers(
        0, 256, (num_examples, image_size, image_size, 3), dtype=np.uint8)

  def make_model(self):
    return simclr.make_model(self._config, in_channels=3)

  def pretrain_batches(self, batches, *, window, start_batch):
    del window
    local = batches.shape[1] // jax.process_count()
    columns = slice(jax.process_index() * local, (jax.process_index() + 1) * local)
    for row in batches[start_batch:]:
      index = row[columns].astype(np.int32)
      view = self._images[index]
      yield {"inputs": {"view1": view, "view2": view[:, :, ::-1]}, "index": index}

  def evaluate(self, encode, *, final):
    del encode, final
    return {}
