"""Modalities for the one training loop (DESIGN §3.6): a task = data + model + loss + evaluation.

The loop (``prosampler_jax.train``) owns the train state, the mesh, the feeder, checkpoints and logs, and
only relies on the ``Task`` protocol below: it never looks inside a task's inputs or outputs. SimCLR
(images), SimCSE (text) and GraphCL (graphs) are modules here, not loops of their own;
``train_and_evaluate(config, workdir, task=…)`` also accepts any object that follows the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import jax
import ml_collections
import numpy as np
from flax import nnx

TASKS = ("simclr", "simcse", "graphcl")

# The config's task-specific keys: the sections below and two top-level keys hold what one task reads and
# the others ignore (a SimCLR augmentation in a GraphCL config changes nothing). TASK_KEYS lists, per
# task, the keys of these it reads ("augment.*": the whole section); run_config.unread_keys refuses
# setting any other one. A test reads each task module's config accesses against this table.
TASK_SECTIONS = ("model", "augment", "eval", "graph")
TASK_TOP_KEYS = ("data_reader", "max_examples")
TASK_KEYS = {
    "simclr": ("data_reader", "model.encoder", "model.cifar_stem", "model.width", "model.projection_dim",
               "model.projection_hidden", "model.dtype", "augment.*", "eval.knn_k", "eval.knn_temperature",
               "eval.linear_epochs", "eval.linear_learning_rate"),
    "simcse": ("max_examples", "model.checkpoint", "model.pooling", "model.mlp_only_train", "model.max_len",
               "model.dropout", "model.dtype", "eval.max_len", "eval.sts_dir"),
    "graphcl": ("graph.missing_features", "graph.max_degree", "graph.use_node_attributes", "graph.self_loops",
                "model.hidden", "model.num_layers", "model.dtype", "augment.view1", "augment.view2",
                "augment.ratio", "augment.subgraph", "augment.drop_unlinked",
                "eval.svm_seeds", "eval.svm_folds", "eval.svm_jobs"),
}


def reads_key(task: str, key: str) -> bool:
  """Whether ``task`` reads the dotted config ``key`` (True for keys outside the task-specific part)."""
  if key.split(".")[0] not in TASK_SECTIONS and key not in TASK_TOP_KEYS:
    return True
  return any(key == read or (read.endswith(".*") and key.startswith(read[:-1])) for read in TASK_KEYS[task])


class Task(Protocol):
  """What the training loop needs from a modality."""

  num_examples: int                   # N: items the sampler draws batches from
  pretrain_labels: np.ndarray | None  # their labels, for false-negative diagnostics, or None
  bank_dim: int                       # width of one bank row
  # A key of ``evaluate``'s result (higher is better): the final evaluation then uses the model of the
  # monitor evaluation where it peaked (selection.py). None, the default (also for a task without the
  # attribute): the last model.
  selection_metric: str | None = None

  # Optional: ``bank_pair(bank) -> (x, y)``, each item's two sides (for a two-view bank, its halves). The
  # feeder then logs Tail Batch Sampling's loss gap (and, with a margin, the share of negatives the loss
  # drops) for every window (diagnostics.batch_stats).

  def make_model(self) -> nnx.Module:
    """The model, with any NNX state (Param, BatchStat, RNG streams for dropout). Its
    ``encode(inputs)`` gives the frozen features evaluation uses."""

  def pretrain_batches(self, batches: np.ndarray, *, window: int, start_batch: int
                       ) -> Iterator[dict[str, Any]]:
    """This process's rows of each row of ``batches`` (int32 ``[num_batches, B]``), in order, from row
    ``start_batch``: ``{"inputs": pytree with leaves [B_local, ...], "index": int32 [B_local]}``.
    A pure function of (seed, window, row, column), so resumed runs see the same inputs. Build and
    start the pipeline when called, not on first ``next``: the feeder calls this in its sampler thread
    so that building and prefetching overlap training."""

  def forward(self, model: nnx.Module, inputs: Any) -> Any:
    """The model's outputs for a global batch (global view under ``jit``: BatchNorm sees the whole
    batch). Leaves must keep the batch as their leading axis: the loop splits them over devices."""

  def loss_and_rows(self, outputs: Any, *, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    """Per shard inside ``shard_map``: (the global batch's loss, negatives all-gathered over
    ``axis_name``; this shard's bank rows ``[B_local, bank_dim]``, L2-normalised)."""

  def sampler_view(self, bank: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
    """The bank's layout for a sampler that reads pairs (Tail Batch Sampling; ``reads_pairs``): its
    (x, y) halves for paired data, or the bank itself when its rows are not pairs. The task never asks
    which sampler runs: the feeder calls this only for samplers that read pairs, the others read the
    rows. ``bank`` is the feeder's device snapshot (``parallel.device_snapshot``): slice it, do not
    copy it."""

  def evaluate(self, encode: Callable[..., dict[str, np.ndarray]], *, final: bool) -> dict[str, float]:
    """Frozen-encoder metrics. ``encode(batches)`` takes this process's evaluation batches
    (``{"inputs", "index" (< 0 = padding), per-item extras}``) and returns ``{"features", "index",
    extras…}`` for every item of every process, padding dropped, sorted by index. ``final`` asks for
    the full protocol (e.g. the linear probe), otherwise the cheap per-epoch monitor."""


def make_task(config: ml_collections.ConfigDict) -> Task:
  """Builds the task named by ``config.task``."""
  if config.task == "simclr":
    from prosampler_jax.tasks import simclr  # pylint: disable=g-import-not-at-top
    return simclr.SimCLRTask(config)
  if config.task == "simcse":
    from prosampler_jax.tasks import simcse  # pylint: disable=g-import-not-at-top
    return simcse.SimCSETask(config)
  if config.task == "graphcl":
    from prosampler_jax.tasks import graphcl  # pylint: disable=g-import-not-at-top
    return graphcl.GraphCLTask(config)
  raise ValueError(f"config.task={config.task!r} is not supported; allowed: {', '.join(TASKS)}.")
