"""A small convolutional encoder for 8x8 images (sklearn digits): fast enough for CPU tests and demos."""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from prosampler_jax import _checks
from prosampler_jax.models import _initializers


class _ConvBlock(nnx.Module):
  """3x3 conv (no bias: BN follows) → BatchNorm → ReLU."""

  def __init__(self, in_features: int, out_features: int, *, dtype, rngs: nnx.Rngs):
    self.conv = nnx.Conv(in_features, out_features, (3, 3), padding="SAME", use_bias=False,
                         kernel_init=_initializers.he_normal_fan_out, dtype=dtype, rngs=rngs)
    self.norm = nnx.BatchNorm(out_features, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return nnx.relu(self.norm(self.conv(x)))


class SmallCNN(nnx.Module):
  """Encoder conv(w)-conv(2w)-avgpool2-conv(4w)-global-avg-pool: NHWC images → [B, 4·width] float32.

  ``dtype`` is the compute dtype; parameters and features are float32. BatchNorm follows
  ``.train()`` / ``.eval()``.
  """

  def __init__(self, *, in_channels: int = 1, width: int = 32, dtype=jnp.float32, rngs: nnx.Rngs):
    self.in_channels = _checks.check_int("in_channels", in_channels, low=1)
    width = _checks.check_int("width", width, low=1)
    self.block1 = _ConvBlock(self.in_channels, width, dtype=dtype, rngs=rngs)
    self.block2 = _ConvBlock(width, 2 * width, dtype=dtype, rngs=rngs)
    self.block3 = _ConvBlock(2 * width, 4 * width, dtype=dtype, rngs=rngs)
    self.num_features = 4 * width

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != self.in_channels:
      raise ValueError(f"x must be NHWC images [B, H, W, {self.in_channels}], got shape {x.shape}.")
    x = self.block2(self.block1(x))
    x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
    x = self.block3(x)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))
