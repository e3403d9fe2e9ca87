"""Flax NNX models for contrastive training: encoders ``f``, projection head ``g``, ``make_model``."""

from __future__ import annotations

from flax import nnx
import jax.numpy as jnp

from prosampler_jax import _checks
from prosampler_jax.models.contrastive import ContrastiveModel
from prosampler_jax.models.gin import GIN
from prosampler_jax.models.gin import GraphCLModel
from prosampler_jax.models.heads import ProjectionHead
from prosampler_jax.models.resnet import ResNet
from prosampler_jax.models.resnet import ResNet18
from prosampler_jax.models.resnet import ResNet50
from prosampler_jax.models.small_cnn import SmallCNN

ENCODERS = ("small_cnn", "resnet18", "resnet50")
_DEFAULT_WIDTH = {"small_cnn": 32, "resnet18": 64, "resnet50": 64}


def make_model(encoder: str, *, in_channels: int, cifar_stem: bool = False, width: int | None = None,
               projection_dim: int = 128, projection_hidden: int | None = None, dtype=jnp.float32,
               seed: int = 0) -> ContrastiveModel:
  """Builds encoder + 2-layer projection head by name, initialised from ``seed`` (the trainers' entry).

  ``width`` None takes the encoder's standard width (32 for small_cnn, 64 for the ResNets);
  ``cifar_stem`` applies to the ResNets only (small_cnn has no stem to swap); ``projection_hidden`` None
  means the encoder's feature width. The model starts in training mode (BatchNorm uses batch statistics).
  """
  _checks.check_choice("encoder", encoder, ENCODERS)
  seed = _checks.check_int("seed", seed, low=0)
  # Checked before any parameter is drawn, so a bad head argument fails fast and under its own name.
  projection_dim = _checks.check_int("projection_dim", projection_dim, low=1)
  if projection_hidden is not None:
    projection_hidden = _checks.check_int("projection_hidden", projection_hidden, low=1)
  width = _DEFAULT_WIDTH[encoder] if width is None else width
  rngs = nnx.Rngs(seed)
  if encoder == "small_cnn":
    backbone = SmallCNN(in_channels=in_channels, width=width, dtype=dtype, rngs=rngs)
  else:
    constructor = ResNet18 if encoder == "resnet18" else ResNet50
    backbone = constructor(in_channels=in_channels, cifar_stem=cifar_stem, width=width, dtype=dtype,
                           rngs=rngs)
  head = ProjectionHead(backbone.num_features, hidden_features=projection_hidden,
                        out_features=projection_dim, rngs=rngs)
  return ContrastiveModel(backbone, head)


__all__ = ["ENCODERS", "GIN", "ContrastiveModel", "GraphCLModel", "ProjectionHead", "ResNet", "ResNet18",
           "ResNet50", "SmallCNN", "make_model"]
