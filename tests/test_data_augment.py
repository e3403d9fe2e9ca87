"""Tests for prosampler_jax.data.augment: stateless SimCLR views (shape, range, seed determinism)."""

from __future__ import annotations

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf

from prosampler_jax.data import augment

# Every random branch switched on, so one call exercises crop, flip, jitter, grayscale, blur, noise.
_ALL_ON = augment.AugmentConfig(jitter_prob=1.0, grayscale_prob=0.5, blur_prob=0.5, noise_std=0.02)
# Deterministic identity: the whole square image, no colour change.
_IDENTITY = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False,
                                  jitter_prob=0.0, grayscale_prob=0.0)


def _image(channels, size=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (size, size, channels), dtype=np.uint8)


def _seed(a, b=0):
  return tf.constant([a, b], tf.int64)


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**31 - 1), channels=st.sampled_from([1, 3]),
                  out=st.sampled_from([8, (12, 10), 16]))
def test_shape_dtype_range_and_seed_determinism(seed, channels, out):
  image = _image(channels, seed=seed % 7)
  first = augment.augment_image(image, _seed(seed), config=_ALL_ON, out_size=out)
  again = augment.augment_image(image, _seed(seed), config=_ALL_ON, out_size=out)
  other = augment.augment_image(image, _seed(seed, 1), config=_ALL_ON, out_size=out)
  h, w = (out, out) if isinstance(out, int) else out
  assert first.shape == (h, w, channels) and first.dtype == tf.float32
  assert 0.0 <= float(tf.reduce_min(first)) and float(tf.reduce_max(first)) <= 1.0
  np.testing.assert_array_equal(first.numpy(), again.numpy())
  assert not np.array_equal(first.numpy(), other.numpy())


@pytest.mark.parametrize("channels", [1, 3])
def test_identity_config_returns_the_scaled_image(channels):
  image = _image(channels)
  out = augment.augment_image(image, _seed(3), config=_IDENTITY, out_size=16)
  np.testing.assert_allclose(out.numpy(), image / 255.0, atol=1e-6)
  # A float image in [0, 1] is taken as is.
  out = augment.augment_image(image / 255.0, _seed(3), config=_IDENTITY, out_size=16)
  np.testing.assert_allclose(out.numpy(), image / 255.0, atol=1e-6)


def test_flip_is_mirror_or_identity_and_both_happen():
  image = _image(3)
  config = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=True,
                                 jitter_prob=0.0, grayscale_prob=0.0)
  seen = set()
  for s in range(12):
    out = augment.augment_image(image, _seed(s), config=config, out_size=16).numpy()
    if np.allclose(out, image / 255.0, atol=1e-6):
      seen.add("same")
    else:
      np.testing.assert_allclose(out, image[:, ::-1] / 255.0, atol=1e-6)
      seen.add("mirrored")
  assert seen == {"same", "mirrored"}


def test_crop_zooms_in_when_scale_is_small():
  # A left-to-right ramp: a crop of at most 10% of the area spans a narrower range of values.
  ramp = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 1, 3))
  config = augment.AugmentConfig(crop_scale=(0.05, 0.1), flip=False, jitter_prob=0.0,
                                 grayscale_prob=0.0)
  out = augment.augment_image(ramp, _seed(5), config=config, out_size=32).numpy()
  assert np.ptp(out[..., 0]) < 0.6


def test_grayscale_makes_channels_equal():
  config = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False,
                                 jitter_prob=0.0, grayscale_prob=1.0)
  out = augment.augment_image(_image(3), _seed(1), config=config, out_size=16).numpy()
  np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)
  np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_jitter_changes_colours(channels):
  config = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False,
                                 jitter_prob=1.0, jitter_strength=1.0, grayscale_prob=0.0)
  image = _image(channels)
  out = augment.augment_image(image, _seed(2), config=config, out_size=16).numpy()
  assert np.abs(out - image / 255.0).mean() > 0.01


