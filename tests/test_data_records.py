"""Tests for random-access image sources: a real tfds imagenet2012 in ArrayRecord format (synthetic
JPEGs written offline by prosampler_jax.data.synthetic_imagenet), read by index through tfds.data_source."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from prosampler_jax.data import augment
from prosampler_jax.data import images
from prosampler_jax.data import pipeline
from prosampler_jax.data import records
from prosampler_jax.data import synthetic_imagenet

# Alternate classes inside and outside ImageNet-100, so the subset keeps exactly half the items.
_IN_100 = synthetic_imagenet.label_ids(images.IMAGENET100_WNIDS[:3])
_OUTSIDE = sorted(set(range(1000)) - set(synthetic_imagenet.label_ids(images.IMAGENET100_WNIDS)))[:3]
_LABELS = [c for pair in zip(_IN_100, _OUTSIDE) for c in pair]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """The dataset as ArrayRecord files (random access)."""
  root = str(tmp_path_factory.mktemp("array_record"))
  synthetic_imagenet.write_imagenet_like(root, num_train=48, num_validation=12, labels=_LABELS)
  return root


@pytest.fixture(scope="module")
def tfrecord_dir(tmp_path_factory):
  """The same records as TFRecord files (tfds' default; what the memory reader reads): the reference."""
  root = str(tmp_path_factory.mktemp("tfrecord"))
  synthetic_imagenet.write_imagenet_like(root, num_train=48, num_validation=12, labels=_LABELS,
                                     file_format="tfrecord")
  return root


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
  monkeypatch.setattr(records, "DEFAULT_CACHE_DIR", str(tmp_path / "labels"))
  return tmp_path / "labels"


def _memory_records(tfrecord_dir, split):
  """Every record of the split as (image bytes, label), read whole by tf.data: the reference."""
  ds = tfds.builder("imagenet2012", data_dir=tfrecord_dir).as_dataset(
      split=split, decoders={"image": tfds.decode.SkipDecoding()}, shuffle_files=False)
  return [(ex["image"], int(ex["label"])) for ex in ds.as_numpy_iterator()]


def test_items_are_read_by_index_in_the_requested_order(data_dir, tfrecord_dir, cache_dir):
  reader = records.RecordImages.open("imagenet2012", "train", data_dir)
  reference = _memory_records(tfrecord_dir, "train")
  assert len(reader) == reader.shape[0] == 48 and reader.dtype == object and reader.ndim == 1
  ids = np.array([17, 3, 3, 40])
  got = reader[ids]
  assert got.dtype == object and [bytes(b) for b in got] == [reference[i][0] for i in ids]
  np.testing.assert_array_equal(reader.labels(cache_dir=str(cache_dir)), [r[1] for r in reference])
  subset = reader.subset(np.array([5, 0]))
  assert [bytes(b) for b in subset[np.array([1, 0])]] == [reference[0][0], reference[5][0]]
  assert list(subset.labels(cache_dir=str(cache_dir))) == [reference[5][1], reference[0][1]]


def test_an_unwritable_cache_costs_a_warning_not_the_labels(data_dir, tfrecord_dir, tmp_path,
                                                            monkeypatch):
  reader = records.RecordImages.open("imagenet2012", "validation", data_dir)
  blocked = tmp_path / "file"
  blocked.write_text("not a directory")
  warnings = []
  monkeypatch.setattr(records.logging, "warning", lambda message, *args: warnings.append(message % args))
  labels = reader.labels(cache_dir=str(blocked / "labels"))
  np.testing.assert_array_equal(labels, [label for _, label in _memory_records(tfrecord_dir, "validation")])
  assert len(warnings) == 1 and "Could not cache the labels" in warnings[0]


def test_labels_are_read_once_and_then_come_from_the_cache(data_dir, cache_dir):
  reader = records.RecordImages.open("imagenet2012", "validation", data_dir)
  first = reader.labels(cache_dir=str(cache_dir))
  (cached,) = os.listdir(cache_dir)
  assert cached.startswith("imagenet2012-validation-") and cached.endswith(".npy")
  reader._source = None  # any further read of the records would now fail
  np.testing.assert_array_equal(reader.labels(cache_dir=str(cache_dir)), first)


@pytest.mark.parametrize("name, classes", [("imagenet100", 100), ("imagenet1k", 1000)])
def test_random_access_source_equals_the_in_memory_source(data_dir, tfrecord_dir, cache_dir, name,
                                                           classes):
  source = images.load_image_source(name, "pretrain", data_dir=data_dir, reader="random_access")
  assert isinstance(source.images, records.RecordImages) and source.num_classes == classes
  assert source.encoded and source.image_shape == (224, 224, 3)
  assert os.listdir(cache_dir)  # the labels were cached where DEFAULT_CACHE_DIR points now
  if name == "imagenet100":  # the memory reader is the reference (it filters with tf.data)
    memory = images.load_image_source(name, "pretrain", data_dir=tfrecord_dir, reader="memory")
    assert len(source) == len(memory) == 24
    np.testing.assert_array_equal(source.labels, memory.labels)
    ids = np.arange(len(source))
    assert [bytes(b) for b in source.images[ids]] == [bytes(b) for b in memory.images[ids]]
  else:
    assert len(source) == 48 and set(source.labels) == set(_LABELS)


def test_pipeline_reads_only_the_rows_it_trains_on(data_dir, cache_dir, monkeypatch):
  source = images.load_image_source("imagenet1k", "pretrain", data_dir=data_dir,
                                    reader="random_access")
  asked = []
  original = records.RecordImages.__getitem__
  monkeypatch.setattr(records.RecordImages, "__getitem__",
                      lambda self, ids: (asked.append(np.array(ids)), original(self, ids))[1])
  batches = np.array([[4, 9, 30, 31], [0, 47, 12, 2]], np.int32)
  kwargs = dict(seed=0, window=0, augment=augment.augment_config_for("imagenet1k"))
  second = list(pipeline.pretrain_dataset(source, batches, process_index=1, process_count=2,
                                          **kwargs).as_numpy_iterator())
  assert sorted(map(tuple, asked)) == [(12, 2), (30, 31)]  # process 1 reads its own columns only
  assert second[0]["view1"].shape == (2, 224, 224, 3) and second[0]["view1"].dtype == np.uint8


def test_clear_errors(data_dir, tfrecord_dir, tmp_path):
  with pytest.raises(ValueError, match="config.data_reader='random_access' is not available for "
                                       "config.dataset='cifar10'"):
    images.load_image_source("cifar10", "train", reader="random_access")
  with pytest.raises(ValueError, match="config.data_reader='memory'.*allowed: config.data_reader="
                                       "'random_access'"):
    images.load_image_source("imagenet1k", "train", data_dir=data_dir, reader="memory")
  with pytest.raises(ValueError, match="config.data_reader='disk' is not supported"):
    images.load_image_source("imagenet1k", "train", data_dir=data_dir, reader="disk")
  with pytest.raises(ValueError, match="stored as ArrayRecord.*config.data_reader='random_access'"):
    images.load_image_source("imagenet100", "train", data_dir=data_dir, reader="memory")
  with pytest.raises(ValueError, match="holds it as tfrecord. Convert it once: tfds convert_format"):
    images.load_image_source("imagenet100", "train", data_dir=tfrecord_dir, reader="random_access")
  with pytest.raises(images.DatasetNotFoundError, match="imagenet2012"):
    images.load_image_source("imagenet1k", "train", data_dir=str(tmp_path / "empty"),
                             reader="random_access")


@pytest.mark.slow
def test_simclr_trains_end_to_end_from_records_read_by_index(data_dir, cache_dir, tmp_path):
  """The one loop on ImageNet-1k's config, shrunk: ArrayRecord input, bf16 bank split over 4 devices."""
  from experiments.configs import simclr_imagenet1k  # pylint: disable=g-import-not-at-top
  from prosampler_jax import train  # pylint: disable=g-import-not-at-top
  config = simclr_imagenet1k.get_config()
  config.data_dir = data_dir
  config.update_from_flattened_dict({
      "num_epochs": 2, "batch_size": 16, "eval_batch_size": 16, "model.encoder": "small_cnn",
      "model.width": 8, "model.projection_dim": 8, "model.dtype": "float32",
      "sampler.num_neighbors": 4, "sampler.num_candidates": 12, "sampler.refresh_steps": 0,
      "eval.knn_k": 5, "eval.linear_epochs": 2, "eval_every_epochs": 0, "checkpoint_steps": 100})
  results = train.train_and_evaluate(config, str(tmp_path))
  assert results["dataset"] == "imagenet1k" and results["steps"] == 6
  assert np.isfinite(results["knn_accuracy"]) and results["batch_stats"]["num_batches"] == 3
