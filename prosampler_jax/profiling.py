"""A profiler trace of a few training steps, for the question a GPU run asks first: do the sampler's
kernels on device 0 delay the train step?

The loop marks every step (``jax.profiler.StepTraceAnnotation``), every sampler window and every
evaluation (``TraceAnnotation``), so a trace shows them side by side; ``StepProfiler`` records one such
trace of ``num_steps`` steps into ``WORKDIR/profile`` (open it with TensorBoard's profile plugin or
Perfetto).
"""

from __future__ import annotations

import os

import jax
from absl import logging


class StepProfiler:
  """Traces steps ``[start, start + num_steps)`` of this process into ``directory`` (nothing when
  ``num_steps`` is 0). ``start`` is the first step of the first window sampled from the bank (the
  sampler then runs beside the step), or the next step when a resumed run is already past it."""

  def __init__(self, directory: str, *, num_steps: int, first_bank_step: int, current_step: int,
               total_steps: int):
    self.directory = directory
    self.num_steps = num_steps
    start = first_bank_step if first_bank_step >= current_step else current_step
    self.start = min(start, max(total_steps - num_steps, current_step))
    self._active = False

  def before_step(self, step: int) -> None:
    """Starts the trace when ``step`` (about to run) is the first profiled one."""
    if self.num_steps and step == self.start and not self._active:
      os.makedirs(self.directory, exist_ok=True)
      jax.profiler.start_trace(self.directory)
      self._active = True

  def after_step(self, step: int) -> None:
    """Stops the trace once ``step`` steps have run and the last profiled one is done."""
    if self._active and step >= self.start + self.num_steps:
      self.close()
      logging.info("Profiled steps %d-%d into %s.", self.start, step - 1, self.directory)

  def close(self) -> None:
    if self._active:
      self._active = False
      jax.profiler.stop_trace()
