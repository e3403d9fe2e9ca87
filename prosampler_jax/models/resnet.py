"""ResNet v1.5 encoders (He et al. 2016; torchvision layout) in Flax NNX for SimCLR.

The classifier is dropped: the encoder ends in global average pooling and returns the representation
``h`` of SimCLR (Chen et al. 2020), ``[B, F]`` float32. Inputs are NHWC.
"""

from __future__ import annotations

from collections.abc import Sequence

from flax import nnx
import jax
import jax.numpy as jnp

from prosampler_jax import _checks
from prosampler_jax.models import _initializers

BLOCKS = ("basic", "bottleneck")

# Explicit symmetric padding as in torchvision (SAME would pad stride-2 windows asymmetrically).
_POOL_PAD = ((1, 1), (1, 1))


def _conv(in_features: int, out_features: int, kernel: int, strides: int, *, dtype, rngs: nnx.Rngs):
  padding = "VALID" if kernel == 1 else ((kernel // 2, kernel // 2),) * 2
  return nnx.Conv(in_features, out_features, (kernel, kernel), (strides, strides), padding=padding,
                  use_bias=False, kernel_init=_initializers.he_normal_fan_out, dtype=dtype,
                  rngs=rngs)


def _norm(features: int, *, dtype, rngs: nnx.Rngs, zero_scale: bool = False) -> nnx.BatchNorm:
  # Flax momentum 0.9 == PyTorch momentum 0.1 (running = 0.9 * running + 0.1 * batch).
  scale_init = nnx.initializers.zeros if zero_scale else nnx.initializers.ones
  return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, dtype=dtype, scale_init=scale_init,
                       rngs=rngs)


class _Shortcut(nnx.Module):
  """Projection shortcut (1x1 conv + BN) used when a block changes stride or width."""

  def __init__(self, in_features: int, out_features: int, strides: int, *, dtype, rngs: nnx.Rngs):
    self.conv = _conv(in_features, out_features, 1, strides, dtype=dtype, rngs=rngs)
    self.norm = _norm(out_features, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.norm(self.conv(x))


def _shortcut(in_features, out_features, strides, *, dtype, rngs) -> _Shortcut | None:
  if strides == 1 and in_features == out_features:
    return None
  return _Shortcut(in_features, out_features, strides, dtype=dtype, rngs=rngs)


class BasicBlock(nnx.Module):
  """Two 3x3 convs (ResNet-18/34). The last BN scale starts at 0, so each block starts as identity."""

  expansion = 1

  def __init__(self, in_features: int, features: int, strides: int, *, dtype, rngs: nnx.Rngs):
    self.conv1 = _conv(in_features, features, 3, strides, dtype=dtype, rngs=rngs)
    self.norm1 = _norm(features, dtype=dtype, rngs=rngs)
    self.conv2 = _conv(features, features, 3, 1, dtype=dtype, rngs=rngs)
    self.norm2 = _norm(features, dtype=dtype, rngs=rngs, zero_scale=True)
    self.shortcut = _shortcut(in_features, features, strides, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.norm1(self.conv1(x)))
    y = self.norm2(self.conv2(y))
    residual = x if self.shortcut is None else self.shortcut(x)
    return nnx.relu(y + residual)


class BottleneckBlock(nnx.Module):
  """1x1 → 3x3 (holds the stride: v1.5) → 1x1, 4x expansion (ResNet-50); last BN scale starts at 0."""

  expansion = 4

  def __init__(self, in_features: int, features: int, strides: int, *, dtype, rngs: nnx.Rngs):
    out_features = features * self.expansion
    self.conv1 = _conv(in_features, features, 1, 1, dtype=dtype, rngs=rngs)
    self.norm1 = _norm(features, dtype=dtype, rngs=rngs)
    self.conv2 = _conv(features, features, 3, strides, dtype=dtype, rngs=rngs)
    self.norm2 = _norm(features, dtype=dtype, rngs=rngs)
    self.conv3 = _conv(features, out_features, 1, 1, dtype=dtype, rngs=rngs)
    self.norm3 = _norm(out_features, dtype=dtype, rngs=rngs, zero_scale=True)
    self.shortcut = _shortcut(in_features, out_features, strides, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    y = nnx.relu(self.norm1(self.conv1(x)))
    y = nnx.relu(self.norm2(self.conv2(y)))
    y = self.norm3(self.conv3(y))
    residual = x if self.shortcut is None else self.shortcut(x)
    return nnx.relu(y + residual)


class ResNet(nnx.Module):
  """ResNet v1.5 encoder ``f(·)`` of SimCLR: NHWC images → pooled features ``h``, [B, num_features].

  ``stage_sizes`` gives the number of blocks per stage (stage i has ``width * 2**i`` channels and, for
  i > 0, halves the resolution). ``cifar_stem=True`` is SimCLR's CIFAR variant: a 3x3 stride-1 stem conv
  and no max-pool; otherwise the ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool). ``dtype`` is
  the compute dtype (bfloat16 on accelerators); parameters and the returned features are float32.
  BatchNorm layers follow ``.train()`` / ``.eval()`` (batch statistics vs running averages). The last
  BN scale of every residual block starts at 0 (Goyal et al. 2017), so each block starts as the identity,
  which steadies early training at the large batch sizes contrastive learning uses.
  """

  def __init__(self, stage_sizes: Sequence[int], block: str, *, in_channels: int = 3,
               cifar_stem: bool = False, width: int = 64, dtype=jnp.float32, rngs: nnx.Rngs):
    _checks.check_choice("block", block, BLOCKS)
    if isinstance(stage_sizes, (str, bytes)) or not isinstance(stage_sizes, Sequence) or not stage_sizes:
      raise ValueError(f"stage_sizes={stage_sizes!r} is not supported; allowed: a non-empty sequence "
                       "of block counts >= 1.")
    stage_sizes = tuple(
        _checks.check_int(f"stage_sizes[{i}]", n, low=1) for i, n in enumerate(stage_sizes))
    self.in_channels = _checks.check_int("in_channels", in_channels, low=1)
    width = _checks.check_int("width", width, low=1)
    self.cifar_stem = bool(cifar_stem)

    if self.cifar_stem:
      self.stem_conv = _conv(self.in_channels, width, 3, 1, dtype=dtype, rngs=rngs)
    else:
      self.stem_conv = _conv(self.in_channels, width, 7, 2, dtype=dtype, rngs=rngs)
    self.stem_norm = _norm(width, dtype=dtype, rngs=rngs)

    block_cls = BasicBlock if block == "basic" else BottleneckBlock
    blocks = []
    in_features = width
    for stage, num_blocks in enumerate(stage_sizes):
      features = width * 2**stage
      for index in range(num_blocks):
        strides = 2 if stage > 0 and index == 0 else 1
        blocks.append(block_cls(in_features, features, strides, dtype=dtype, rngs=rngs))
        in_features = features * block_cls.expansion
    self.blocks = nnx.List(blocks)
    self.num_features = in_features

  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != self.in_channels:
      raise ValueError(f"x must be NHWC images [B, H, W, {self.in_channels}], got shape {x.shape}.")
    x = nnx.relu(self.stem_norm(self.stem_conv(x)))
    if not self.cifar_stem:
      x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=_POOL_PAD)
    for block in self.blocks:
      x = block(x)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def ResNet18(**kwargs) -> ResNet:  # pylint: disable=invalid-name
  """ResNet-18 (basic blocks [2, 2, 2, 2]); 512 features at width 64, ~11.2M parameters."""
  return ResNet((2, 2, 2, 2), "basic", **kwargs)


def ResNet50(**kwargs) -> ResNet:  # pylint: disable=invalid-name
  """ResNet-50 (bottleneck blocks [3, 4, 6, 3]); 2048 features at width 64, ~23.5M parameters."""
  return ResNet((3, 4, 6, 3), "bottleneck", **kwargs)
