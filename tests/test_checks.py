"""The shared argument checks: each names the argument, the value it got and what is allowed."""

import numpy as np
import pytest

from prosampler_jax import _checks


def test_check_indices_accepts_indices_and_returns_int32():
  out = _checks.check_indices("batches", np.array([[0, 4], [3, 1]], np.int64), 5, layout="[n, B]",
                              min_shape=(1, 2))
  assert out.dtype == np.int32
  np.testing.assert_array_equal(out, [[0, 4], [3, 1]])
  empty = _checks.check_indices("starts", np.zeros((0,), np.int64), 5, layout="[S]", min_shape=(0,))
  assert empty.shape == (0,) and empty.dtype == np.int32


@pytest.mark.parametrize("value, message", [
    (np.arange(4), r"batches must have shape \[n >= 1, B >= 2\], got \(4,\)"),
    (np.zeros((0, 2), int), r"must have shape .*got \(0, 2\)"),
    (np.zeros((2, 1), int), r"must have shape .*got \(2, 1\)"),
    (np.zeros((2, 2), float), "batches must have an integer dtype, got float64"),
    (np.array([[0, 5]]), r"batches holds indices in \[0, 5\]; allowed: \[0, 4\] \(there are 5 items\)"),
    (np.array([[-1, 2]]), r"holds indices in \[-1, 2\]"),
])
def test_check_indices_names_argument_value_and_range(value, message):
  with pytest.raises(ValueError, match=message):
    _checks.check_indices("batches", value, 5, layout="[n >= 1, B >= 2]", min_shape=(1, 2))
