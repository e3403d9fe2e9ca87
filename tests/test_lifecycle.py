"""Tests for the workdir lock (refusal naming the holder, take-over after a kill) and stop signals."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from prosampler_jax import lifecycle

HOLD_LOCK = """
import sys, time
from prosampler_jax import lifecycle
with lifecycle.WorkdirLock(sys.argv[1]):
  print("locked", flush=True)
  time.sleep(600)
"""


def _holder(workdir):
  process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(workdir)], stdout=subprocess.PIPE,
                             text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert process.stdout.readline().strip() == "locked"
  return process


def test_a_second_holder_is_refused_at_once_and_told_who_holds_it(tmp_path):
  holder = _holder(tmp_path)
  try:
    start = time.time()
    with pytest.raises(lifecycle.WorkdirBusyError, match=f"in use by pid {holder.pid} on host"):
      with lifecycle.WorkdirLock(str(tmp_path)):
        pass
    assert time.time() - start < 5  # refused, not waited on
  finally:
    holder.kill()
    holder.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, caplog):
  holder = _holder(tmp_path)
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  with caplog.at_level("WARNING"):
    with lifecycle.WorkdirLock(str(tmp_path)) as lock:
      assert lock.taken_over_from["pid"] == holder.pid
      assert json.loads(open(tmp_path / lifecycle.LOCK_FILE).read())["pid"] == os.getpid()
  assert f"pid {holder.pid}" in caplog.text
  assert open(tmp_path / lifecycle.LOCK_FILE).read() == ""  # a clean exit leaves nothing to take over
  with lifecycle.WorkdirLock(str(tmp_path)) as lock:
    assert lock.taken_over_from is None


def test_two_locks_in_one_process_conflict_too(tmp_path):
  with lifecycle.WorkdirLock(str(tmp_path)):
    with pytest.raises(lifecycle.WorkdirBusyError, match=f"pid {os.getpid()}"):
      lifecycle.WorkdirLock(str(tmp_path)).__enter__()


def test_sigterm_and_the_first_ctrl_c_become_stop_requests_the_second_ctrl_c_interrupts():
  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  with lifecycle.StopSignals() as signals:
    assert signals.requested(3) is None
    os.kill(os.getpid(), signal.SIGTERM)
    assert signals.requested(4) == "preempted"
  with lifecycle.StopSignals() as signals:
    os.kill(os.getpid(), signal.SIGINT)
    assert signals.requested(5) == "interrupted"
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(1)  # the handler runs at the next bytecode boundary
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
