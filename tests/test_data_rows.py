"""Tests for prosampler_jax.data.rows: the NumPy loader yields exactly tf.data's elements (rows, dtypes,
order, process columns, resume row), computes a bounded number of rows ahead, reports a row's error in
its place, and the loader choice is checked by name."""

import threading
import time

import numpy as np
import pytest

from prosampler_jax.data import pipeline
from prosampler_jax.data import rows


def ragged_row(row, index):
  """A row whose padded width depends on the row (like a graph bucket), in float64 and int64 (cast by
  the signature), and a pure function of its arguments."""
  width = 2 + row % 3
  values = np.add.outer(index.astype(np.float64), np.arange(width)) * 0.5 + row
  return {"values": values, "ids": np.stack([index, index * 2], axis=1).astype(np.int64),
          "flag": index % 2 == 0}


SIGNATURE = {"values": (np.float32, (None,)), "ids": (np.int32, (2,)), "flag": (bool, ())}


@pytest.mark.parametrize("process_index, process_count, start_batch", [(0, 1, 0), (1, 2, 3), (0, 2, 5)])
def test_numpy_rows_yield_exactly_the_tf_data_elements(process_index, process_count, start_batch):
  batches = np.random.default_rng(0).permutation(48).reshape(6, 8)[:, ::-1]
  options = dict(process_index=process_index, process_count=process_count, start_batch=start_batch)
  expected = list(pipeline.numpy_rows_dataset(batches, 48, ragged_row, SIGNATURE, **options)
                  .as_numpy_iterator())
  got = list(rows.numpy_rows(batches, 48, ragged_row, SIGNATURE, workers=3, prefetch=2, **options))
  assert len(got) == len(expected) == 6 - start_batch
  for a, b in zip(got, expected):
    assert set(a) == set(b) == {"values", "ids", "flag", "index"}
    for name in a:
      assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  local = 8 // process_count
  np.testing.assert_array_equal(got[0]["index"],
                                batches[start_batch, process_index * local:(process_index + 1) * local])


def test_numpy_rows_compute_a_bounded_number_of_rows_ahead_and_start_when_called():
  built, lock = [], threading.Lock()

  def make_row(row, index):
    with lock:
      built.append(row)
    return {"x": index}

  elements = rows.numpy_rows(np.arange(40).reshape(10, 4), 40, make_row, {"x": (np.int32, ())},
                             workers=2, prefetch=3)
  time.sleep(0.2)
  assert sorted(built) == [0, 1, 2]  # building started on the call, three rows ahead, no further
  first = next(elements)
  time.sleep(0.2)
  assert first["x"].tolist() == [0, 1, 2, 3] and sorted(built) == [0, 1, 2, 3]
  assert [e["index"][0] for e in elements] == list(range(4, 40, 4))


def test_a_rows_error_surfaces_in_its_place_and_a_wrong_shape_is_named():
  def make_row(row, index):
    if row == 2:
      raise RuntimeError("row 2 is damaged")
    return {"x": index}

  elements = rows.numpy_rows(np.arange(16).reshape(4, 4), 16, make_row, {"x": (np.int32, ())})
  assert [e["index"][0] for e in (next(elements), next(elements))] == [0, 4]
  with pytest.raises(RuntimeError, match="row 2 is damaged"):
    next(elements)
  wide = rows.numpy_rows(np.arange(8).reshape(2, 4), 8, lambda r, i: {"x": np.zeros((4, 3))},
                         {"x": (np.float32, (2,))})
  with pytest.raises(ValueError, match=r"make_row's 'x' has shape \(4, 3\); the signature allows \(4, 2\)"):
    next(wide)
  missing = rows.numpy_rows(np.arange(8).reshape(2, 4), 8, lambda r, i: {}, {"x": (np.float32, ())})
  with pytest.raises(ValueError, match=r"make_row returned no 'x'"):
    next(missing)
  with pytest.raises(ValueError, match=r"indices in \[0, 7\]; allowed: \[0, 5\]"):
    rows.numpy_rows(np.arange(8).reshape(2, 4), 6, lambda r, i: {}, {})


def test_the_loader_choice_is_checked_by_name_and_auto_follows_tensorflow(monkeypatch):
  assert rows.resolve_loader("auto") == "tf" and rows.resolve_loader("numpy") == "numpy"
  monkeypatch.setattr(rows.importlib.util, "find_spec", lambda name: None)  # as on the GPU machine
  assert rows.resolve_loader("auto") == "numpy" and rows.resolve_loader("tf") == "tf"
  with pytest.raises(ValueError, match=r"config.data.loader='grain'.*allowed.*auto.*tf.*numpy"):
    rows.resolve_loader("grain")


def test_elements_takes_the_chosen_loader_and_both_give_the_same_rows(monkeypatch):
  batches = np.arange(24).reshape(4, 6)
  through_tf = []
  original = pipeline.numpy_rows_dataset
  monkeypatch.setattr(pipeline, "numpy_rows_dataset",
                      lambda *a, **k: through_tf.append(1) or original(*a, **k))
  tf_rows = list(rows.elements("tf", batches, 24, ragged_row, SIGNATURE, start_batch=1))
  assert through_tf == [1]
  numpy_rows = list(rows.elements("numpy", batches, 24, ragged_row, SIGNATURE, start_batch=1))
  assert through_tf == [1] and len(numpy_rows) == len(tf_rows) == 3
  for a, b in zip(numpy_rows, tf_rows):
    for name in b:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  with pytest.raises(ValueError, match=r"loader='torch'.*allowed"):
    rows.elements("torch", batches, 24, ragged_row, SIGNATURE)
