"""Modalities for the one training loop: a task = data sources + model + augmentations + evaluation data.

The loop (``prosampler_jax.train``) only relies on the ``Task`` protocol below, so SimCSE and GraphCL
plug in by adding a module here, not a new loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import ml_collections
import numpy as np
from flax import nnx

TASKS = ("simclr",)


class Task(Protocol):
  """What the training loop needs from a modality."""

  num_examples: int                 # N: size of the set the sampler draws batches from
  pretrain_labels: np.ndarray | None  # labels of those items (for false-negative diagnostics), or None

  def make_model(self) -> nnx.Module:
    """A model with ``__call__(x) -> (features, projections)`` and ``encode(x) -> features``."""

  def pretrain_batches(self, batches: np.ndarray, *, window: int, start_batch: int
                       ) -> Iterator[dict[str, np.ndarray]]:
    """This process's rows of each batch: ``{"view1", "view2", "index"}``, in the order of ``batches``."""

  def eval_batches(self, split: str) -> Iterator[dict[str, np.ndarray]]:
    """Unaugmented ``{"inputs", "label", "mask"}`` batches of ``split`` ("train" or "test")."""

  def num_classes(self) -> int:
    """Number of label classes for evaluation."""


def make_task(config: ml_collections.ConfigDict) -> Task:
  """Builds the task named by ``config.task``."""
  if config.task == "simclr":
    from prosampler_jax.tasks import simclr  # pylint: disable=g-import-not-at-top
    return simclr.SimCLRTask(config)
  raise ValueError(f"config.task={config.task!r} is not supported; allowed: {', '.join(TASKS)}.")
