"""Encoder + projection head: the model a contrastive trainer optimises (SimCLR's ``g(f(x))``)."""

from __future__ import annotations

from flax import nnx
import jax


class ContrastiveModel(nnx.Module):
  """Encoder ``f`` (features ``h``, for evaluation) then projection head ``g`` (``z``, for the loss)."""

  def __init__(self, encoder: nnx.Module, head: nnx.Module):
    self.encoder = encoder
    self.head = head

  @property
  def num_features(self) -> int:
    """Width of the representation ``h`` returned by :meth:`encode`."""
    return self.encoder.num_features

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns ``(features h, projections z)`` for a batch of inputs."""
    features = self.encoder(x)
    return features, self.head(features)

  def encode(self, x: jax.Array) -> jax.Array:
    """Returns the features ``h`` only (what kNN / linear evaluation uses)."""
    return self.encoder(x)
