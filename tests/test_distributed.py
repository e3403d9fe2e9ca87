"""Tests for the multi-process start: where the settings come from, and a real two-process run of the
loop (2 processes × 2 CPU devices, gloo collectives) against the same run in one process on 4 devices."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

import tiny_tasks
from prosampler_jax import distributed
from prosampler_jax import train


def test_single_process_when_nothing_is_set():
  assert distributed.resolve(environ={}) is None
  assert distributed.resolve(environ={"SLURM_NTASKS": "1"}) is None


def test_flags_win_over_environment_and_environment_over_cluster_detection():
  env = {"JAX_COORDINATOR_ADDRESS": "a:1", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3",
         "SLURM_NTASKS": "8"}
  assert distributed.resolve("b:2", 2, 1, environ=env) == distributed.Settings("b:2", 2, 1, "flags")
  assert distributed.resolve(environ=env) == distributed.Settings("a:1", 4, 3, "environment")
  assert distributed.resolve(environ={"SLURM_NTASKS": "8"}).source == "SLURM_NTASKS"
  assert distributed.resolve(environ={"OMPI_COMM_WORLD_SIZE": "2"}).coordinator_address is None


@pytest.mark.parametrize("args, env, match", [
    (("h:1", None, None), {}, "missing --num_processes, --process_id"),
    ((None, None, None), {"JAX_NUM_PROCESSES": "2"}, "missing JAX_COORDINATOR_ADDRESS, JAX_PROCESS_ID"),
    (("h:1", 2, 2), {}, "0 <= --process_id < --num_processes"),
    (("host", 2, 0), {}, "HOST:PORT"),
    ((None, None, None), {"SLURM_NTASKS": "many"}, "SLURM_NTASKS"),
])
def test_incomplete_or_bad_settings_name_what_is_wrong(args, env, match):
  with pytest.raises(ValueError, match=match):
    distributed.resolve(*args, environ=env)


_WORKER = """
import json, os, sys
sys.path[:0] = [{tests!r}, {root!r}]
import jax, tiny_tasks
from absl import logging
from prosampler_jax import distributed, train
logging.set_verbosity("info")
assert distributed.initialize()
overrides = {overrides!r}
if {seed_per_process!r}:  # a misconfigured launch: each process with its own seed
  overrides["seed"] = jax.process_index()
results = train.train_and_evaluate(tiny_tasks.tiny_loop_config(**overrides), {workdir!r},
                                   task=tiny_tasks.DigitVectorsTask())
keys = ("batch_sequence_sha1", "knn_accuracy", "steps", "stop_reason")
print("RESULTS " + json.dumps({{k: results.get(k) for k in keys}}), flush=True)
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start_two_processes(workdir, overrides, *, seed_per_process=False):
  """Starts the worker as 2 processes × 2 CPU devices."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  code = _WORKER.format(tests=os.path.join(root, "tests"), root=root, overrides=overrides,
                        workdir=str(workdir), seed_per_process=seed_per_process)
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
         "JAX_COORDINATOR_ADDRESS": f"localhost:{_free_port()}", "JAX_NUM_PROCESSES": "2"}
  return [subprocess.Popen([sys.executable, "-c", code], env={**env, "JAX_PROCESS_ID": str(i)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for i in range(2)]


def _run_two_processes(workdir, overrides, *, seed_per_process=False):
  """Runs the worker as 2 processes × 2 CPU devices; returns (return codes, outputs)."""
  workers = _start_two_processes(workdir, overrides, seed_per_process=seed_per_process)
  outputs = [w.communicate(timeout=300)[0] for w in workers]
  return [w.returncode for w in workers], outputs


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["uniform", "proximity"])
def test_two_processes_train_like_one(tmp_path, sampler):
  overrides = {"sampler.name": sampler, "num_epochs": 2}
  single = train.train_and_evaluate(tiny_tasks.tiny_loop_config(**overrides), str(tmp_path / "one"),
                                    task=tiny_tasks.DigitVectorsTask())
  codes, outputs = _run_two_processes(tmp_path / "two", overrides)
  for code, output in zip(codes, outputs):
    assert code == 0, output[-3000:]
  for output in outputs:
    (line,) = [l for l in output.splitlines() if l.startswith("RESULTS ")]
    result = json.loads(line[len("RESULTS "):])
    assert result["steps"] == single["steps"] == 44
    assert result["knn_accuracy"] == pytest.approx(single["knn_accuracy"], abs=0.02)
    if sampler == "uniform":  # bank-independent batches: the very same sequence
      assert result["batch_sequence_sha1"] == single["batch_sequence_sha1"]
  assert (tmp_path / "two" / "results.json").exists()


@pytest.mark.slow
def test_processes_that_sample_different_batches_stop_at_the_first_window(tmp_path):
  codes, outputs = _run_two_processes(tmp_path / "bad", {"sampler.name": "uniform"},
                                      seed_per_process=True)
  assert all(code != 0 for code in codes)
  assert all("processes sampled different batches for window (0, 0)" in out for out in outputs), outputs


def _results(output):
  (line,) = [l for l in output.splitlines() if l.startswith("RESULTS ")]
  return json.loads(line[len("RESULTS "):])


@pytest.mark.slow
def test_sigterm_to_one_process_stops_every_process_after_saving_the_same_step(tmp_path):
  """A preemption notice may reach one host only: JAX's preemption service agrees on the step."""
  workers = _start_two_processes(tmp_path / "run", {"num_epochs": 500, "sampler.name": "uniform"})
  seen = []
  for line in workers[0].stdout:
    seen.append(line)
    if "step 12/11000" in line:
      break
  else:
    raise AssertionError("".join(seen[-30:]))
  workers[1].send_signal(signal.SIGTERM)
  outputs = [w.communicate(timeout=300)[0] for w in workers]
  assert [w.returncode for w in workers] == [0, 0], outputs[1][-3000:]
  (first, second) = [_results(output) for output in outputs]
  assert first["stop_reason"] == second["stop_reason"] == "preempted"
  assert first["steps"] == second["steps"] > 12
  from prosampler_jax import checkpoint  # pylint: disable=g-import-not-at-top
  assert checkpoint.Checkpointer(str(tmp_path / "run" / "checkpoints")).all_steps() == [first["steps"]]
