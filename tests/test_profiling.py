"""The step profiler: which steps it traces, and a real trace written by the loop."""

import glob
import gzip
import json
import os

import pytest

import tiny_tasks
from prosampler_jax import profiling
from prosampler_jax import train


@pytest.mark.parametrize("first_bank_step, current, total, start", [
    (22, 0, 44, 22),   # a fresh run: from the first window sampled from the bank
    (22, 30, 44, 30),  # resumed past it: from the resumed step
    (50, 0, 44, 41),   # no bank window before the end (all warm-up): the last steps
])
def test_the_profiled_steps_start_where_the_sampler_first_runs_beside_the_step(first_bank_step, current,
                                                                                total, start):
  profiler = profiling.StepProfiler("/unused", num_steps=3, first_bank_step=first_bank_step,
                                    current_step=current, total_steps=total)
  assert profiler.start == start


def _write_trace(directory, steps_ms, windows_ms):
  """A Perfetto JSON trace as jax.profiler writes it: complete ('X') events in microseconds."""
  run = directory / "plugins" / "profile" / "2026_01_01_00_00_00"
  run.mkdir(parents=True)
  events = [{"ph": "X", "pid": 1, "tid": 1, "ts": t * 1e3, "dur": 0.5e3, "name": "train",
             "args": {"step_num": str(i)}} for i, t in enumerate(steps_ms)]
  events += [{"ph": "X", "pid": 1, "tid": 2, "ts": a * 1e3, "dur": (b - a) * 1e3, "name": "sampler_window"}
             for a, b in windows_ms]
  events += [{"ph": "X", "pid": 1, "tid": 1, "ts": 5e3, "dur": 1.0, "name": "$mlir.py other"}]
  with gzip.open(run / "perfetto_trace.json.gz", "wt") as f:
    json.dump({"displayTimeUnit": "ns", "traceEvents": events}, f)


def test_the_summary_times_steps_by_their_starts_and_splits_them_by_the_sampler_beside_them(tmp_path):
  # Steps start at 0, 10, 25, 40, 50 ms: 10, 15, 15, 10 ms each. The window (12–30 ms) overlaps the
  # second and third: 15 ms beside the sampler, 10 ms without, a slowdown of 1.5.
  _write_trace(tmp_path, [0, 10, 25, 40, 50], [(12, 30)])
  assert profiling.trace_summary(str(tmp_path)) == {
      "steps_timed": 4, "step_ms": 12.5, "steps_beside_sampler": 2, "step_ms_beside_sampler": 15.0,
      "step_ms_without_sampler": 10.0, "sampler_slowdown": 1.5, "sampler_windows": 1,
      "sampler_window_ms": 18.0}


@pytest.mark.slow
def test_the_loop_writes_a_trace_of_the_requested_steps_and_its_summary(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(profiling.jax.profiler, "start_trace",
                      lambda d, _start=profiling.jax.profiler.start_trace, **kw: (calls.append("start"),
                                                                                _start(d, **kw))[1])
  config = tiny_tasks.tiny_loop_config(profile_steps=4)
  train.train_and_evaluate(config, str(tmp_path), task=tiny_tasks.DigitVectorsTask())
  assert calls == ["start"]
  traces = glob.glob(os.path.join(tmp_path, "profile", "**", "*.xplane.pb"), recursive=True)
  assert len(traces) == 1 and os.path.getsize(traces[0]) > 0
  with open(os.path.join(tmp_path, "profile", profiling.SUMMARY_FILE), encoding="utf-8") as f:
    summary = json.load(f)
  assert summary["steps_timed"] == 3 and summary["step_ms"] > 0  # 4 step starts: 3 intervals
  assert 0 <= summary["steps_beside_sampler"] <= 3
  assert (summary["step_ms_beside_sampler"] is None) == (summary["steps_beside_sampler"] == 0)
