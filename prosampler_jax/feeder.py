"""Sampler windows → input pipeline: which batches the loop trains on, sampled one window ahead.

An epoch of ``N // B`` steps is split into windows of ``refresh_steps`` steps (ProSampler's t). Each
window's index array comes from ``sampler.sample(epoch, view, num_batches=refresh_steps, window=w)`` on a
snapshot of the embedding bank, and the task's ``pretrain_batches`` turns it into device batches.

When is a window sampled? The loop asks :meth:`BatchFeeder.due` before every step. A window is due

- at its first step, if it was not sampled earlier (the first window of a run, a resumed run, or
  ``lookahead = 0``);
- ``lookahead`` steps before its first step, while the window before it is running: the sampler then
  runs in a worker thread while the device trains. The look-ahead is ``min(lookahead_steps,
  refresh_steps // 8)``: at most an eighth of a window, so the bank a window is sampled from misses at most
  an eighth of the previous window's writes (see :func:`effective_lookahead`).

Windows of warm-up epochs are uniform and see no bank. After warm-up the loop hands :meth:`submit` a bank
in which every row was written by training (it encodes the rows training never wrote first), and the
bank's freshness (``bank_written_fraction``, ``bank_staleness_steps``) and the worker's time for the
window (``sampler_seconds``) are recorded with the window's batch statistics.
"""

from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from prosampler_jax import _checks
from prosampler_jax.cadence import WindowSchedule
from prosampler_jax import diagnostics
from prosampler_jax import divergence
from prosampler_jax import parallel
from prosampler_jax import samplers

LOOKAHEAD_FRACTION = 8  # the look-ahead is at most 1/8 of a refresh window


