"""What every two-view task shares: a bank row's two halves (what a sampler that reads pairs gets, and the
loss gap's pair; the row itself is ``normalize.pair_rows``), and the label ids the losses' same-label
exclusion reads."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np


def bank_halves(bank) -> tuple[jax.Array, jax.Array]:
  """``(first half, second half)`` of each bank row: each item's two views (scaled by 1/√2; compared by
  cosine). The feeder hands over its one-device snapshot of the bank, so the halves are cut there."""
  half = bank.shape[1] // 2
  return bank[:, :half], bank[:, half:]


def exclusion_labels(config: ml_collections.ConfigDict, labels) -> np.ndarray | None:
  """int32 label ids per pre-training item when ``config.loss.exclude_same_label``, else None.

  The losses then treat same-label items of a batch as non-negatives; a task without pre-training labels
  cannot do that, which is an error here (before any training) rather than a silent no-op.
  """
  if not config.loss.exclude_same_label:
    return None
  if labels is None:
    raise ValueError(f"config.loss.exclude_same_label=True needs pre-training labels, which task "
                     f"{config.task!r} on dataset {config.dataset!r} does not have; allowed: False.")
  return np.unique(np.asarray(labels), return_inverse=True)[1].reshape(-1).astype(np.int32)


def label_inputs(label_ids: np.ndarray | None, index: np.ndarray) -> dict[str, np.ndarray]:
  """``{"label": ids of the batch's items}`` to travel with a batch's inputs, or nothing when the
  exclusion is off (``label_ids`` None): the task's ``forward`` hands them to the loss."""
  return {} if label_ids is None else {"label": label_ids[index]}
