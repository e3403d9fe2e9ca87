"""The reliability audit's table, replayed (issue: runs that cannot lose or mix work).

Each test names its row: B1 damaged checkpoint, B2 changed config on resume, B3 two runs on one
workdir, B4 an error or Ctrl-C during warm-up, U1 a diverging learning rate, U3 an empty dataset,
U6 a changed model on resume, U8 the "last good" checkpoint of a diverging run, and SIGTERM. B5, B6, U2,
U4, U5, U7 and U9 are tested beside their units (test_normalize, test_run_config, test_checkpoint,
test_losses).
"""

import contextlib
import glob
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tiny_tasks
from prosampler_jax import checkpoint
from prosampler_jax import divergence
from prosampler_jax import lifecycle
from prosampler_jax import run_log
from prosampler_jax import train
from test_lifecycle import _holder

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def vector_task():
  return tiny_tasks.DigitVectorsTask(dropout=0.2)


def config(**overrides):
  return tiny_tasks.tiny_loop_config(**{"checkpoint_steps": 8, "log_every_steps": 4, **overrides})


@pytest.fixture(scope="module")
def straight(tmp_path_factory, vector_task):
  return train.train_and_evaluate(config(), str(tmp_path_factory.mktemp("straight")), task=vector_task)


def test_b1_a_damaged_newest_checkpoint_is_skipped_and_the_run_still_matches(tmp_path, vector_task,
                                                                               straight, caplog):
  workdir = str(tmp_path)
  train.train_and_evaluate(config(stop_after_steps=30), workdir, task=vector_task)
  steps_dir = os.path.join(workdir, "checkpoints")
  assert sorted(map(int, os.listdir(steps_dir))) == [16, 24, 30]
  params = max((f for f in glob.glob(f"{steps_dir}/30/state/**/*", recursive=True) if os.path.isfile(f)),
               key=os.path.getsize)
  with open(params, "r+b") as f:  # 4 KB overwritten, same size: restored silently before
    f.seek(0)
    f.write(os.urandom(min(4096, os.path.getsize(params))))
  with caplog.at_level("WARNING"):
    resumed = train.train_and_evaluate(config(), workdir, task=vector_task)
  assert f"Checkpoint step 30 at {steps_dir}/30 is broken" in caplog.text
  assert os.path.isdir(os.path.join(workdir, "checkpoints_broken", "30"))
  assert resumed["batch_sequence_sha1"] == straight["batch_sequence_sha1"]  # resumed at 24, same run
  assert resumed["knn_accuracy"] == pytest.approx(straight["knn_accuracy"], abs=1e-6)


def test_b2_u6_resuming_with_a_changed_config_is_refused_key_by_key(tmp_path, vector_task):
  workdir = str(tmp_path)
  train.train_and_evaluate(config(stop_after_steps=10), workdir, task=vector_task)
  changed = {"loss.name": "nt_xent", "optimizer.learning_rate": 1e-2, "sampler.refresh_steps": 4,
             "model.width": 64}
  with pytest.raises(ValueError, match="Refusing to resume") as error:
    train.train_and_evaluate(config(**changed), workdir, task=vector_task)
  for line in ("loss.name: 'info_nce' -> 'nt_xent'", "optimizer.learning_rate: 0.003 -> 0.01",
               "sampler.refresh_steps: 8 -> 4", "model.width: 32 -> 64"):
    assert line in str(error.value)
  # Keys that may change (here: cadence and length) resume.
  extended = train.train_and_evaluate(config(num_epochs=3, log_every_steps=5, checkpoint_steps=9),
                                      workdir, task=vector_task)
  assert extended["steps"] == 66 and extended["config"]["num_epochs"] == 3


def test_b3_a_second_run_on_a_workdir_in_use_refuses_at_once_naming_the_holder(tmp_path, vector_task):
  holder = _holder(tmp_path)  # another process, e.g. a run launched twice
  try:
    with pytest.raises(lifecycle.WorkdirBusyError, match=f"in use by pid {holder.pid}"):
      train.train_and_evaluate(config(), str(tmp_path), task=vector_task)
  finally:
    holder.kill()
    holder.wait()
  assert not os.path.exists(tmp_path / "checkpoints")  # nothing was written


