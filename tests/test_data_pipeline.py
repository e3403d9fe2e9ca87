"""Tests for prosampler_jax.data.pipeline: pretraining batches follow the sampler's index array exactly,
resume mid-window reproduces the same elements, processes split the global batch, eval pads and masks."""

from __future__ import annotations

import resource

import numpy as np
import pytest
import tensorflow as tf

from prosampler_jax.data import augment
from prosampler_jax.data import images
from prosampler_jax.data import pipeline

_N, _ROWS, _BATCH = 40, 5, 8
_CONFIG = augment.AugmentConfig(noise_std=0.01)


def _source(n=_N, size=8, channels=3, seed=0):
  rng = np.random.default_rng(seed)
  return images.ImageSource(
      name="random", images=rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
      labels=rng.integers(0, 4, n).astype(np.int32), num_classes=4,
      image_shape=(size, size, channels), mean=(0.5,) * channels, std=(0.25,) * channels)


def _encoded_source(n=6, shape=(16, 16, 3)):
  """PNG bytes of random images of different sizes (all larger than the model input)."""
  rng = np.random.default_rng(1)
  sizes = [(20 + 3 * i, 18 + 5 * i) for i in range(n)]
  encoded = np.array([tf.io.encode_png(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).numpy()
                      for h, w in sizes], dtype=object)
  return images.ImageSource(name="encoded", images=encoded, labels=np.arange(n, dtype=np.int32),
                            num_classes=n, image_shape=shape, mean=(0.4,) * 3, std=(0.3,) * 3)


@pytest.fixture(scope="module")
def source():
  return _source()


@pytest.fixture(scope="module")
def batches():
  rng = np.random.default_rng(7)
  return np.stack([rng.choice(_N, _BATCH, replace=False) for _ in range(_ROWS)]).astype(np.int32)


def _elements(source, batches, **kwargs):
  kwargs = {"seed": 3, "window": 2, "augment": _CONFIG, **kwargs}
  return list(pipeline.pretrain_dataset(source, batches, **kwargs).as_numpy_iterator())


@pytest.fixture(scope="module")
def full(source, batches):
  return _elements(source, batches)


def test_elements_follow_batches_in_order(full, batches):
  assert len(full) == _ROWS
  for element, row in zip(full, batches):
    assert set(element) == {"view1", "view2", "index"}
    assert element["view1"].shape == element["view2"].shape == (_BATCH, 8, 8, 3)
    assert element["view1"].dtype == np.uint8 and element["index"].dtype == np.int32  # 1/4 the bytes
    np.testing.assert_array_equal(element["index"], row)


def test_views_are_the_augmentations_as_uint8_pixels_and_differ(full, source, batches):
  for element in full:
    assert not np.array_equal(element["view1"], element["view2"])
  # Exactly the augmentation of the item, quantised to uint8 (normalisation is the task's, on device).
  fold = lambda seed, data: tf.random.experimental.stateless_fold_in(seed, tf.constant(data, tf.int64))
  item_seed = fold(fold(tf.constant([3, 2], tf.int64), 1), 4)  # seed 3, window 2; row 1, column 4
  want = augment.augment_image(source.images[batches[1, 4]], fold(item_seed, 1), config=_CONFIG,
                               out_size=(8, 8)).numpy()
  np.testing.assert_allclose(full[1]["view2"][4] / 255.0, want, atol=1 / 255 + 1e-6)


