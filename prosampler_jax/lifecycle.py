"""How a run holds its workdir and how it stops: the workdir lock, stop signals, exit statuses.

- :class:`WorkdirLock`: one run per workdir. Two runs writing the same ``checkpoints/`` would mix their
  states and one ``results.json`` would replace the other, so a second run refuses at once and names the
  holder. The lock is an ``flock`` on ``workdir/.lock``, which the kernel drops when its process dies (even
  by SIGKILL): a lock left by a killed run is taken over, never waited on.
- :class:`StopSignals`: SIGTERM (a cluster's preemption notice) and the first Ctrl-C ask the loop to
  stop *between* steps, so it can save the last finished step and join its threads; a second Ctrl-C
  interrupts at once. Without it, Python raises ``KeyboardInterrupt`` wherever the main thread happens
  to be — measured: inside a TensorFlow ``__del__``, which swallows it, and the run went on to the end.
- Exit statuses (``main.py``): 0 done, 1 an error, 130 interrupted (Ctrl-C), 143 preempted (SIGTERM,
  after saving): a scheduler can tell a finished run from one to requeue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

EXIT_INTERRUPTED = 128 + signal.SIGINT   # 130
EXIT_PREEMPTED = 128 + signal.SIGTERM    # 143

LOCK_FILE = ".lock"


class WorkdirBusyError(RuntimeError):
  """Another live process holds the workdir."""


class WorkdirLock:
  """Exclusive use of ``workdir`` by this process, as a context manager.

  On entry the lock file records who holds it (host, pid, start time, command line); a clean exit
  empties it. If the previous holder was killed, its record is still there: :attr:`taken_over_from`
  holds it and a warning names it.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self.taken_over_from: dict | None = None
    self._fd: int | None = None

  def __enter__(self) -> WorkdirLock:
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_record(fd)
      os.close(fd)
      raise WorkdirBusyError(
          f"workdir {os.path.dirname(self.path)} is in use by {_describe(holder)}; two runs on one "
          "workdir would mix their checkpoints and results. Wait for that run to finish, stop it, or "
          "choose another --workdir.") from None
    previous = _read_record(fd)
    if previous:
      self.taken_over_from = previous
      logging.warning("Taking over the lock of %s at %s: that process no longer holds it (it was "
                      "killed); resuming from its last checkpoint.", _describe(previous), self.path)
    record = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    os.fsync(fd)
    self._fd = fd
    return self

  def __exit__(self, *exc_info) -> None:
    if self._fd is not None:
      os.ftruncate(self._fd, 0)  # a clean exit leaves no holder to take over from
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None


@contextlib.contextmanager
def hold_workdir(workdir: str):
  """The workdir lock for a run of one or several processes: process 0 holds it, all agree on it."""
  lock, error = WorkdirLock(workdir), None
  if jax.process_index() == 0:
    try:
      lock.__enter__()
    except WorkdirBusyError as busy:
      error = busy
  if jax.process_count() > 1:
    refused = multihost_utils.process_allgather(np.int32(error is not None)).any()
    if refused and error is None:
      error = WorkdirBusyError(f"workdir {workdir} is in use by another run (see process 0's log).")
  if error is not None:
    raise error
  try:
    yield lock
  finally:
    lock.__exit__(None, None, None)


def _read_record(fd: int) -> dict:
  raw = os.pread(fd, 1 << 16, 0)
  try:
    return json.loads(raw) if raw.strip() else {}
  except ValueError:
    return {"record": raw[:200].decode(errors="replace")}


def _describe(holder: dict) -> str:
  if "pid" not in holder:
    return f"another process ({holder or 'no record'})"
  return (f"pid {holder['pid']} on host {holder.get('host', '?')} (started {holder.get('started', '?')}: "
          f"{holder.get('command', '?')})")


@dataclasses.dataclass
class StopRequest:
  """Why the loop should stop after the current step: ``"preempted"`` (SIGTERM) or ``"interrupted"``."""
  reason: str | None = None


class StopSignals:
  """Turns SIGTERM and the first SIGINT into a stop request the loop reads between steps.

  Installed only in the main thread of a single-process run. In a multi-process run JAX's preemption
  service already watches SIGTERM and :meth:`requested` asks it whether every process has reached the
  agreed step (``multihost_utils.reached_preemption_sync_point``), so all processes save the same step.
  """

  def __init__(self):
    self.request = StopRequest()
    self._previous: dict[int, object] = {}

  def __enter__(self) -> StopSignals:
    if threading.current_thread() is not threading.main_thread():
      logging.info("Not in the main thread: SIGTERM/Ctrl-C keep their default handlers.")
      return self
    if jax.process_count() == 1:  # several processes: one saving alone would deadlock the others
      self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_sigterm)
      self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_sigint)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    self.request.reason = "preempted"

  def _on_sigint(self, signum, frame) -> None:
    del signum, frame
    if self.request.reason == "interrupted":
      raise KeyboardInterrupt  # the second Ctrl-C: stop now
    self.request.reason = "interrupted"
    sys.stderr.write("\nCtrl-C: saving the last finished step, then stopping (Ctrl-C again to stop "
                     "now).\n")

  def requested(self, step: int) -> str | None:
    """The stop reason once the loop has finished ``step``, or None to go on."""
    if self.request.reason is None and jax.process_count() > 1:
      if multihost_utils.reached_preemption_sync_point(step):
        self.request.reason = "preempted"
    return self.request.reason