def test_blur_smooths_and_noise_perturbs():
  image = _image(3, size=32)
  blur = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False,
                               jitter_prob=0.0, grayscale_prob=0.0, blur_prob=1.0)
  # Neighbouring pixels of white noise differ less after a Gaussian blur (sigma is random in
  # [0.1, 2], so a small sigma barely changes the image, but it never sharpens it).
  roughness = lambda x: np.abs(np.diff(x, axis=1)).mean()
  blurred = [roughness(augment.augment_image(image, _seed(s), config=blur, out_size=32).numpy())
             for s in range(6)]
  assert max(blurred) <= roughness(image / 255.0) + 1e-6
  assert min(blurred) < 0.7 * roughness(image / 255.0)
  noise = augment.AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False,
                                jitter_prob=0.0, grayscale_prob=0.0, noise_std=0.05)
  out = augment.augment_image(image, _seed(4), config=noise, out_size=32).numpy()
  diff = out - image / 255.0
  assert 0.01 < np.abs(diff).mean() < 0.06


def test_works_inside_a_traced_tf_data_map():
  ds = tf.data.Dataset.from_tensor_slices(np.stack([_image(3, seed=s) for s in range(3)]))
  ds = ds.map(lambda x: augment.augment_image(x, _seed(0), config=_ALL_ON, out_size=8))
  out = np.stack(list(ds.as_numpy_iterator()))
  assert out.shape == (3, 8, 8, 3) and out.min() >= 0.0 and out.max() <= 1.0


def test_augment_config_for_datasets():
  digits = augment.augment_config_for("digits")
  assert not digits.flip and digits.grayscale_prob == 0.0 and digits.crop_scale == (0.5, 1.0)
  assert digits.noise_std > 0.0
  assert augment.augment_config_for("imagenet100").blur_prob == 0.5
  assert augment.augment_config_for("cifar10") == augment.AugmentConfig()
  out = augment.augment_image(_image(1, size=8), _seed(0), config=digits, out_size=8)
  assert out.shape == (8, 8, 1)
  with pytest.raises(ValueError, match="dataset"):
    augment.augment_config_for("mnist")


@pytest.mark.parametrize("kwargs, name", [
    ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
    ({"crop_scale": (0.5, 0.2)}, "crop_scale"),
    ({"crop_scale": (0.5, 1.5)}, "crop_scale"),
    ({"crop_scale": 0.5}, "crop_scale"),
    ({"crop_ratio": (-1.0, 1.0)}, "crop_ratio"),
    ({"crop_ratio": (2.0, 1.0)}, "crop_ratio"),
    ({"flip": 1}, "flip"),
    ({"jitter_prob": 1.5}, "jitter_prob"),
    ({"jitter_strength": -0.1}, "jitter_strength"),
    ({"jitter_strength": 3.0}, "jitter_strength"),
    ({"grayscale_prob": -0.1}, "grayscale_prob"),
    ({"blur_prob": 2.0}, "blur_prob"),
    ({"noise_std": -1.0}, "noise_std"),
])
def test_config_rejects_bad_values(kwargs, name):
  with pytest.raises(ValueError, match=name):
    augment.AugmentConfig(**kwargs)


def test_augment_image_rejects_bad_arguments():
  with pytest.raises(ValueError, match="out_size"):
    augment.augment_image(_image(3), _seed(0), config=_ALL_ON, out_size=0)
  with pytest.raises(ValueError, match="out_size"):
    augment.augment_image(_image(3), _seed(0), config=_ALL_ON, out_size=(8, 8, 3))
  with pytest.raises(ValueError, match="image"):
    augment.augment_image(_image(2), _seed(0), config=_ALL_ON, out_size=8)
  with pytest.raises(ValueError, match="image"):
    augment.augment_image(np.zeros((8, 8), np.uint8), _seed(0), config=_ALL_ON, out_size=8)
  with pytest.raises(ValueError, match="config"):
    augment.augment_image(_image(3), _seed(0), config={"flip": True}, out_size=8)
