"""Tests for prosampler_jax.data.images: real sklearn digits, tfds sources via mock_data, clear errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from prosampler_jax.data import images


@pytest.fixture(scope="module")
def digits():
  return {split: images.load_image_source("digits", split) for split in images.SPLITS}


def test_digits_shapes_and_values(digits):
  train, test = digits["train"], digits["test"]
  assert len(train) + len(test) == 1797 and len(test) == 360
  for source in digits.values():
    assert source.images.dtype == np.uint8 and source.images.shape[1:] == (8, 8, 1)
    assert source.labels.dtype == np.int32 and set(np.unique(source.labels)) == set(range(10))
    assert source.image_shape == (8, 8, 1) and source.num_classes == 10 and not source.encoded
  assert train.images.max() == 255 and train.images.min() == 0
  np.testing.assert_array_equal(digits["pretrain"].images, train.images)
  np.testing.assert_array_equal(digits["pretrain"].labels, train.labels)
  # Normalisation statistics are those of the train pixels in [0, 1].
  np.testing.assert_allclose(train.mean[0], (train.images / 255.0).mean(), rtol=1e-6)
  np.testing.assert_allclose(train.std[0], (train.images / 255.0).std(), rtol=1e-6)
  assert test.mean == train.mean and test.std == train.std


def test_digits_split_is_disjoint_and_covers_the_data(digits):
  from sklearn import datasets as sk_datasets
  everything = np.concatenate([digits["train"].images, digits["test"].images]).reshape(1797, -1)
  reference = np.rint(sk_datasets.load_digits().images * (255 / 16)).reshape(1797, -1)
  as_rows = lambda a: sorted(map(bytes, a.astype(np.uint8)))
  assert as_rows(everything) == as_rows(reference)


def test_digits_split_is_stratified_and_seeded(digits):
  train, test = digits["train"], digits["test"]
  train_counts = np.bincount(train.labels, minlength=10)
  test_counts = np.bincount(test.labels, minlength=10)
  np.testing.assert_allclose(test_counts / (train_counts + test_counts), 0.2, atol=0.01)
  again = images.load_image_source("digits", "test", seed=0)
  np.testing.assert_array_equal(again.images, test.images)
  other = images.load_image_source("digits", "test", seed=1)
  assert not np.array_equal(other.images, test.images)


def test_mock_cifar10_and_cifar100(tmp_path):
  with tfds.testing.mock_data(num_examples=12):
    cifar10 = images.load_image_source("cifar10", "train", data_dir=str(tmp_path))
    cifar100 = images.load_image_source("cifar100", "test", data_dir=str(tmp_path))
  assert cifar10.images.shape == (12, 32, 32, 3) and cifar10.images.dtype == np.uint8
  assert cifar10.labels.dtype == np.int32 and cifar10.labels.min() >= 0 and cifar10.labels.max() < 10
  assert cifar10.image_shape == (32, 32, 3) and cifar10.num_classes == 10
  assert cifar10.mean == (0.4914, 0.4822, 0.4465) and len(cifar10.std) == 3
  assert cifar100.num_classes == 100 and cifar100.labels.max() < 100 and len(cifar100) == 12


def test_mock_stl10_pretrain_reads_train_plus_unlabelled(tmp_path):
  with tfds.testing.mock_data(num_examples=5):
    source = images.load_image_source("stl10", "pretrain", data_dir=str(tmp_path))
  # The mock ignores split names and returns num_examples for "train+unlabelled" too.
  assert source.images.shape == (5, 96, 96, 3) and source.image_shape == (96, 96, 3)
  assert images._TFDS_SPLITS["stl10"]["pretrain"] == "train+unlabelled"


def test_mock_imagenet100_keeps_the_100_classes_as_encoded_bytes(tmp_path):
  with tfds.testing.mock_data(num_examples=300):
    source = images.load_image_source("imagenet100", "test", data_dir=str(tmp_path))
    raw = tfds.load("imagenet2012", split="validation", data_dir=str(tmp_path),
                    decoders={"image": tfds.decode.SkipDecoding()})
    raw = list(raw.as_numpy_iterator())
    names = tfds.builder("imagenet2012").info.features["label"].names
  assert source.encoded and source.images.dtype == object and source.image_shape == (224, 224, 3)
  assert source.num_classes == 100 and source.mean == (0.485, 0.456, 0.406)
  # Same examples, in order, as filtering the raw split by hand; labels follow the sorted wnids.
  sorted_wnids = sorted(images.IMAGENET100_WNIDS)
  expected = [(ex["image"], sorted_wnids.index(names[ex["label"]])) for ex in raw
              if names[ex["label"]] in images.IMAGENET100_WNIDS]
  assert 0 < len(source) == len(expected) < 300
  assert [bytes(b) for b in source.images] == [e[0] for e in expected]
  np.testing.assert_array_equal(source.labels, [e[1] for e in expected])
  decoded = tf.io.decode_jpeg(source.images[0])
  assert decoded.shape[-1] == 3


def test_imagenet100_wnids_are_100_distinct_imagenet_classes():
  names = tfds.builder("imagenet2012").info.features["label"].names
  assert len(set(images.IMAGENET100_WNIDS)) == 100
  assert set(images.IMAGENET100_WNIDS) <= set(names)


@pytest.mark.parametrize("name, tfds_name", [("cifar10", "cifar10"), ("stl10", "stl10"),
                                             ("imagenet100", "imagenet2012")])
def test_missing_dataset_fails_fast_with_instructions(tmp_path, name, tfds_name):
  start = time.monotonic()
  with pytest.raises(images.DatasetNotFoundError) as info:
    images.load_image_source(name, "train", data_dir=str(tmp_path))
  assert time.monotonic() - start < 20.0  # A download attempt offline would hang for minutes.
  message = str(info.value)
  assert isinstance(info.value, FileNotFoundError)
  assert name in message and tfds_name in message and str(tmp_path) in message
  assert "download_and_prepare" in message and "--config.data_dir" in message
  if name == "imagenet100":
    assert "ILSVRC2012_img_train.tar" in message and "manual" in message


def test_unknown_dataset_split_or_seed():
  with pytest.raises(ValueError, match="dataset"):
    images.load_image_source("mnist", "train")
  with pytest.raises(ValueError, match="split"):
    images.load_image_source("digits", "validation")
  with pytest.raises(ValueError, match="seed"):
    images.load_image_source("digits", "train", seed=-1)


def test_image_source_validates_its_fields():
  ok = dict(name="x", images=np.zeros((4, 2, 2, 3), np.uint8), labels=np.zeros(4, np.int32),
            num_classes=2, image_shape=(2, 2, 3), mean=(0.5,) * 3, std=(0.2,) * 3)
  source = images.ImageSource(**ok)
  assert len(source) == 4 and not source.encoded
  encoded = images.ImageSource(**{**ok, "images": np.array([b"a"] * 4, dtype=object)})
  assert encoded.encoded
  for bad, match in [({"images": np.zeros((4, 2, 2, 3), np.float32)}, "images"),
                     ({"labels": np.zeros(3, np.int32)}, "labels"),
                     ({"labels": np.zeros(4, np.int64)}, "labels"),
                     ({"num_classes": 0}, "num_classes"),
                     ({"image_shape": (2, 2, 2)}, "image_shape"),
                     ({"image_shape": (2, 2, 1)}, "channels"),
                     ({"std": (0.2, 0.2)}, "std"),
                     ({"std": (0.2, 0.0, 0.2)}, "std")]:
    with pytest.raises(ValueError, match=match):
      images.ImageSource(**{**ok, **bad})


def test_hide_gpus_from_tensorflow_is_idempotent():
  images.hide_gpus_from_tensorflow()
  images.hide_gpus_from_tensorflow()
  assert tf.config.get_visible_devices("GPU") == []