def test_u1_a_diverging_rate_is_reported_at_its_step_not_by_the_sampler(tmp_path, vector_task):
  # No log or checkpoint sync before the first window sampled from the bank (step 21).
  run = config(**{"optimizer.learning_rate": 1e30, "log_every_steps": 50, "checkpoint_steps": 1000,
                  "eval_every_epochs": 0})
  with pytest.raises(divergence.TrainingDiverged, match=r"diverged at step 1: .*param_norm inf") as error:
    train.train_and_evaluate(run, str(tmp_path), task=vector_task)
  assert "config.optimizer.learning_rate (now 1e+30)" in str(error.value)


def test_u1_a_diverged_model_is_never_evaluated(tmp_path):
  class NoDivergedEvaluation(tiny_tasks.DigitVectorsTask):
    def evaluate(self, encode, *, final):
      raise AssertionError("a diverged model was evaluated")

  run = config(**{"optimizer.learning_rate": 1e30, "log_every_steps": 50, "checkpoint_steps": 1000})
  with pytest.raises(divergence.TrainingDiverged, match="diverged at step 1"):  # at the epoch's end
    train.train_and_evaluate(run, str(tmp_path), task=NoDivergedEvaluation())


def test_u8_no_checkpoint_holds_the_parameters_of_a_diverged_step(tmp_path, vector_task):
  # A checkpoint every step and no log sync before it: the save itself must check the step.
  run = config(**{"optimizer.learning_rate": 1e30, "checkpoint_steps": 1, "log_every_steps": 50})
  with pytest.raises(divergence.TrainingDiverged, match="diverged at step 1:.*no checkpoint was written"):
    train.train_and_evaluate(run, str(tmp_path), task=vector_task)
  assert checkpoint.Checkpointer(str(tmp_path / "checkpoints")).all_steps() == []  # not step 1's 1e30s
  # B4: the error left no sampler thread behind (the precompile thread was a daemon, never joined).
  assert not [t.name for t in threading.enumerate() if t.name.startswith("sampler")]


def test_u3_an_empty_dataset_says_so(tmp_path):
  empty = tiny_tasks.DigitVectorsTask()
  empty.num_examples = 0
  with pytest.raises(ValueError, match="The pre-training data is empty: 0 item"):
    train.train_and_evaluate(config(), str(tmp_path), task=empty)


# -- the command line: exit statuses, joined threads, saves on SIGTERM and Ctrl-C ----------------------

def _launch(workdir, *overrides):
  """SimCLR on digits, tiny and long (runs until signalled), logging every step."""
  args = [sys.executable, "-m", "prosampler_jax.main", "--config=experiments/configs/simclr_digits.py",
          f"--workdir={workdir}", "--config.num_epochs=1000", "--config.batch_size=256",
          "--config.model.width=8", "--config.model.projection_dim=16", "--config.sampler.num_neighbors=10",
          "--config.sampler.num_candidates=50", "--config.log_every_steps=1",
          "--config.checkpoint_steps=1000", "--config.eval_every_epochs=0", *overrides]
  os.makedirs(workdir, exist_ok=True)
  terminal = open(os.path.join(workdir, "terminal.txt"), "w")  # a file, never a pipe that can fill up
  return subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=terminal, text=True)


def _terminal(process, workdir, timeout=120):
  """The run's exit status and what it printed to the terminal, once it has ended."""
  status = process.wait(timeout=timeout)
  with open(os.path.join(workdir, "terminal.txt"), encoding="utf-8") as f:
    return status, f.read()


