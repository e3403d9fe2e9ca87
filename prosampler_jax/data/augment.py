"""SimCLR image augmentations (Chen et al. 2020) in TensorFlow, stateless: a seed fixes the output.

Every random draw uses ``tf.random.stateless_*`` / ``tf.image.stateless_*`` with a sub-seed split from
the one seed given, so a view is a pure function of (image, seed, config) and a resumed pipeline
reproduces the same views.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from prosampler_jax import _checks
from prosampler_jax.data import images as images_lib

_NUM_SUBSEEDS = 8  # crop, flip, jitter coin, jitter factors, grayscale coin, blur coin, blur sigma, noise


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """SimCLR augmentation settings; colour jitter of strength s uses brightness/contrast/saturation 0.8s
  and hue 0.2s (saturation and hue only for 3-channel images)."""

  crop_scale: tuple[float, float] = (0.08, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip: bool = True
  jitter_prob: float = 0.8
  jitter_strength: float = 0.5
  grayscale_prob: float = 0.2
  blur_prob: float = 0.0
  noise_std: float = 0.0

  def __post_init__(self):
    scale = _check_range("crop_scale", self.crop_scale, low=0.0, high=1.0)
    ratio = _check_range("crop_ratio", self.crop_ratio, low=0.0, high=None)
    object.__setattr__(self, "crop_scale", scale)
    object.__setattr__(self, "crop_ratio", ratio)
    if not isinstance(self.flip, bool):
      raise ValueError(f"flip must be a bool, got {self.flip!r}.")
    for name in ("jitter_prob", "grayscale_prob", "blur_prob"):
      object.__setattr__(self, name, _checks.check_probability(name, getattr(self, name)))
    # Hue shift 0.2·s must stay within tf.image's limit of 0.5.
    object.__setattr__(self, "jitter_strength",
                       _checks.check_float("jitter_strength", self.jitter_strength, low=0.0, high=2.5))
    object.__setattr__(self, "noise_std", _checks.check_float("noise_std", self.noise_std, low=0.0))


def _check_range(name: str, value, *, low: float, high: float | None) -> tuple[float, float]:
  """A pair (lo, hi) with low < lo <= hi (<= high)."""
  try:
    lo, hi = value
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a pair (low, high), got {value!r}.") from None
  lo = _checks.check_float(f"{name}[0]", lo, low=low, high=high, low_open=True)
  hi = _checks.check_float(f"{name}[1]", hi, low=lo, high=high)
  return (lo, hi)


def augment_config_for(name: str) -> AugmentConfig:
  """Per-dataset defaults: SimCLR's CIFAR recipe (s = 0.5, no blur) unless said otherwise.

  digits: crops keep ≥ 50% (8×8 inputs), no flip (digits are not mirror-invariant), no grayscale (one
  channel, so jitter is brightness/contrast only), small Gaussian noise. imagenet100, imagenet1k:
  SimCLR's ImageNet recipe (s = 1.0, blur with probability 0.5).
  """
  _checks.check_choice("dataset", name, images_lib.DATASETS)
  if name == "digits":
    return AugmentConfig(crop_scale=(0.5, 1.0), flip=False, grayscale_prob=0.0, noise_std=0.05)
  if name in ("imagenet100", "imagenet1k"):
    return AugmentConfig(jitter_strength=1.0, blur_prob=0.5)
  return AugmentConfig()


def augment_image(image, seed, *, config: AugmentConfig, out_size) -> tf.Tensor:
  """One random SimCLR view of one image: resized crop, flip, colour jitter, grayscale, blur, noise.

  ``image``: uint8 (or float in [0, 1]) ``[H, W, C]`` with C in (1, 3); ``seed``: int ``[2]`` stateless
  seed; ``out_size``: int or (h, w). Returns float32 ``[h, w, C]`` in [0, 1].
  """
  if not isinstance(config, AugmentConfig):
    raise ValueError(f"config must be an AugmentConfig, got {type(config).__name__}.")
  height, width = _check_out_size(out_size)
  image = tf.convert_to_tensor(image)
  if image.shape.rank != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"image must have shape [H, W, C] with C in (1, 3), got {image.shape}.")
  channels = image.shape[-1]
  if image.dtype == tf.uint8:
    image = tf.image.convert_image_dtype(image, tf.float32)
  else:
    image = tf.cast(image, tf.float32)
  seeds = tf.random.experimental.stateless_split(seed, num=_NUM_SUBSEEDS)

  image = _random_resized_crop(image, seeds[0], config, (height, width))
  if config.flip:
    image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
  if config.jitter_prob > 0 and config.jitter_strength > 0:
    image = _maybe(config.jitter_prob, seeds[2],
                   lambda x: _color_jitter(x, config.jitter_strength, seeds[3]), image)
  if config.grayscale_prob > 0 and channels == 3:
    image = _maybe(config.grayscale_prob, seeds[4],
                   lambda x: tf.tile(tf.image.rgb_to_grayscale(x), [1, 1, 3]), image)
  if config.blur_prob > 0:
    image = _maybe(config.blur_prob, seeds[5], lambda x: _gaussian_blur(x, seeds[6]), image)
  if config.noise_std > 0:
    noise = tf.random.stateless_normal(tf.shape(image), seed=seeds[7], stddev=config.noise_std)
    image = tf.clip_by_value(image + noise, 0.0, 1.0)
  return tf.ensure_shape(image, (height, width, channels))


def _check_out_size(out_size) -> tuple[int, int]:
  """``out_size`` as (h, w): an int means a square output."""
  if isinstance(out_size, (tuple, list)):
    if len(out_size) != 2:
      raise ValueError(f"out_size must be an int or a pair (h, w), got {out_size!r}.")
    return (_checks.check_int("out_size[0]", out_size[0], low=1),
            _checks.check_int("out_size[1]", out_size[1], low=1))
  size = _checks.check_int("out_size", out_size, low=1)
  return (size, size)


def _maybe(prob: float, seed, fn, image: tf.Tensor) -> tf.Tensor:
  """``fn(image)`` with probability ``prob`` (decided by ``seed``), else ``image``."""
  if prob >= 1.0:
    return fn(image)
  apply = tf.random.stateless_uniform([], seed=seed) < prob
  return tf.cond(apply, lambda: fn(image), lambda: image)


def _random_resized_crop(image: tf.Tensor, seed, config: AugmentConfig,
                         out_size: tuple[int, int]) -> tf.Tensor:
  """A crop covering ``crop_scale`` of the area with aspect ``crop_ratio``, resized to ``out_size``."""
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image),
      bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
      seed=seed,
      min_object_covered=0.0,
      aspect_ratio_range=config.crop_ratio,
      area_range=config.crop_scale,
      max_attempts=100,
      use_image_if_no_bounding_boxes=True)
  crop = tf.slice(image, begin, size)
  resized = tf.image.resize(crop, out_size, method="bilinear")
  return tf.ensure_shape(tf.clip_by_value(resized, 0.0, 1.0), (*out_size, image.shape[-1]))


def _color_jitter(image: tf.Tensor, strength: float, seed) -> tf.Tensor:
  """Brightness, contrast (and for RGB saturation, hue) jitter of strength s, in a fixed order."""
  seeds = tf.random.experimental.stateless_split(seed, num=4)
  amount = 0.8 * strength
  lower, upper = max(0.0, 1.0 - amount), 1.0 + amount
  factor = tf.random.stateless_uniform([], seed=seeds[0], minval=lower, maxval=upper)
  image = tf.clip_by_value(image * factor, 0.0, 1.0)  # Multiplicative brightness, as torchvision.
  image = tf.image.stateless_random_contrast(image, lower, upper, seed=seeds[1])
  image = tf.clip_by_value(image, 0.0, 1.0)
  if image.shape[-1] == 3:
    image = tf.image.stateless_random_saturation(image, lower, upper, seed=seeds[2])
    image = tf.image.stateless_random_hue(image, 0.2 * strength, seed=seeds[3])
    image = tf.clip_by_value(image, 0.0, 1.0)
  return image


def _gaussian_blur(image: tf.Tensor, seed) -> tf.Tensor:
  """Separable Gaussian blur, kernel ≈ 10% of the image height, sigma uniform in [0.1, 2.0]."""
  height, channels = image.shape[0], image.shape[-1]
  radius = max(1, round((0.1 * height - 1) / 2))
  sigma = tf.random.stateless_uniform([], seed=seed, minval=0.1, maxval=2.0)
  offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
  weights = tf.exp(-tf.square(offsets) / (2.0 * tf.square(sigma)))
  weights /= tf.reduce_sum(weights)
  vertical = tf.tile(tf.reshape(weights, (-1, 1, 1, 1)), [1, 1, channels, 1])
  horizontal = tf.tile(tf.reshape(weights, (1, -1, 1, 1)), [1, 1, channels, 1])
  padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
  blurred = tf.nn.depthwise_conv2d(padded, vertical, strides=[1, 1, 1, 1], padding="VALID")
  blurred = tf.nn.depthwise_conv2d(blurred, horizontal, strides=[1, 1, 1, 1], padding="VALID")
  return tf.clip_by_value(blurred[0], 0.0, 1.0)

