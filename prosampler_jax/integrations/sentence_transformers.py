"""Any prosampler sampler as a sentence-transformers batch sampler (v5+).

    from prosampler_jax.integrations import sentence_transformers as ps_st
    args = SentenceTransformerTrainingArguments(
        output_dir="out", per_device_train_batch_size=64,
        batch_sampler=ps_st.batch_sampler("proximity", model=model, refresh_batches=100,
                                          train_dataset=train_dataset, num_candidates=1000))

sentence-transformers builds its batch sampler from ``args.batch_sampler(dataset, batch_size, drop_last,
valid_label_columns, generator, seed)``, calls ``set_epoch`` every epoch and never hands the sampler
the model; ``batch_sampler(...)`` therefore returns that callable with the model bound.
``ProSamplerBatchSampler`` then samples a window of ``refresh_batches`` batches at a time
(``batch_plan.PlanBatchSampler``) from the embeddings of the dataset's text column, encoded with the model
being trained (under ``torch.no_grad()`` in eval mode, its mode restored after): one encode of the
dataset per window, so keep windows long (ProSampler's t ≈ 100) on large data. A plan file
(``plan=``) replaces the encodes with batches written earlier by ``python -m prosampler_jax.plan``.

Every rank samples the same global batches (accelerate then deals them out). Under
``torch.distributed`` the ranks compare ``digest()`` after each window; if encodes differed (GPU kernels
are not bitwise deterministic), rank 0's batches are used everywhere and a warning says so.

Resuming: ``state_dict()`` holds the epoch, the position in it, the current window's batches and the
sampler's state, so ``load_state_dict`` continues the same batches even though the model has moved on;
pass ``ignore_data_skip=True`` to the trainer's arguments then (it would otherwise skip batches again).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from prosampler_jax import _checks
from prosampler_jax import samplers
from prosampler_jax.batch_plan import PlanBatchSampler
from prosampler_jax.batch_plan import PlanFileSampler
from prosampler_jax.cadence import WindowSchedule

try:  # sentence-transformers ≥ 6 keeps the samplers under base/
  from sentence_transformers.base.sampler import DefaultBatchSampler
except ImportError:  # sentence-transformers 5
  from sentence_transformers.sampler import DefaultBatchSampler

_SALT_REMAINDER = 7  # the random stream of the last partial batch (drop_last=False)


class ProSamplerBatchSampler(DefaultBatchSampler):
  """A ``DefaultBatchSampler`` whose batches come from a prosampler sampler.

  The first six arguments are what sentence-transformers passes. Keyword arguments (bound by
  ``batch_sampler``):
    sampler: a name of ``samplers.SAMPLERS`` (uniform | proximity | knn | tail | partition | cluster | fixed).
    model: the SentenceTransformer being trained (needed by every sampler but uniform and plans).
    plan: path of a plan written by ``python -m prosampler_jax.plan`` (with its ``.json``): its batches
      instead of a sampler's (refused when made for another N or B).
    refresh_batches: batches per window (ProSampler's t); None: one window per epoch.
    text_column: the column whose embeddings the sampler reads; None: the first non-label column.
    pair_column: the positive's column for samplers that read pairs (tail); None: the second one.
    encode_batch_size: the batch size of the refresh encodes.
    options: the sampler's own keyword arguments (e.g. ``num_candidates=1000``).

  ``len()`` is ``N // B``, plus one partial batch when ``drop_last`` is False and B does not divide N:
  ``N mod B`` items the epoch's batches left out (drawn from the seed and epoch).
  """

  def __init__(self, dataset, batch_size: int, drop_last: bool, valid_label_columns=None,
               generator=None, seed: int = 0, *, sampler: str = "proximity", model=None,
               plan: str | None = None, refresh_batches: int | None = None,
               text_column: str | None = None, pair_column: str | None = None,
               encode_batch_size: int = 128, options: dict[str, Any] | None = None):
    super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                     valid_label_columns=valid_label_columns, generator=generator, seed=seed)
    self.dataset = dataset
    n = len(dataset)
    if plan is not None:
      inner = PlanFileSampler(plan, n, batch_size)
    else:
      inner = samplers.make_sampler(sampler, n, batch_size, seed=seed, **(options or {}))
    columns = [c for c in dataset.column_names if c not in (valid_label_columns or ())]
    self.text_column = _column("text_column", text_column, columns, 0)
    self.pair_column = (_column("pair_column", pair_column, columns, 1)
                        if inner.reads_pairs and (pair_column or len(columns) > 1) else None)
    if inner.needs_embeddings and model is None:
      raise ValueError(f"sampler={sampler!r} reads embeddings; allowed: model=<the SentenceTransformer "
                       "being trained>, a plan= file, or sampler='uniform'.")
    self.model, self.encode_batch_size = model, _checks.check_int("encode_batch_size",
                                                                  encode_batch_size, low=1)
    self._plan = PlanBatchSampler(inner, self._embed if inner.needs_embeddings else None,
                                  refresh_batches=refresh_batches)
    self._position = 0               # batches of the epoch already yielded
    self._window_rows: np.ndarray | None = None  # the current window's global batches
    self._covered = np.zeros(n, bool)  # items the epoch's batches hold (for the partial batch)
    self._epoch_in_progress = -1

  # ---------------------------------------------------------------- what the trainer calls

  def __len__(self) -> int:
    full = self._plan.sampler.num_batches_per_epoch
    return full + int(not self.drop_last and len(self._covered) % self.batch_size > 0)

  def __iter__(self) -> Iterator[list[int]]:
    self._plan.set_epoch(self.epoch)
    if self._epoch_in_progress != self.epoch:  # a fresh epoch (not one restored mid-way)
      self._epoch_in_progress, self._position, self._window_rows = self.epoch, 0, None
      self._covered[:] = False
      self._plan.start_epoch()
    t = self._plan.refresh_batches
    schedule = WindowSchedule(self._plan.sampler.num_batches_per_epoch, t)
    while self._position < schedule.steps_per_epoch:
      window, offset = divmod(self._position, t)
      if self._window_rows is None or offset == 0:
        self._window_rows = self._sample_window(window)
        self._covered[self._window_rows[:schedule.window_length(window)].ravel()] = True
      self._position += 1
      yield self._window_rows[offset].tolist()
    if len(self) > schedule.steps_per_epoch and self._position == schedule.steps_per_epoch:
      self._position += 1
      yield self._remainder().tolist()
    self._epoch_in_progress = -1  # the epoch is done: iterating again starts the epoch afresh

  def state_dict(self) -> dict[str, Any]:
    """Where the epoch stands: resuming with it continues the very same batches."""
    return {"epoch": self._epoch_in_progress, "position": self._position,
            "window_rows": None if self._window_rows is None else self._window_rows.copy(),
            "covered": self._covered.copy(), "sampler": self._plan.sampler.state_dict()}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    """Restores ``state_dict()``; the next ``__iter__`` of that epoch continues where it stopped."""
    missing = {"epoch", "position", "window_rows", "covered", "sampler"} - set(state)
    if missing:
      raise ValueError(f"state is missing key(s) {sorted(missing)}; allowed: a dict from state_dict().")
    covered = np.asarray(state["covered"], bool)
    if covered.shape != self._covered.shape:
      raise ValueError(f"state['covered'] has {covered.size} items; allowed: {self._covered.size}, this "
                       "dataset's size.")
    self._plan.sampler.load_state_dict(state["sampler"])
    self._epoch_in_progress, self._position = int(state["epoch"]), int(state["position"])
    self.epoch = max(self._epoch_in_progress, 0)
    self._window_rows = None if state["window_rows"] is None else np.asarray(state["window_rows"])
    self._covered = covered.copy()

  def digest(self) -> str:
    """Fingerprint of the epoch's global batches sampled so far (``PlanBatchSampler.digest``)."""
    return self._plan.digest()

  # ---------------------------------------------------------------- internals

  def _sample_window(self, window: int) -> np.ndarray:
    rows = self._plan.sample_window(window)
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1:
      rows = _rank_zero_rows(rows, self.digest(), window, self.epoch)
    return rows

  def _embed(self, epoch: int, window: int):
    """The text column's embeddings (and the pair column's, for samplers that read pairs) from the
    model being trained, in eval mode without gradients; the model's mode is restored after."""
    del epoch, window  # the model's current weights are the state
    was_training = self.model.training
    self.model.eval()
    try:
      with torch.no_grad():
        encode = functools.partial(self.model.encode, batch_size=self.encode_batch_size,
                                   convert_to_numpy=True, show_progress_bar=False)
        x = np.asarray(encode(list(self.dataset[self.text_column])), np.float32)
        if self.pair_column is None:
          return x
        return x, np.asarray(encode(list(self.dataset[self.pair_column])), np.float32)
    finally:
      self.model.train(was_training)

  def _remainder(self) -> np.ndarray:
    """The last partial batch: N mod B items the epoch's batches left out (all of them when enough were
    left out; else every left-out item and the rest drawn from the others)."""
    size = len(self._covered) % self.batch_size
    rng = np.random.default_rng([self.seed, self.epoch, _SALT_REMAINDER])
    left_out = rng.permutation(np.flatnonzero(~self._covered))
    if len(left_out) >= size:
      return left_out[:size]
    others = rng.choice(np.flatnonzero(self._covered), size - len(left_out), replace=False)
    return np.concatenate([left_out, others])


def batch_sampler(sampler: str = "proximity", *, model=None, plan: str | None = None,
                  refresh_batches: int | None = None, train_dataset=None, text_column: str | None = None,
                  pair_column: str | None = None, encode_batch_size: int = 128,
                  **options) -> BatchSamplerFactory:
  """The callable for ``SentenceTransformerTrainingArguments(batch_sampler=…)``: builds a
  ``ProSamplerBatchSampler`` with these arguments for the dataset the trainer passes.

  ``train_dataset``: when given, other datasets (evaluation) get plain in-order batches of every item
  (sentence-transformers asks the same callable for them); otherwise every dataset gets sampled batches.
  The arguments are checked now, so a typo fails before the trainer starts: the sampler's name, its
  options' names, ``refresh_batches``, ``encode_batch_size`` and the column and plan arguments' types,
  and, with ``train_dataset``, the options' values too (a sampler is built for its size; without it the
  values are checked when the trainer asks for its loader).
  """
  _checks.check_choice("sampler", sampler, tuple(samplers.SAMPLERS))
  accepted = [k for k in samplers.keyword_arguments(sampler) if k != "seed"]  # the trainer's seed is used
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    raise ValueError(f"sampler {sampler!r} does not take {', '.join(unknown)}; allowed: "
                     f"{', '.join(accepted) or 'no options'} (the seed is the trainer's).")
  if refresh_batches is not None:
    _checks.check_int("refresh_batches", refresh_batches, low=1)
  _checks.check_int("encode_batch_size", encode_batch_size, low=1)
  for name, value in (("plan", plan), ("text_column", text_column), ("pair_column", pair_column)):
    if value is not None and not isinstance(value, str):
      raise ValueError(f"{name}={value!r} ({type(value).__name__}) is not supported; allowed: None or a "
                       "string.")
  if train_dataset is not None and plan is None:
    samplers.make_sampler(sampler, len(train_dataset), 2, **options)  # the constructor checks the values
  return BatchSamplerFactory(
      train_dataset, sampler=sampler, model=model, plan=plan, refresh_batches=refresh_batches,
      text_column=text_column, pair_column=pair_column, encode_batch_size=encode_batch_size,
      options=options)


class BatchSamplerFactory:
  """What ``batch_sampler`` returns: called by the trainer as ``(dataset, batch_size, drop_last,
  valid_label_columns, generator, seed)``. The trainer pickles its arguments into every checkpoint
  (``training_args.bin``), so the pickled copy leaves out the model and the dataset: it records the
  settings, it is not meant to train again."""

  def __init__(self, train_dataset, **arguments):
    self.train_dataset, self.arguments = train_dataset, arguments

  def __call__(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
    if self.train_dataset is not None and not _same_dataset(dataset, self.train_dataset):
      return DefaultBatchSampler(torch.utils.data.SequentialSampler(dataset), batch_size=batch_size,
                                 drop_last=drop_last, valid_label_columns=valid_label_columns,
                                 generator=generator, seed=seed)
    return ProSamplerBatchSampler(dataset, batch_size, drop_last, valid_label_columns, generator, seed,
                                  **self.arguments)

  def __getstate__(self) -> dict[str, Any]:
    return {"train_dataset": None, "arguments": {**self.arguments, "model": None}}

  def __repr__(self) -> str:
    shown = {k: v for k, v in self.arguments.items() if k != "model" and v is not None}
    return f"prosampler_jax batch_sampler({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _same_dataset(a, b) -> bool:
  """The trainer may hand over a transformed copy: equal Hugging Face fingerprints count as the same."""
  fingerprint = getattr(a, "_fingerprint", None)
  return a is b or (fingerprint is not None and fingerprint == getattr(b, "_fingerprint", None))


def _column(argument: str, name: str | None, columns: list[str], position: int) -> str:
  if name is None:
    if len(columns) <= position:
      raise ValueError(f"{argument}: the dataset has text columns {columns}; allowed: a dataset with "
                       f"{position + 1} or more, or {argument}=<a column>.")
    return columns[position]
  _checks.check_choice(argument, name, tuple(columns))
  return name


def _rank_zero_rows(rows: np.ndarray, digest: str, window: int, epoch: int) -> np.ndarray:
  """Every rank trains on rank 0's batches: digests are compared and, if a rank's differ (its encode
  differed), rank 0's rows are broadcast and that rank warns, naming every differing rank."""
  digests = [None] * torch.distributed.get_world_size()
  torch.distributed.all_gather_object(digests, digest)
  if len(set(digests)) == 1:
    return rows
  shared = [rows if torch.distributed.get_rank() == 0 else None]
  torch.distributed.broadcast_object_list(shared, src=0)
  differing = [r for r, d in enumerate(digests) if d != digests[0]]
  if torch.distributed.get_rank() in differing:  # said once, by the ranks whose batches changed
    warnings.warn(f"epoch {epoch}, window {window}: ranks {differing} sampled other batches than rank 0 "
                  "(their embeddings differed: non-deterministic kernels); every rank uses rank 0's.",
                  stacklevel=3)
  return np.asarray(shared[0])
