"""A profiler trace of a few training steps, for the question a GPU run asks first: do the sampler's
kernels on device 0 delay the train step?

The loop marks every step (``jax.profiler.StepTraceAnnotation``), every sampler window and every
evaluation (``TraceAnnotation``), so a trace shows them side by side; ``StepProfiler`` records one such
trace of ``num_steps`` steps into ``WORKDIR/profile`` (open it with TensorBoard's profile plugin or
Perfetto) and answers the question itself in ``WORKDIR/profile/summary.json`` (``trace_summary``): the
time per step while a sampler window ran beside it and while none did.
"""

from __future__ import annotations

import glob
import gzip
import json
import os

import jax
import numpy as np
from absl import logging

SUMMARY_FILE = "summary.json"


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
      jax.profiler.start_trace(self.directory, create_perfetto_trace=True)
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
      try:  # the trace is written either way; a summary that cannot be read must not end the run
        summary = trace_summary(self.directory)
      except (OSError, ValueError, KeyError) as error:
        logging.warning("No profile summary: %s", error)
        return
      with open(os.path.join(self.directory, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
      logging.info("Profile summary: %s", json.dumps(summary))


def trace_summary(directory: str) -> dict:
  """Step times with and without the sampler beside them, read from the newest trace in ``directory``
  (its Perfetto JSON).

  A step's time is the interval from its ``train`` annotation's start to the next one's: with
  asynchronous dispatch the annotation itself times only the dispatch, while the interval between starts,
  in a loop held back by the device, is the step as the device runs it. A step "runs beside the sampler"
  when its interval overlaps a ``sampler_window`` annotation. ``sampler_slowdown`` (mean step beside the
  sampler / mean step without) is the answer: 1.0 when the sampler's kernels cost the step nothing.
  """
  traces = sorted(glob.glob(os.path.join(directory, "plugins", "profile", "*", "perfetto_trace.json.gz")))
  if not traces:
    raise FileNotFoundError(f"no perfetto_trace.json.gz under {directory}/plugins/profile.")
  with gzip.open(traces[-1], "rt", encoding="utf-8") as f:
    events = json.load(f)["traceEvents"]
  spans = lambda name: sorted((e["ts"], e["ts"] + e.get("dur", 0.0)) for e in events
                              if e.get("ph") == "X" and e.get("name") == name)
  starts = np.array([start for start, _ in spans("train")])
  windows = spans("sampler_window")
  intervals = np.stack([starts[:-1], starts[1:]], axis=1) if len(starts) > 1 else np.zeros((0, 2))
  beside = np.array([any(a < w_end and w_start < b for w_start, w_end in windows) for a, b in intervals],
                    bool)
  step_ms = (intervals[:, 1] - intervals[:, 0]) / 1e3
  mean = lambda x: round(float(x.mean()), 3) if x.size else None
  with_sampler, without = mean(step_ms[beside]), mean(step_ms[~beside])
  return {"steps_timed": int(step_ms.size), "step_ms": mean(step_ms),
          "steps_beside_sampler": int(beside.sum()), "step_ms_beside_sampler": with_sampler,
          "step_ms_without_sampler": without,
          "sampler_slowdown": (round(with_sampler / without, 3) if with_sampler and without else None),
          "sampler_windows": len(windows),
          "sampler_window_ms": round(sum(end - start for start, end in windows) / 1e3, 3)}
