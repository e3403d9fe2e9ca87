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
