"""Tests for the multi-process start: where the settings come from, and a real two-process run of the
loop (2 processes × 2 CPU devices, gloo collectives) against the same run in one process on 4 devices."""

import json
import os
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
import tiny_tasks
from prosampler_jax import distributed, train
assert distributed.initialize()
results = train.train_and_evaluate(tiny_tasks.tiny_loop_config(**{overrides!r}), {workdir!r},
                                   task=tiny_tasks.DigitVectorsTask())
print("RESULTS " + json.dumps({{k: results[k] for k in ("batch_sequence_sha1", "knn_accuracy", "steps")}}))
"""


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["uniform", "proximity"])
def test_two_processes_train_like_one(tmp_path, sampler):
  overrides = {"sampler.name": sampler, "num_epochs": 2}
  single = train.train_and_evaluate(tiny_tasks.tiny_loop_config(**overrides), str(tmp_path / "one"),
                                    task=tiny_tasks.DigitVectorsTask())
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  code = _WORKER.format(tests=os.path.join(root, "tests"), root=root, overrides=overrides,
                        workdir=str(tmp_path / "two"))
  port = _free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
         "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2"}
  workers = [subprocess.Popen([sys.executable, "-c", code], env={**env, "JAX_PROCESS_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
  outputs = [w.communicate(timeout=300)[0] for w in workers]
  for worker, output in zip(workers, outputs):
    assert worker.returncode == 0, output[-3000:]
  for output in outputs:  # both processes finish with the same results (gathered evaluation)
    (line,) = [l for l in output.splitlines() if l.startswith("RESULTS ")]
    result = json.loads(line[len("RESULTS "):])
    assert result["steps"] == single["steps"] == 44
    assert result["knn_accuracy"] == pytest.approx(single["knn_accuracy"], abs=0.02)
    if sampler == "uniform":  # bank-independent batches: the very same sequence
      assert result["batch_sequence_sha1"] == single["batch_sequence_sha1"]
  assert (tmp_path / "two" / "results.json").exists()