def _wait_for(workdir, text, timeout=300):
  """Waits until the run's log file (INFO lines go there, not to the terminal) holds ``text``."""
  path = os.path.join(workdir, run_log.LOG_FILE)
  deadline = time.time() + timeout
  read = lambda: open(path, encoding="utf-8").read() if os.path.exists(path) else ""
  while time.time() < deadline:
    with contextlib.suppress(FileNotFoundError):
      if text in read():
        return
    time.sleep(0.2)
  tail = read()[-3000:] or "(no log file)"
  raise AssertionError(f"{text!r} never appeared in {path}:\n{tail}")


def test_b4_exit_statuses_sigterm_and_ctrl_c_save_and_an_error_in_warm_up_joins_its_threads(tmp_path):
  """Three runs at once: SIGTERM → 143, Ctrl-C → 130 (each after saving its last finished step), and an
  error during the warm-up epoch, while the sampler's precompile thread runs → 1 (was: abort, 134)."""
  failing = _launch(tmp_path / "error", "--config.optimizer.learning_rate=1e30",
                    "--config.sampler.warmup_epochs=5")
  runs = {signal.SIGTERM: _launch(tmp_path / "term"), signal.SIGINT: _launch(tmp_path / "int")}
  for signum, process in runs.items():
    _wait_for(tmp_path / {signal.SIGTERM: "term", signal.SIGINT: "int"}[signum], "step 8/5000")
    process.send_signal(signum)
  for signum, process in runs.items():
    status, log = _terminal(process, tmp_path / {signal.SIGTERM: "term", signal.SIGINT: "int"}[signum])
    assert status == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum], log[-3000:]
    assert "FATAL" not in log
    ckpt = checkpoint.Checkpointer(str(tmp_path / {signal.SIGTERM: "term", signal.SIGINT: "int"}[signum]
                                       / "checkpoints"))
    (saved,) = ckpt.all_steps()
    assert saved >= 8 and f"Stopping after step {saved}" in log and ckpt.verify(saved) is None
  status, log = _terminal(failing, tmp_path / "error")
  assert status == 1, log[-3000:]
  assert "TrainingDiverged: Training diverged at step 1" in log and "FATAL" not in log


def test_a_failed_save_is_one_line_on_the_terminal_and_the_traceback_in_the_log(tmp_path):
  """A full disk at the first checkpoint: rc 1, one 'error:' line naming the step, the path, the cause and
  that a rerun starts from step 0; no traceback on the terminal (it is in train.log)."""
  code = textwrap.dedent("""
      import sys
      from absl import app
      from prosampler_jax import checkpoint, main

      def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

      checkpoint._write_json_atomically = full_disk
      app.run(main.main)
      """)
  args = [sys.executable, "-c", code, "--config=experiments/configs/simclr_digits.py",
          f"--workdir={tmp_path}", "--config.num_epochs=1", "--config.batch_size=256", "--config.model.width=8",
          "--config.model.projection_dim=16", "--config.checkpoint_steps=2", "--config.eval_every_epochs=0"]
  result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors == [f"error: step 2 could not be written to {tmp_path}/checkpoints/2: OSError: [Errno 28] No "
                    "space left on device; no earlier step was saved: a rerun starts from step 0"], result.stderr
  assert "Traceback" not in result.stderr
  with open(tmp_path / run_log.LOG_FILE, encoding="utf-8") as f:
    assert "Traceback" in f.read()


def test_a_command_line_override_the_sampler_does_not_read_is_refused_before_anything_runs(tmp_path):
  args = [sys.executable, "-m", "prosampler_jax.main", "--config=experiments/configs/simclr_digits.py",
          f"--workdir={tmp_path / 'run'}", "--config.sampler.name=tail", "--config.sampler.num_candidates=5"]
  result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
      "error: config.sampler.num_candidates would change nothing: sampler 'tail' does not read it; allowed "
      "for 'tail': config.sampler.bank_view, config.sampler.graph, config.sampler.lookahead_steps, "
      "config.sampler.max_neighbors, config.sampler.quantile, config.sampler.refresh_steps, "
      "config.sampler.warmup_epochs."]
  assert not os.path.exists(tmp_path / "run" / "checkpoints")