def effective_lookahead(lookahead_steps: int, refresh_steps: int) -> int:
  """Steps by which sampling runs ahead: ``min(lookahead_steps, refresh_steps // 8)``.

  Why a fraction: a window sampled ``L`` steps early is sampled from a bank that misses the last ``L``
  steps of writes. Capping ``L`` at an eighth of the window keeps that gap small whatever t is; windows
  shorter than 8 steps are sampled synchronously, at their first step.
  """
  return min(lookahead_steps, refresh_steps // LOOKAHEAD_FRACTION)


# What of each bank row the sampler reads: the whole row, or only the first of a two-view task's views
# (half the sampler's float32 copy and half its reads; SimCSE's views are two dropout passes of one
# sentence). config.sampler.bank_view.
BANK_VIEWS = ("rows", "first_view")


def check_bank_view(bank_view: str, *, reads_pairs: bool, two_views: bool = True) -> str:
  """``bank_view`` if the sampler (``reads_pairs``) and the task (``two_views``: rows hold two views) can
  use it, else a ValueError naming config.sampler.bank_view and what is allowed."""
  _checks.check_choice("config.sampler.bank_view", bank_view, BANK_VIEWS)
  if bank_view == "first_view" and not two_views:
    raise ValueError("config.sampler.bank_view='first_view' needs a task whose bank rows hold two views "
                     "(a bank_pair); this one's do not. allowed: 'rows'.")
  if bank_view == "first_view" and reads_pairs:
    raise ValueError("config.sampler.bank_view='first_view' leaves a sampler that reads pairs (Tail Batch "
                     "Sampling) no pair to read; allowed with it: 'rows'.")
  return bank_view


class BatchFeeder:
  """Turns bank snapshots into index arrays and index arrays into device batches, one window ahead.

  All randomness comes from the sampler's seed, the window and the bank snapshot, and the feeder's
  :meth:`state` holds the sampler's state and the current and pending index arrays, so a run resumed
  from a checkpoint sees the same batches.
  """

  def __init__(self, task, sampler, schedule: WindowSchedule, mesh, *, warmup_epochs: int,
               lookahead_steps: int, total_steps: int, temperature: float | None = None,
               false_negative_margin: float | None = None, loss_gap_scores: int | None = None,
               seed: int = 0, bank_view: str = "rows"):
    self._task, self._sampler, self._schedule, self._mesh = task, sampler, schedule, mesh
    self._bank_view = check_bank_view(bank_view, reads_pairs=sampler.reads_pairs,
                                      two_views=getattr(task, "bank_pair", None) is not None)
    # What the window statistics need beyond the bank: the loss's temperature (loss gap) and margin.
    self._loss_options = {"temperature": temperature, "false_negative_margin": false_negative_margin,
                          "loss_gap_scores": loss_gap_scores, "seed": seed}
    self._warmup_epochs, self._total = warmup_epochs, total_steps
    self.lookahead = effective_lookahead(lookahead_steps, schedule.refresh_steps)
    self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sampler")
    # Its own worker: the first window's sampling must not queue behind the precompile run.
    self._precompiler = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                              thread_name_prefix="sampler-precompile")
    self._pending: tuple[tuple[int, int], concurrent.futures.Future] | None = None
    self._window: tuple[int, int] | None = None
    self._batches: np.ndarray | None = None
    self._iterator: Iterator | None = None
    self.digest = hashlib.sha1().hexdigest()  # running digest of every window's index array
    self.window_stats: dict[str, float] = {}
    self.new_window = False  # True right after next_batch() switched to a freshly sampled window

  # -- when and from what to sample ------------------------------------------------------------------

  def due(self, step: int) -> tuple[int, int] | None:
    """The (epoch, window) that must be submitted before step ``step`` runs, or None."""
    current = self._schedule.locate(step)[:2]
    pending = None if self._pending is None else self._pending[0]
    if self._window != current and pending != current:
      return current
    if self.lookahead == 0 or pending is not None or self._window != current:
      return None
    upcoming = self._schedule.next_window(*current)
    start = self._schedule.window_start(*upcoming)
    if start < self._total and step >= start - self.lookahead:
      return upcoming
    return None

  def warmup_ahead(self, step: int) -> bool:
    """Whether ``step`` is in a warm-up epoch that bank-sampled steps follow: only then does
    :meth:`precompile` pay off (after warm-up, on a resume, it would be a throw-away sampler pass, for
    Tail Batch Sampling a whole epoch's ordering)."""
    warmup_steps = self._warmup_epochs * self._schedule.steps_per_epoch
    return step < warmup_steps < self._total

  def uses_bank(self, window: tuple[int, int]) -> bool:
    """Whether ``window`` is sampled from the bank (after warm-up) rather than uniformly."""
    return window[0] >= self._warmup_epochs

  def submit(self, window: tuple[int, int], bank: jax.Array | None,
             freshness: dict[str, Any] | None = None, *, first_bad_step: jax.Array | None = None) -> None:
    """Starts sampling ``window`` in the worker thread from a device copy of ``bank`` (None: uniform).

    The copy is made on the first local device by device-to-device transfers
    (``parallel.device_snapshot``): the sampler and the window's batch statistics read it there, on one
    device, so on one host the bank never travels to the host.

    ``freshness`` (the bank's written fraction and staleness when the copy was taken; floats or device
    scalars, read in the worker so the loop does not wait for the device) is recorded with the window's
    batch statistics. ``first_bad_step`` (a device scalar, -1 if every step so far was healthy) is read
    in the worker before sampling: a bank written by a diverged step raises
    ``divergence.TrainingDiverged`` from :meth:`next_batch` instead of a complaint about NaN rows.
    """
    if self._pending is not None:
      raise RuntimeError(f"window {self._pending[0]} is still pending; submit {window} after it is used.")
    # The train step donates the bank: copy it now, on the device.
    snapshot = None if bank is None else self._snapshot(bank)
    freshness = dict(freshness or {})
    job = lambda: self._sample(*window, snapshot, freshness, first_bad_step)
    self._pending = (tuple(window), self._executor.submit(job))

  def _sample(self, epoch: int, window: int, snapshot: jax.Array | None, freshness: dict[str, Any],
              first_bad_step: jax.Array | None) -> tuple[np.ndarray, dict, Iterator]:
    """The window's index array, its statistics and its input pipeline (already prefetching)."""
    if first_bad_step is not None and int(first_bad_step) >= 0:
      raise divergence.TrainingDiverged(int(first_bad_step))
    start = time.perf_counter()
    view = None if snapshot is None else self._view(snapshot)
    with jax.profiler.TraceAnnotation("sampler_window"):  # beside the train steps in a profile
      batches = self._sampler.sample(epoch, view, num_batches=self._schedule.refresh_steps,
                                     window=window)
    stats = {k: float(v) for k, v in freshness.items()}
    stats.update(self._sampler.window_info())  # e.g. which window's bank TBS's epoch order came from
    if snapshot is not None:
      stats.update(self._batch_stats(batches[:self._schedule.window_length(window)], snapshot))
      # The worker's time for this window (sampler + statistics): what a look-ahead has to hide.
      stats["sampler_seconds"] = time.perf_counter() - start
    return batches, stats, self._pipeline(epoch, window, batches, start_batch=0)

  def _snapshot(self, bank: jax.Array) -> jax.Array:
    """The sampler's float32 copy of ``bank`` on one device (``parallel.device_snapshot``), of the part
    ``bank_view`` names, cut and converted there once: the sampler and the window's statistics both read
    it, so a bfloat16 bank costs one float32 copy, not two."""
    snapshot = parallel.device_snapshot(bank)
    if self._bank_view == "first_view":
      snapshot = self._task.bank_pair(snapshot)[0]
    return snapshot.astype(np.float32)

  def _view(self, snapshot: jax.Array):
    """What the sampler reads of a snapshot: the task's pair of views for a sampler that reads pairs
    (``samplers.sampler_input``), else the rows."""
    return samplers.sampler_input(self._sampler, snapshot, lambda: self._task.sampler_view(snapshot))

  def _pipeline(self, epoch: int, window: int, batches: np.ndarray, *, start_batch: int) -> Iterator:
    return self._task.pretrain_batches(batches, window=self._schedule.global_window(epoch, window),
                                       start_batch=start_batch)

  def precompile(self, bank: jax.Array) -> None:
    """Runs a throw-away copy of the sampler once, in a thread of its own, so its JAX kernels compile
    during the warm-up epoch instead of stalling the first window that needs them."""
    sampler, snapshot = copy.deepcopy(self._sampler), self._snapshot(bank)
    window_length = self._schedule.window_length(0)

    def job():
      batches = sampler.sample(self._warmup_epochs, self._view(snapshot),
                               num_batches=self._schedule.refresh_steps)
      self._batch_stats(batches[:window_length], snapshot)

    future = self._precompiler.submit(job)  # joined by close(): no thread outlives the loop
    future.add_done_callback(lambda f: f.cancelled() or f.exception() is None or logging.warning(
        "Sampler precompile run failed (the first window compiles instead): %r", f.exception()))

  # -- feeding ---------------------------------------------------------------------------------------

  def next_batch(self, step: int) -> tuple[Any, jax.Array]:
    """The global (inputs pytree, item indices) for ``step``; switches windows when one begins."""
    epoch, window, offset = self._schedule.locate(step)
    self.new_window = self._window != (epoch, window)
    if self.new_window:
      if self._pending is None or self._pending[0] != (epoch, window):
        raise RuntimeError(f"step {step} needs window {(epoch, window)}, which was never submitted; "
                           "call due(step) and submit() first.")
      (_, future), self._pending = self._pending, None
      self._batches, self.window_stats, self._iterator = future.result()
      self._window = (epoch, window)
      self._check_processes_agree()
      self.digest = hashlib.sha1(self.digest.encode() + self._batches.tobytes()).hexdigest()
    if self._iterator is None:  # resumed: rebuild the pipeline from the checkpointed index array
      self._iterator = self._pipeline(epoch, window, self._batches, start_batch=offset)
    element = next(self._iterator)
    return (parallel.to_global(element["inputs"], self._mesh),
            parallel.to_global(element["index"], self._mesh))

  def _check_processes_agree(self) -> None:
    """Every process must train on the same index array: compare 8 bytes of its hash (multi-host only)."""
    if jax.process_count() == 1:
      return
    digest = np.frombuffer(hashlib.sha1(self._batches.tobytes()).digest()[:8], np.int32)  # no x64 in JAX
    multihost_utils.assert_equal(digest, f"processes sampled different batches for window "
                                 f"{self._window}; check that every process has the same data, config "
                                 "and seed.")

  # -- checkpointing ---------------------------------------------------------------------------------

  def wait_pending(self) -> None:
    """Waits until the submitted window (if any) is sampled; its errors surface when it is used."""
    if self._pending is not None:
      concurrent.futures.wait([self._pending[1]])

  def state(self) -> tuple[dict[str, np.ndarray], dict]:
    """Host arrays and JSON metadata that reproduce the batch sequence from here on."""
    arrays, scalars, meta = {}, {}, {"pending": None}
    if self._pending is not None:  # wait for it: its result and the sampler's state must be final
      key, future = self._pending
      batches, stats, _ = future.result()
      arrays["next_batches"], meta["pending"], meta["pending_stats"] = batches, list(key), stats
    for key, value in self._sampler.state_dict().items():
      if isinstance(value, np.ndarray) and value.dtype != object:
        arrays[f"sampler/{key}"] = value
      else:
        scalars[key] = value.item() if isinstance(value, np.generic) else value
    meta.update(digest=self.digest, window=list(self._window) if self._window else None,
                sampler=scalars, window_stats=self.window_stats)
    if self._batches is not None:
      arrays["batches"] = self._batches
    return arrays, meta

  def load(self, host: dict[str, np.ndarray], meta: dict) -> None:
    """Restores what :meth:`state` saved."""
    arrays = {k.split("/", 1)[1]: v for k, v in host.items() if k.startswith("sampler/")}
    self._sampler.load_state_dict({**meta["sampler"], **arrays})
    self.digest, self.window_stats = meta["digest"], meta["window_stats"]
    self._window = tuple(meta["window"]) if meta["window"] else None
    self._batches = host.get("batches")
    self._iterator = None
    self._pending = None
    if meta["pending"]:
      future = concurrent.futures.Future()
      future.set_result((host["next_batches"], meta["pending_stats"], None))  # pipeline built on use
      self._pending = (tuple(meta["pending"]), future)

  def final_stats(self, bank: jax.Array) -> dict[str, float]:
    """The last refresh's batch statistics, or (if every window was a warm-up) the current window's."""
    if self.window_stats or self._batches is None:
      return self.window_stats
    return self._batch_stats(self._batches, self._snapshot(bank))

  def _batch_stats(self, batches: np.ndarray, snapshot: jax.Array) -> dict:
    """``diagnostics.batch_stats`` of a window's batches on a bank snapshot. For a task with a
    ``bank_pair`` it adds, with a temperature, the loss gap (scored exactly while the window's anchors × N
    fit ``loss_gap_scores``, default ``diagnostics.REFRESH_GAP_SCORES``, else on a fixed random subset of
    anchors; 0: no gap) and, with a margin, the share of in-batch negatives the loss drops."""
    # A first-view snapshot holds no pair: no loss gap or margin share for it.
    bank_pair = getattr(self._task, "bank_pair", None) if self._bank_view == "rows" else None
    options = self._loss_options
    scores = options["loss_gap_scores"]
    temperature = None if scores == 0 else options["temperature"]
    if bank_pair is None or (temperature is None and options["false_negative_margin"] is None):
      return diagnostics.batch_stats(batches, snapshot, self._task.pretrain_labels)
    anchors = None if temperature is None else diagnostics.gap_anchors(snapshot.shape[0], batches.size,
                                                                        scores)
    return diagnostics.batch_stats(
        batches, snapshot, self._task.pretrain_labels, pairs=bank_pair(snapshot),
        temperature=temperature, false_negative_margin=options["false_negative_margin"],
        loss_gap_anchors=anchors, seed=options["seed"])

  def close(self) -> None:
    """Joins the worker threads (a pending window is finished, queued work cancelled)."""
    self._precompiler.shutdown(wait=True, cancel_futures=True)
    self._executor.shutdown(wait=True, cancel_futures=True)
