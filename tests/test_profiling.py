"""The step profiler: which steps it traces, and a real trace written by the loop."""

import glob
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


@pytest.mark.slow
def test_the_loop_writes_a_trace_of_the_requested_steps(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(profiling.jax.profiler, "start_trace",
                      lambda d, _start=profiling.jax.profiler.start_trace: (calls.append("start"),
                                                                          _start(d))[1])
  config = tiny_tasks.tiny_loop_config(profile_steps=2)
  train.train_and_evaluate(config, str(tmp_path), task=tiny_tasks.DigitVectorsTask())
  assert calls == ["start"]
  traces = glob.glob(os.path.join(tmp_path, "profile", "**", "*.xplane.pb"), recursive=True)
  assert len(traces) == 1 and os.path.getsize(traces[0]) > 0
