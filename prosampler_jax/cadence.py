"""When the loop does something, and how long it trained: the cadence rule and the epoch's clock.

- :func:`is_due`: the one "is it time" rule for every cadence in the loop (logging, evaluation,
  checkpoints, epoch ends): a period of 0 means never.
- :class:`EpochClock`: an epoch's training seconds are its wall time minus the spans the loop spends
  on something else (evaluation, checkpoint writes), which it runs inside :meth:`EpochClock.paused`.
  :meth:`EpochClock.lap` closes the epoch and starts the next one at once, so work done between two
  epochs (a save waiting for the next window's sampling) is counted in exactly one of them.
- :class:`WindowSchedule`: which steps of an epoch form each sampler refresh window (the trainer's, and
  the PyTorch and sentence-transformers adapters').
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator


def is_due(count: int, period: int) -> bool:
  """Whether ``count`` (a step or an epoch number) is a multiple of ``period``; never for ``period <= 0``."""
  return period > 0 and count % period == 0


class EpochClock:
  """Training time since the current epoch began, with the paused spans left out.

  ``now`` is the time source (seconds); tests pass a fake one. ``step`` is the step the epoch's timing
  starts at: after a resume in the middle of an epoch only the steps this process runs are timed.
  """

  def __init__(self, step: int, now: Callable[[], float] = time.time):
    self._now = now
    self._start, self._paused, self._first_step = now(), 0.0, step

  @contextlib.contextmanager
  def paused(self) -> Iterator[None]:
    """The span of the ``with`` block is not training time."""
    begin = self._now()
    try:
      yield
    finally:
      self._paused += self._now() - begin

  def lap(self, step: int) -> dict[str, float | int]:
    """Closes the epoch at ``step``: ``{"train_seconds", "train_steps"}``; the next epoch starts now."""
    now = self._now()
    record = {"train_seconds": now - self._start - self._paused, "train_steps": step - self._first_step}
    self._start, self._paused, self._first_step = now, 0.0, step
    return record


@dataclasses.dataclass(frozen=True)
class WindowSchedule:
  """Splits each epoch of ``steps_per_epoch`` steps into refresh windows of ``refresh_steps`` batches."""
  steps_per_epoch: int
  refresh_steps: int

  @property
  def windows_per_epoch(self) -> int:
    return math.ceil(self.steps_per_epoch / self.refresh_steps)

  def locate(self, step: int) -> tuple[int, int, int]:
    """(epoch, window within the epoch, offset within the window) of global step ``step``."""
    epoch, position = divmod(step, self.steps_per_epoch)
    window, offset = divmod(position, self.refresh_steps)
    return epoch, window, offset

  def window_start(self, epoch: int, window: int) -> int:
    return epoch * self.steps_per_epoch + window * self.refresh_steps

  def window_length(self, window: int) -> int:
    return min(self.refresh_steps, self.steps_per_epoch - window * self.refresh_steps)

  def next_window(self, epoch: int, window: int) -> tuple[int, int]:
    return (epoch, window + 1) if window + 1 < self.windows_per_epoch else (epoch + 1, 0)

  def global_window(self, epoch: int, window: int) -> int:
    """A run-wide window number (the input pipeline's augmentation seed)."""
    return epoch * self.windows_per_epoch + window
