"""Tests for run_log: a run's INFO lines go to its file, warnings also to the terminal, and the previous
destinations come back afterwards (absl logging, with Python's logging propagating to it)."""

import logging as std_logging

from absl import logging

from prosampler_jax import run_log


def test_info_goes_to_the_run_file_and_warnings_also_to_the_terminal(tmp_path, capfd):
  handler = logging.get_absl_handler()
  before = (handler.level, std_logging.getLogger().level)
  with run_log.to_file(str(tmp_path / "run")) as path:
    logging.info("checkpoint manager internals")
    std_logging.getLogger("jax._src.xla_bridge").info("Unable to initialize backend 'tpu'")
    logging.warning("the learning rate looks high")
  assert path == str(tmp_path / "run" / "train.log")
  written = open(path, encoding="utf-8").read()
  assert "checkpoint manager internals" in written and "backend 'tpu'" in written
  assert "the learning rate looks high" in written
  terminal = capfd.readouterr().err
  assert "the learning rate looks high" in terminal
  assert "checkpoint manager internals" not in terminal and "backend 'tpu'" not in terminal
  assert (handler.level, std_logging.getLogger().level) == before
  assert not [h for h in std_logging.getLogger().handlers if getattr(h, "baseFilename", "") == path]
  with run_log.to_file(str(tmp_path / "run"), process_index=2) as other:
    logging.info("second process")
  assert other.endswith("train.2.log") and "second process" not in open(path).read()
  with run_log.to_file(str(tmp_path / "run")):
    logging.info("resumed")
  assert open(path).read().startswith(written) and "resumed" in open(path).read()  # appended


def test_what_native_code_prints_goes_to_the_file_and_python_keeps_the_terminal(tmp_path, capfd):
  """C/C++ libraries write to file descriptor 2 directly (TensorFlow's start-up lines): os.write on fd 2
  stands in for them. Nested blocks (a sweep's runs) send it to the innermost file."""
  import os  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  outer, inner = tmp_path / "sweep.log", tmp_path / "run" / "train.log"
  with run_log.native_output_to(str(outer)):
    os.write(2, b"oneDNN custom operations are on\n")
    print("sweep progress", file=sys.stderr, flush=True)
    with run_log.native_output_to(str(inner)):
      os.write(2, b"All log messages before absl::InitializeLog()\n")
      print("run progress", file=sys.stderr, flush=True)
      logging.warning("a warning of ours")
    os.write(2, b"between runs\n")
  os.write(2, b"after\n")
  terminal = capfd.readouterr().err
  assert outer.read_text() == "oneDNN custom operations are on\nbetween runs\n"
  assert inner.read_text() == "All log messages before absl::InitializeLog()\n"
  for line in ("sweep progress", "run progress", "a warning of ours", "after"):
    assert line in terminal
  assert "oneDNN" not in terminal and "InitializeLog" not in terminal and "between runs" not in terminal


def test_final_table_lists_the_metrics_and_the_batch_figures_without_bookkeeping():
  results = {"steps": 22, "knn_accuracy": 0.91111, "wall_seconds": 13.9, "train_steps_per_second": 11.5,
             "task": "simclr", "batch_stats": {"mean_neg_cos": 0.32, "batch_size": 128, "coverage": 0.58}}
  assert run_log.final_table(results) == ("| metric | value |\n|---|---|\n| knn_accuracy | 0.9111 |\n"
                                          "| mean_neg_cos | 0.3200 |\n| coverage | 0.5800 |")


def _terminal_lines(text: str) -> list[str]:
  return [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]


def test_the_default_jobs_entry_point_prints_progress_and_the_table_and_nothing_else(tmp_path):
  """What ./run.sh runs (experiments.compare_samplers), shortened; then one prosampler_jax.main run."""
  import os  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, "PYTHONPATH": repo}
  short = ["--config.num_epochs=1", "--config.eval.linear_epochs=1"]
  sweep = subprocess.run([sys.executable, "-m", "experiments.compare_samplers", f"--workdir={tmp_path / 'd'}",
                          "--samplers=uniform", "--seeds=0", *short], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=600)
  assert sweep.returncode == 0, sweep.stderr[-3000:]
  noise = [l for l in _terminal_lines(sweep.stderr) if not re.match(r"sweep d: +\d+%\|", l)]
  assert noise == [], noise
  out = _terminal_lines(sweep.stdout)
  assert out[0].startswith("| sampler | seeds | knn_accuracy") and out[-1].startswith("runs: ")
  assert all(l.startswith("|") for l in out[:-1]) and len(out) == 4
  run_file = (tmp_path / "d" / "sampler=uniform,seed=0" / "train.log").read_text()
  assert "oneDNN" in run_file  # TensorFlow's C++ start-up lines: in the run's file
  # tqdm refreshes the sweep's bar every 10 s from a thread, during the run too: on the terminal only.
  assert "sweep d:" not in run_file
  single = subprocess.run([sys.executable, "-m", "prosampler_jax.main",
                           "--config=experiments/configs/simclr_digits.py", f"--workdir={tmp_path / 'one'}",
                           *short], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  assert _terminal_lines(single.stderr) == []
  out = _terminal_lines(single.stdout)
  assert out[0].startswith("Logging to ") and out[1:3] == ["| metric | value |", "|---|---|"]
  assert out[3].startswith("| knn_accuracy | 0.") and out[4].startswith("| linear_accuracy | 0.")
  log = (tmp_path / "one" / "train.log").read_text()
  assert "Final metrics:" in log and out[3] in log
