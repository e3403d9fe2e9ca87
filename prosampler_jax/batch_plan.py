"""The samplers for any training loop: a PyTorch-style batch sampler, and whole-run batch plans.

``PlanBatchSampler`` is what ``torch.utils.data.DataLoader(dataset, batch_sampler=…)`` expects (an
iterable of lists of item indices with ``__len__``), plus ``set_epoch`` as PyTorch's distributed samplers
have it, without importing torch. It wraps any ``samplers.BatchSampler``: every ``refresh_batches``
batches (ProSampler's t; default once per epoch) it asks ``embed(epoch, window)`` for the current
embeddings and samples the next window from them, so the batches follow the model as it trains.
With ``num_replicas`` > 1 each rank gets its own columns of every global batch (as DDP wants).

``batch_plan`` samples a fixed embedding bank for several epochs at once (``python -m
prosampler_jax.plan`` writes it to a file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from prosampler_jax import _checks
from prosampler_jax import diagnostics
from prosampler_jax.feeder import WindowSchedule
from prosampler_jax.samplers import BatchSampler
from prosampler_jax.samplers import sampler_input
from prosampler_jax.tasks._pairs import pair_rows


class PlanBatchSampler:
  """Batches of item indices from a prosampler sampler, for PyTorch's ``DataLoader(batch_sampler=…)``.

  Args:
    sampler: any ``samplers.BatchSampler`` (uniform, proximity, knn, tail) built for the dataset's N and
      the global batch size B.
    embed: ``embed(epoch, window) -> embeddings`` (``[N, D]`` array, or an ``(x, y)`` pair for "tail"),
      called before each window is sampled; None for samplers that need no embeddings.
    refresh_batches: batches per window (ProSampler's t); None: one window per epoch.
    num_replicas, rank: each of the ``num_replicas`` ranks yields columns ``[rank·B/R, (rank+1)·B/R)`` of
      every global batch; all ranks must use the same sampler seed and embeddings.

  Iterating yields the epoch set by ``set_epoch`` (0 at first) as ``len(self)`` lists of Python ints.
  The batches are a pure function of (seed, epoch, window, embeddings).
  """

  def __init__(self, sampler: BatchSampler, embed: Callable[[int, int], Any] | None = None, *,
               refresh_batches: int | None = None, num_replicas: int = 1, rank: int = 0):
    if not isinstance(sampler, BatchSampler):
      raise ValueError(f"sampler must be a prosampler_jax.samplers.BatchSampler, got "
                       f"{type(sampler).__name__}.")
    if embed is not None and not callable(embed):
      raise ValueError(f"embed must be a callable embed(epoch, window) or None, got {embed!r}.")
    if embed is None and sampler.needs_embeddings:
      raise ValueError(f"{type(sampler).__name__} needs embeddings; allowed: embed=callable(epoch, "
                       "window) returning the [N, D] embeddings.")
    per_epoch = sampler.num_batches_per_epoch
    self.refresh_batches = per_epoch if refresh_batches is None else _checks.check_int(
        "refresh_batches", refresh_batches, low=1)
    self.num_replicas = _checks.check_int("num_replicas", num_replicas, low=1)
    self.rank = _checks.check_int("rank", rank, low=0, high=self.num_replicas - 1)
    if sampler.batch_size % self.num_replicas:
      raise ValueError(f"num_replicas={num_replicas} must divide the batch size "
                       f"{sampler.batch_size}; allowed: a divisor of {sampler.batch_size}.")
    self.sampler, self.embed = sampler, embed
    self.epoch = 0

  def set_epoch(self, epoch: int) -> None:
    """The epoch the next iteration yields (as ``DistributedSampler.set_epoch``)."""
    self.epoch = _checks.check_int("epoch", epoch, low=0)

  def __len__(self) -> int:
    return self.sampler.num_batches_per_epoch

  def __iter__(self) -> Iterator[list[int]]:
    schedule = WindowSchedule(len(self), self.refresh_batches)  # the trainer's windows
    local = self.sampler.batch_size // self.num_replicas
    columns = slice(self.rank * local, (self.rank + 1) * local)
    for window in range(schedule.windows_per_epoch):
      embeddings = None if self.embed is None else self.embed(self.epoch, window)
      rows = self.sampler.sample(self.epoch, embeddings, num_batches=self.refresh_batches,
                                 window=window)
      for row in rows[:schedule.window_length(window)]:
        yield row[columns].tolist()


def batch_plan(sampler: BatchSampler, embeddings, *, epochs: int, labels=None
               ) -> tuple[np.ndarray, list[dict]]:
  """``epochs`` whole epochs from fixed ``embeddings``: int32 ``[epochs, N // B, B]`` and each epoch's
  ``diagnostics.batch_stats``.

  ``embeddings``: ``[N, D]``, or a pair ``(x, y)`` of views: "tail" orders the pair (its symmetrised
  cross-view similarity), the other samplers and the statistics use one row per item, the unit views side
  by side (as the trainers' two-view tasks keep their bank).
  """
  epochs = _checks.check_int("epochs", epochs, low=1)
  bank, pair = plan_bank(embeddings)
  view = sampler_input(sampler, bank, pair)
  plans, stats = [], []
  for epoch in range(epochs):
    plan = sampler.sample(epoch, view)
    plans.append(plan)
    stats.append({"epoch": epoch, **diagnostics.batch_stats(plan, bank, labels)})
  return np.stack(plans).astype(np.int32), stats


def plan_bank(embeddings) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
  """``(bank, pair)`` on the default device, once for every epoch: for one array ``[N, D]`` the array and
  None; for a pair ``(x, y)`` of views one row per item, the unit views side by side (as the trainers'
  two-view tasks keep their bank), and the pair itself."""
  if not isinstance(embeddings, tuple):
    return _checks.check_embeddings("embeddings", embeddings, on_device=True), None
  if len(embeddings) != 2:
    raise ValueError(f"embeddings is a tuple of length {len(embeddings)}; allowed: an array [N, D] "
                     "or a pair (x, y).")
  x, y = (_checks.check_embeddings(f"embeddings[{i}]", v, on_device=True)
          for i, v in enumerate(embeddings))
  if x.shape != y.shape:
    raise ValueError(f"the pair's views must have the same shape, got {x.shape} and {y.shape}.")
  return pair_rows(x, y), (x, y)
