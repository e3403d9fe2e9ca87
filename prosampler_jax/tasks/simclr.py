"""SimCLR on images: in-memory image sources, two stateless tf.data augmentations per item, a ResNet/CNN."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from prosampler_jax import data
from prosampler_jax import models


class SimCLRTask:
  """Images for contrastive pre-training (``pretrain`` split) and kNN / linear evaluation."""

  def __init__(self, config: ml_collections.ConfigDict):
    if config.dataset not in data.DATASETS:
      raise ValueError(f"config.dataset={config.dataset!r} is not supported; allowed: "
                       f"{', '.join(data.DATASETS)}.")
    self._config = config
    load = lambda split: data.load_image_source(config.dataset, split, data_dir=config.data_dir or None,
                                                seed=config.seed)
    pretrain = load("pretrain")
    labels = np.asarray(pretrain.labels)
    # Fully labeled pre-training data is the labeled train split itself (all but STL-10): load it once.
    fully_labeled = bool((labels >= 0).all())
    self._sources = {"pretrain": pretrain, "train": pretrain if fully_labeled else load("train"),
                     "test": load("test")}
    self.num_examples = len(pretrain)
    self.pretrain_labels = labels if fully_labeled else None
    overrides = {k: (tuple(v) if isinstance(v, (list, tuple)) else v)
                 for k, v in config.augment.items()}
    self._augment = dataclasses.replace(data.augment_config_for(config.dataset), **overrides)

  def num_classes(self) -> int:
    return self._sources["train"].num_classes

  def make_model(self):
    config = self._config
    return models.make_model(
        config.model.encoder, in_channels=self._sources["pretrain"].image_shape[-1],
        cifar_stem=config.model.cifar_stem, width=config.model.width or None,
        projection_dim=config.model.projection_dim,
        projection_hidden=config.model.projection_hidden or None,
        dtype=jnp.dtype(config.model.dtype), seed=config.seed)

  def pretrain_batches(self, batches: np.ndarray, *, window: int, start_batch: int
                       ) -> Iterator[dict[str, np.ndarray]]:
    dataset = data.pretrain_dataset(
        self._sources["pretrain"], batches, seed=self._config.seed, window=window,
        augment=self._augment, process_index=jax.process_index(),
        process_count=jax.process_count(), start_batch=start_batch)
    return dataset.as_numpy_iterator()

  def eval_batches(self, split: str) -> Iterator[dict[str, np.ndarray]]:
    dataset = data.eval_dataset(self._sources[split], batch_size=self._config.eval_batch_size)
    for element in dataset.as_numpy_iterator():
      yield {"inputs": element["image"], "label": element["label"], "mask": element["mask"]}
