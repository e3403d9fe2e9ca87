"""SimCLR on images (Chen et al. 2020): two augmented views per item, a ResNet/CNN + projection head,
an NT-Xent-family loss, and weighted-kNN / linear-probe evaluation on frozen features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from prosampler_jax import _checks
from prosampler_jax import losses
from prosampler_jax import models
from prosampler_jax.evaluation import linear_probe_accuracy, weighted_knn_accuracy
from prosampler_jax.normalize import pair_rows
from prosampler_jax.tasks._pairs import bank_halves, exclusion_labels, label_inputs

LOSSES = ("nt_xent", "dcl", "hcl")  # the SimCLR family: 2B anchors, both views of other items negative


class SimCLRTask:
  """Images for contrastive pre-training (``pretrain`` split) and kNN / linear evaluation.

  Inputs are ``{"view1", "view2"}`` image batches; the bank row of an item is
  normalise(concat(normalise(z1), normalise(z2))), ``2 · projection_dim`` wide (ProSampler's bank).
  """

  def __init__(self, config: ml_collections.ConfigDict):
    # Everything that can be checked without data is checked first: a typo costs no data load.
    from prosampler_jax import data  # pylint: disable=g-import-not-at-top  (TensorFlow: only here)
    _checks.check_choice("config.dataset", config.dataset, data.DATASETS)
    _checks.check_choice("config.model.encoder", config.model.encoder, models.ENCODERS)
    self._loss = losses.bind(config.loss.name, config.loss, allowed=LOSSES)
    self._augment = _augment_config(data, config)
    _checks.check_int("config.eval.knn_k", config.eval.knn_k, low=1)
    _checks.check_float("config.eval.knn_temperature", config.eval.knn_temperature, low=0.0,
                        low_open=True)
    _checks.check_int("config.eval.linear_epochs", config.eval.linear_epochs, low=1)
    _checks.check_float("config.eval.linear_learning_rate", config.eval.linear_learning_rate, low=0.0,
                        low_open=True)
    _checks.check_int("config.model.width", config.model.width, low=0)
    _checks.check_int("config.model.projection_hidden", config.model.projection_hidden, low=0)
    self._config, self._data = config, data
    self.bank_dim = 2 * _checks.check_int("config.model.projection_dim", config.model.projection_dim,
                                          low=1)

    load = lambda split: data.load_image_source(config.dataset, split, data_dir=config.data_dir or None,
                                                seed=config.seed, reader=config.data_reader)
    pretrain = load("pretrain")
    labels = np.asarray(pretrain.labels)
    # Fully labeled pre-training data is the labeled train split itself (all but STL-10): load it once.
    fully_labeled = bool((labels >= 0).all())
    self._sources = {"pretrain": pretrain, "train": pretrain if fully_labeled else load("train"),
                     "test": load("test")}
    self.num_examples = len(pretrain)
    self.pretrain_labels = labels if fully_labeled else None
    self._label_ids = exclusion_labels(config, self.pretrain_labels)
    self.pixel_mean, self.pixel_std = pretrain.mean, pretrain.std  # per channel, pixels in [0, 1]

  # -- data ------------------------------------------------------------------------------------------

  def pretrain_batches(self, batches: np.ndarray, *, window: int, start_batch: int
                       ) -> Iterator[dict[str, Any]]:
    # Built and started now (not on first use): the feeder calls this in its sampler thread, so the
    # pipeline's construction and first prefetched batches overlap training.
    elements = self._data.pretrain_dataset(
        self._sources["pretrain"], batches, seed=self._config.seed, window=window,
        augment=self._augment, process_index=jax.process_index(),
        process_count=jax.process_count(), start_batch=start_batch).as_numpy_iterator()
    return ({"inputs": {"view1": e["view1"], "view2": e["view2"],
                        **label_inputs(self._label_ids, e["index"])}, "index": e["index"]}
            for e in elements)

  def _eval_batches(self, split: str) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of each un-augmented evaluation batch, with item indices and labels; the
    pipeline reads and decodes only those rows."""
    batch_size = self._config.eval_batch_size
    local = batch_size // jax.process_count()
    first = jax.process_index() * local
    dataset = self._data.eval_dataset(self._sources[split], batch_size=batch_size,
                                      process_index=jax.process_index(),
                                      process_count=jax.process_count())
    for number, element in enumerate(dataset.as_numpy_iterator()):
      index = np.where(element["mask"], number * batch_size + first + np.arange(local), -1)
      yield {"inputs": element["image"], "index": index.astype(np.int32), "label": element["label"]}

  # -- model and loss --------------------------------------------------------------------------------

  def make_model(self) -> nnx.Module:
    return make_model(self._config, in_channels=self._sources["pretrain"].image_shape[-1])

  def forward(self, model: nnx.Module, inputs: dict[str, jax.Array]):
    """Both views in one pass, so BatchNorm normalises over all 2B images; returns (z1, z2, label ids
    or None).

    The uint8 views are normalised here, on the device (per-channel mean and std of [0, 1] pixels). They
    are stacked per item ([B, 2, ...] → [2B, ...]): each device's rows stay on that device, so no image
    moves between devices.
    """
    view1, view2 = inputs["view1"], inputs["view2"]
    batch = view1.shape[0]
    x = jnp.stack([view1, view2], axis=1).reshape(2 * batch, *view1.shape[1:])
    mean, std = (jnp.asarray(v, jnp.float32) for v in (self.pixel_mean, self.pixel_std))
    x = (x.astype(jnp.float32) * (1.0 / 255.0) - mean) / std
    _, projections = model(x)
    projections = projections.reshape(batch, 2, -1)
    return projections[:, 0], projections[:, 1], inputs.get("label")

  def loss_and_rows(self, outputs, *, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    z1, z2, labels = outputs
    return self._loss(z1, z2, labels=labels, axis_name=axis_name), pair_rows(z1, z2)

  def sampler_view(self, bank: jax.Array) -> jax.Array:
    """The rows themselves, even for samplers that read pairs: SimCLR's two views are augmentations of
    one image, not two sides of a pair whose cross-view similarity TBS symmetrises (image–text, or a
    sentence and its positive); the row (both views) is the image's representation."""
    return bank

  def bank_pair(self, bank: jax.Array) -> tuple[jax.Array, jax.Array]:
    return bank_halves(bank)

  # -- evaluation ------------------------------------------------------------------------------------

  def evaluate(self, encode: Callable[..., dict[str, np.ndarray]], *, final: bool) -> dict[str, float]:
    """Weighted kNN accuracy (every call) and, when ``final``, linear-probe accuracy."""
    config = self._config
    train, test = encode(self._eval_batches("train")), encode(self._eval_batches("test"))
    split = (train["features"], train["label"], test["features"], test["label"])
    num_classes = self._sources["train"].num_classes
    metrics = {"knn_accuracy": weighted_knn_accuracy(*split, num_classes=num_classes,
                                                     k=config.eval.knn_k,
                                                     temperature=config.eval.knn_temperature)}
    if final:
      metrics["linear_accuracy"] = linear_probe_accuracy(
          *split, num_classes=num_classes, epochs=config.eval.linear_epochs,
          learning_rate=config.eval.linear_learning_rate, seed=config.seed)
    return metrics


def make_model(config: ml_collections.ConfigDict, *, in_channels: int) -> nnx.Module:
  """SimCLR's encoder + projection head as ``config.model`` describes it, for ``in_channels`` images."""
  return models.make_model(
      config.model.encoder, in_channels=in_channels, cifar_stem=config.model.cifar_stem,
      width=config.model.width or None, projection_dim=config.model.projection_dim,
      projection_hidden=config.model.projection_hidden or None, dtype=jnp.dtype(config.model.dtype),
      seed=config.seed)


def _augment_config(data, config: ml_collections.ConfigDict):
  """The dataset's default augmentations with the ``config.augment`` values that are set (not None)."""
  fields = [f.name for f in dataclasses.fields(data.AugmentConfig)]
  unknown = sorted(set(config.augment) - set(fields))
  if unknown:
    raise ValueError(f"config.augment has unknown key(s) {unknown}; allowed: {', '.join(fields)}.")
  overrides = {k: (tuple(v) if isinstance(v, (list, tuple)) else v)
               for k, v in config.augment.items() if v is not None}
  try:  # AugmentConfig's messages start with the field's name
    return dataclasses.replace(data.augment_config_for(config.dataset), **overrides)
  except ValueError as error:
    raise ValueError(f"config.augment.{error}") from None