def test_deterministic_and_seeded_by_seed_and_window(full, source, batches):
  again = _elements(source, batches)
  for a, b in zip(full, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  for changed in ({"seed": 4}, {"window": 3}):
    other = _elements(source, batches[:1], **changed)
    assert not np.allclose(other[0]["view1"], full[0]["view1"])


@pytest.mark.parametrize("start", [1, 3, _ROWS])
def test_start_batch_resumes_exactly(full, source, batches, start):
  resumed = _elements(source, batches, start_batch=start)
  assert len(resumed) == _ROWS - start
  for a, b in zip(full[start:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_processes_split_the_global_batch(full, source, batches):
  parts = [_elements(source, batches, process_index=p, process_count=2) for p in range(2)]
  for row, element in enumerate(full):
    for key in element:
      joined = np.concatenate([parts[0][row][key], parts[1][row][key]])
      np.testing.assert_array_equal(joined, element[key])


def test_single_channel_source():
  source = images.load_image_source("digits", "train")
  batches = np.arange(32, dtype=np.int32).reshape(2, 16)
  out = _elements(source, batches, augment=augment.augment_config_for("digits"))
  assert out[0]["view1"].shape == (16, 8, 8, 1)


def test_encoded_source_is_decoded_and_cropped():
  source = _encoded_source()
  out = _elements(source, np.array([[0, 5, 2], [4, 1, 3]]), augment=augment.AugmentConfig())
  assert out[0]["view1"].shape == (3, 16, 16, 3)
  np.testing.assert_array_equal(out[1]["index"], [4, 1, 3])


def test_eval_pads_the_last_batch_and_masks_it(source):
  out = list(pipeline.eval_dataset(source, batch_size=16).as_numpy_iterator())
  assert [e["image"].shape for e in out] == [(16, 8, 8, 3)] * 3
  mask = np.concatenate([e["mask"] for e in out])
  labels = np.concatenate([e["label"] for e in out])
  image = np.concatenate([e["image"] for e in out])
  assert mask.dtype == bool and mask.sum() == _N and mask[:_N].all()
  assert labels.dtype == np.int32 and (labels[_N:] == -1).all()
  np.testing.assert_array_equal(labels[:_N], source.labels)
  np.testing.assert_allclose(image[:_N], (source.images / 255.0 - 0.5) / 0.25, atol=1e-5)


def test_eval_of_encoded_images_resizes_and_centre_crops():
  source = _encoded_source()
  out = list(pipeline.eval_dataset(source, batch_size=4).as_numpy_iterator())
  assert [e["image"].shape for e in out] == [(4, 16, 16, 3)] * 2
  np.testing.assert_array_equal(np.concatenate([e["mask"] for e in out]), [True] * 6 + [False] * 2)
  # Item 0 is 20x18: shorter side 18 -> round(16·256/224) = 18, so no resize, a centre crop only.
  raw = tf.io.decode_png(source.images[0]).numpy() / 255.0
  np.testing.assert_allclose(out[0]["image"][0] * 0.3 + 0.4, raw[2:18, 1:17], atol=1e-5)


def test_a_source_larger_than_two_gigabytes_is_not_copied_into_the_graph():
  # np.zeros maps untouched pages, so this costs no memory unless the pipeline copies the array.
  peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux.
  big = np.zeros((80_000, 96, 96, 3), np.uint8)  # 2.2 GB > the 2 GB graph-constant limit.
  source = images.ImageSource(name="big", images=big, labels=np.zeros(80_000, np.int32),
                              num_classes=1, image_shape=(96, 96, 3), mean=(0.5,) * 3,
                              std=(0.25,) * 3)
  batches = np.array([[0, 79_999]], np.int32)
  out = _elements(source, batches, augment=augment.AugmentConfig())
  assert out[0]["view1"].shape == (2, 96, 96, 3)
  evaluated = next(pipeline.eval_dataset(source, batch_size=2).as_numpy_iterator())
  assert evaluated["image"].shape == (2, 96, 96, 3)
  peak_growth_gib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 2**20
  assert peak_growth_gib < 1.0


def test_rejects_bad_arguments(source, batches):
  def build(**kwargs):
    kwargs = {"seed": 0, "window": 0, "augment": _CONFIG, **kwargs}
    return pipeline.pretrain_dataset(kwargs.pop("source", source), kwargs.pop("batches", batches),
                                     **kwargs)

  with pytest.raises(ValueError, match="process_count"):
    build(process_count=3)  # 8 is not divisible by 3.
  with pytest.raises(ValueError, match="batch size"):
    build(process_count=3)
  with pytest.raises(ValueError, match="process_count"):
    build(process_count=0)
  with pytest.raises(ValueError, match="process_index"):
    build(process_index=2, process_count=2)
  with pytest.raises(ValueError, match="start_batch"):
    build(start_batch=_ROWS + 1)
  with pytest.raises(ValueError, match="batches"):
    build(batches=batches.ravel())
  with pytest.raises(ValueError, match="batches"):
    build(batches=batches + _N)
  with pytest.raises(ValueError, match="batches"):
    build(batches=batches - _N)
  with pytest.raises(ValueError, match="batches"):
    build(batches=batches.astype(np.float32))
  with pytest.raises(ValueError, match="seed"):
    build(seed=-1)
  with pytest.raises(ValueError, match="window"):
    build(window=-1)
  with pytest.raises(ValueError, match="augment"):
    build(augment=None)
  with pytest.raises(ValueError, match="source"):
    build(source=source.images)
  with pytest.raises(ValueError, match="batch_size"):
    pipeline.eval_dataset(source, batch_size=0)
  with pytest.raises(ValueError, match="source"):
    pipeline.eval_dataset(source.images, batch_size=4)


@pytest.mark.parametrize("encoded", [False, True])
def test_each_process_reads_only_its_rows_of_each_evaluation_batch(source, encoded):
  """Process p of P gets exactly columns [p·B/P, (p+1)·B/P) of every batch the whole pipeline yields,
  and only those rows are read and decoded (its batches are B/P long)."""
  data = _encoded_source() if encoded else source
  batch_size = 4
  whole = list(pipeline.eval_dataset(data, batch_size=batch_size).as_numpy_iterator())
  for process in (0, 1):
    part = list(pipeline.eval_dataset(data, batch_size=batch_size, process_index=process,
                                      process_count=2).as_numpy_iterator())
    assert len(part) == len(whole)
    for mine, full in zip(part, whole):
      columns = slice(2 * process, 2 * process + 2)
      assert mine["image"].shape[0] == 2
      for key in ("image", "label", "mask"):
        np.testing.assert_array_equal(mine[key], full[key][columns])
  with pytest.raises(ValueError, match="batch_size=4 does not split over 3 processes"):
    pipeline.eval_dataset(data, batch_size=4, process_count=3)
