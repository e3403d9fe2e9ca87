"""Argument validation shared by the public API.

Every check raises ``ValueError`` naming the argument, the value it got and the allowed range, at the
point where the bad value enters (DESIGN §3: errors say argument, value and range).
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from typing import TextIO

import numpy as np


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
  """Returns ``value`` as an int in ``[low, high]`` (either bound optional) or raises ValueError."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).")
  value = int(value)
  if (low is not None and value < low) or (high is not None and value > high):
    lo = "-inf" if low is None else str(low)
    hi = "inf" if high is None else str(high)
    raise ValueError(f"{name}={value} is out of range; allowed: [{lo}, {hi}].")
  return value


def check_float(name: str, value, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> float:
  """Returns ``value`` as a finite float inside the given (optionally open) interval."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
    raise ValueError(f"{name} must be a finite real number, got {value!r}.")
  value = float(value)
  too_low = low is not None and (value <= low if low_open else value < low)
  too_high = high is not None and (value >= high if high_open else value > high)
  if too_low or too_high:
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    raise ValueError(f"{name}={value:g} is out of range; allowed: {'(' if low_open else '['}{lo}, "
                     f"{hi}{')' if high_open else ']'}.")
  return value


def check_bool(name: str, value) -> bool:
  """Returns ``value`` if it is a bool (NumPy's included) or raises ValueError: 0/1 or "true" are refused,
  so a mistyped override is named rather than read as truthy."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).")
  return bool(value)


def check_probability(name: str, value) -> float:
  """A probability in [0, 1]."""
  return check_float(name, value, low=0.0, high=1.0)


def check_embeddings(name: str, value, *, num_examples: int | None = None, on_device: bool = False):
  """Returns float32 ``[N, D]``; rejects wrong rank/dtype, non-finite rows, wrong N.

  A host array by default; with ``on_device`` a ``jax.Array`` (a bank already on a device stays there:
  the checks run where it lives and only a per-row flag comes back when a row is bad; NumPy input is
  moved to the default device).
  """
  device_array = on_device and _is_jax_array(value)
  if device_array:
    array = value
  else:
    try:
      array = np.asarray(value)
    except Exception as e:  # e.g. ragged lists
      raise ValueError(f"{name} must be a float array of shape [N, D]; could not convert: {e}") from e
  if array.ndim != 2:
    raise ValueError(f"{name} must have rank 2 [N, D], got shape {array.shape}.")
  if not (np.issubdtype(array.dtype, np.floating) or array.dtype == np.dtype("bfloat16")):
    raise ValueError(f"{name} must have a floating dtype, got {array.dtype}.")
  if array.shape[0] < 2 or array.shape[1] < 1:
    raise ValueError(f"{name} must have N >= 2 rows and D >= 1 columns, got shape {array.shape}.")
  if num_examples is not None and array.shape[0] != num_examples:
    raise ValueError(f"{name} has N={array.shape[0]} rows but the sampler was built for "
                     f"num_examples={num_examples}; allowed: exactly {num_examples}.")
  xp = np
  if on_device:
    import jax.numpy as xp  # pylint: disable=g-import-not-at-top  (only the device path needs JAX)
  array = xp.asarray(array).astype(np.float32) if on_device else array.astype(np.float32, copy=False)
  finite_rows = xp.all(xp.isfinite(array), axis=1)  # where the array lives
  if not bool(finite_rows.all()):
    bad = np.flatnonzero(~np.asarray(finite_rows))
    raise ValueError(f"{name} has {bad.size} non-finite row(s) (first: {bad[:5].tolist()}); "
                     "allowed: finite values only.")
  return array


def check_indices(name: str, value, num_items: int, *, layout: str, min_shape: tuple[int, ...]
                  ) -> np.ndarray:
  """Integer indices into ``num_items`` items as a host int32 array (a sampler's batches, a walk's starts).

  ``min_shape`` gives the rank and each axis's smallest size; ``layout`` says the same in words for the
  message (e.g. ``"[num_batches >= 1, B >= 2]"``). Values must lie in ``[0, num_items)``.
  """
  array = np.asarray(value)
  if array.ndim != len(min_shape) or any(size < low for size, low in zip(array.shape, min_shape)):
    raise ValueError(f"{name} must have shape {layout}, got {array.shape}.")
  if array.size and not np.issubdtype(array.dtype, np.integer):
    raise ValueError(f"{name} must have an integer dtype, got {array.dtype}.")
  if array.size and (array.min() < 0 or array.max() >= num_items):
    raise ValueError(f"{name} holds indices in [{array.min()}, {array.max()}]; allowed: "
                     f"[0, {num_items - 1}] (there are {num_items} items).")
  return array.astype(np.int32, copy=False)


def _is_jax_array(value) -> bool:
  import jax  # pylint: disable=g-import-not-at-top  (NumPy-only callers never need it)
  return isinstance(value, jax.Array)


def check_choice(name: str, value, choices) -> str:
  """A string among ``choices``."""
  if value not in choices:
    raise ValueError(f"{name}={value!r} is not supported; allowed: {', '.join(map(repr, choices))}.")
  return value


@contextlib.contextmanager
def utf8_text(path: str, *, newline: str | None = None) -> Iterator[TextIO]:
  """``open(path, encoding="utf-8")`` for reading; a byte that is not UTF-8, met while the block reads,
  becomes the ValueError of ``check_utf8`` (the file's bytes are read a second time only then)."""
  with open(path, encoding="utf-8", newline=newline) as f:
    try:
      yield f
    except UnicodeDecodeError:
      check_utf8(path)
      raise


def check_utf8(path: str) -> None:
  """Raises ValueError naming ``path``, the line and the byte when the file is not UTF-8 text."""
  with open(path, "rb") as f:
    data = f.read()
  try:
    data.decode("utf-8")
  except UnicodeDecodeError as error:
    line = data.count(b"\n", 0, error.start) + 1
    raise ValueError(f"{path}:{line}: not UTF-8 text ({error.reason}: byte 0x{data[error.start]:02x} at "
                     f"offset {error.start}); allowed: UTF-8 (re-save the file as UTF-8).") from None
