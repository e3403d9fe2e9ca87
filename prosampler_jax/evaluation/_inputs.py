"""Validation shared by the evaluators: feature matrices, label vectors and their agreement."""

from __future__ import annotations

import numpy as np

from prosampler_jax import _checks


def check_labels(name: str, labels, *, num_items: int, num_classes: int,
                 allow_unlabeled: bool) -> np.ndarray:
  """Returns int32 labels ``[num_items]`` in ``[0, num_classes)`` (``< 0`` = unlabeled, if allowed)."""
  array = np.asarray(labels)
  if array.ndim != 1:
    raise ValueError(f"{name} must have rank 1 [N], got shape {array.shape}.")
  if not np.issubdtype(array.dtype, np.integer):
    raise ValueError(f"{name} must have an integer dtype, got {array.dtype}.")
  if array.shape[0] != num_items:
    raise ValueError(f"{name} has {array.shape[0]} entries but the features have {num_items} rows; "
                     f"allowed: exactly {num_items}.")
  low = -np.inf if allow_unlabeled else 0
  bad = (array < low) | (array >= num_classes)
  if bad.any():
    allowed = f"[0, {num_classes})" + (" or < 0 for unlabeled" if allow_unlabeled else "")
    raise ValueError(f"{name} has {int(bad.sum())} value(s) out of range (first: "
                     f"{array[bad][0]}); allowed: {allowed}.")
  return array.astype(np.int32)


def check_split(train_features, train_labels, test_features, test_labels, *, num_classes: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Validates a train/test split and returns float32 features (labeled train rows only) and labels."""
  num_classes = _checks.check_int("num_classes", num_classes, low=2)
  train_x = _checks.check_embeddings("train_features", train_features)
  test_x = _checks.check_embeddings("test_features", test_features)
  if test_x.shape[1] != train_x.shape[1]:
    raise ValueError(f"test_features has D={test_x.shape[1]} columns but train_features has "
                     f"D={train_x.shape[1]}; allowed: exactly {train_x.shape[1]}.")
  train_y = check_labels("train_labels", train_labels, num_items=train_x.shape[0],
                         num_classes=num_classes, allow_unlabeled=True)
  test_y = check_labels("test_labels", test_labels, num_items=test_x.shape[0],
                        num_classes=num_classes, allow_unlabeled=False)
  labeled = train_y >= 0
  if not labeled.any():
    raise ValueError("train_labels has no labeled item (all < 0); allowed: at least one label >= 0.")
  return train_x[labeled], train_y[labeled], test_x, test_y
