"""Verified, resumable checkpoints with orbax: the device train state plus the host-side loop state.

Four items per step: ``state`` (params, optimizer state, bank, key, step — restored onto the given
shardings), ``host`` (NumPy arrays: the sampler's state and the current/next windows' index arrays),
``meta`` (JSON: counters, history and the running batch-sequence digest) and ``config`` (JSON: the
resolved config, the run's fingerprint). orbax writes each step to a temporary directory and renames it
when complete, so a killed run never leaves a half-written step.

Completeness is not integrity: a disk or a copy can still damage a finished step (measured: 4 KB
overwritten in a params file restored silently and the run finished at chance accuracy). So after orbax
has finished, process 0 writes ``checksums.json`` into the step: the size and SHA-256 of every file of
every item. :meth:`Checkpointer.restore_latest` verifies the newest step first; a step that is damaged,
incomplete or unreadable is reported (step, path, reason), moved to ``<directory>_broken/`` so nothing is
lost and orbax never sees it again, and the next older step is tried.

Old steps are deleted here, not by orbax, and only after the new step's checksums are on disk: at every
instant of a save, whatever ``max_to_keep`` is, the last verified step is still there (orbax's own
``max_to_keep`` deletes the old step as it commits the new one, so a kill before the checksums left no
trusted step with ``max_to_keep=1``).

Asynchronous saves (``asynchronous=True``): ``save`` returns once orbax holds a host copy of the state;
orbax writes and commits in the background, and a worker thread of this class then hashes the files and
writes ``checksums.json``, all off the training step's path. One save is in flight at a time: the next
``save``, :meth:`Checkpointer.wait` or :meth:`Checkpointer.close` waits for it, re-raises its failure, and
only then deletes old steps (on the calling thread, never beside orbax's own). A run killed mid-flight
leaves a step without checksums, which resume treats as broken, so the previous verified step is used.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import hashlib
import json
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

ITEMS = ("state", "host", "meta", "config")
CHECKSUM_FILE = "checksums.json"
_NO_HOST = "_no_host_arrays"  # stands in for an empty host item, which orbax cannot save
_CHUNK = 1 << 22


class CheckpointError(RuntimeError):
  """No intact checkpoint could be restored, or one step is damaged."""


class CheckpointSaveError(CheckpointError):
  """A step could not be written (full disk, lost mount, …); the message names the step, the path, the
  cause and the last good step to resume from."""


class Checkpointer:
  """Saves, verifies and restores training checkpoints under ``directory``, keeping ``max_to_keep``."""

  def __init__(self, directory: str, *, max_to_keep: int = 3, asynchronous: bool = False):
    self.directory = os.path.abspath(directory)
    self.max_to_keep = max_to_keep
    self._manager = ocp.CheckpointManager(  # max_to_keep=None: this class deletes, after verification
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=None, create=True,
                                             enable_async_checkpointing=asynchronous),
        item_names=ITEMS)
    # The one save in flight: (step, the worker's future that commits and checksums it).
    self._finisher = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
                      if asynchronous else None)
    self._in_flight: tuple[int, concurrent.futures.Future] | None = None

  def latest_step(self) -> int | None:
    """The newest complete step (not yet verified), or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def step_path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any, host: dict[str, np.ndarray], meta: dict,
           config: dict | None = None) -> None:
    """Writes one checkpoint and its checksums (blocking; atomic by orbax's temporary-directory rename).

    Empty host arrays are left out (orbax cannot store zero-size arrays or an empty item); restore
    returns fewer keys.
    """
    self.wait()  # one save in flight: the previous one committed, verified and pruned first
    # Copies: orbax serialises JSON and host arrays in its background thread, while the caller goes on
    # mutating its history and arrays (measured: 1 save in 6 stored a later history without them).
    host = {k: np.array(v) for k, v in host.items() if np.size(v)} or {_NO_HOST: np.zeros(1, np.int8)}
    meta, config = copy.deepcopy(meta), copy.deepcopy(config or {})
    with self._failures_named(step):
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          host=ocp.args.StandardSave(host),
          meta=ocp.args.JsonSave(meta),
          config=ocp.args.JsonSave(config)))
    if self._finisher is None:
      self._finish(step)
      self._after_verified(step)
    else:
      self._in_flight = (step, self._finisher.submit(self._finish, step))

  def wait(self) -> None:
    """Waits for the save in flight (asynchronous mode), raises its CheckpointSaveError, and deletes the
    steps beyond ``max_to_keep`` once it is verified. Nothing to do when no save is in flight."""
    if self._in_flight is None:
      return
    (step, future), self._in_flight = self._in_flight, None
    future.result()
    self._after_verified(step)

  def _finish(self, step: int) -> None:
    """Waits for orbax's commit of ``step`` and writes its checksums (process 0)."""
    with self._failures_named(step):
      self._manager.wait_until_finished()
      if jax.process_index() == 0:
        path = self.step_path(step)
        _write_json_atomically(os.path.join(path, CHECKSUM_FILE), _file_checksums(path))

  def _after_verified(self, step: int) -> None:
    if jax.process_count() > 1:  # no process deletes a step before process 0 has verified the new one
      multihost_utils.sync_global_devices(f"checkpoint {step} verified")
    self._delete_beyond_max_to_keep()

  @contextlib.contextmanager
  def _failures_named(self, step: int):
    try:
      yield
    except Exception as error:  # orbax and TensorStore raise many kinds; one message says what it means
      raise CheckpointSaveError(
          f"step {step} could not be written to {self.step_path(step)}: {type(error).__name__}: {error}; "
          f"{self._last_good(before=step)}") from error

  def _last_good(self, *, before: int) -> str:
    """"the last good step is M (PATH)": the newest verified step before ``before``, or that none is."""
    with contextlib.suppress(Exception):  # the directory itself may be what failed
      self._manager.reload()
      for step in reversed([s for s in self.all_steps() if s < before]):
        if self.verify(step) is None:
          return f"the last good step is {step} ({self.step_path(step)}): a rerun resumes from it"
    return "no earlier step was saved: a rerun starts from step 0"

  def _delete_beyond_max_to_keep(self) -> None:
    """Deletes the oldest steps beyond ``max_to_keep``; called once the newest step is verified."""
    for old in self.all_steps()[:-self.max_to_keep]:
      self._manager.delete(old)

  def delete(self, step: int) -> None:
    """Removes step ``step``."""
    self._manager.delete(step)

  def verify(self, step: int) -> str | None:
    """Why step ``step`` cannot be trusted (missing checksums, a missing, resized or changed file), or
    None when every file matches the checksums written with it."""
    path = self.step_path(step)
    try:
      with open(os.path.join(path, CHECKSUM_FILE)) as f:
        expected = json.load(f)
    except FileNotFoundError:
      return (f"no {CHECKSUM_FILE}: the step was not finished (killed while writing) or was written by "
              "a version without checksums")
    except ValueError as error:
      return f"{CHECKSUM_FILE} is unreadable ({error})"
    actual = _file_checksums(path)
    for name in sorted(expected):
      if name not in actual:
        return f"{name} is missing"
      if actual[name]["size"] != expected[name]["size"]:
        return f"{name} has {actual[name]['size']} bytes, {expected[name]['size']} were written"
      if actual[name]["sha256"] != expected[name]["sha256"]:
        return f"{name} does not match its SHA-256 (the file was changed or damaged)"
    missing_items = [item for item in ITEMS if not any(n.startswith(item + "/") for n in expected)]
    if missing_items:
      return f"item(s) {missing_items} were never written"
    return None

  def read_config(self, step: int) -> dict:
    """The config saved with step ``step`` (call :meth:`verify` first)."""
    return dict(self._restore(step, config=ocp.args.JsonRestore())["config"])

  def restore(self, step: int, abstract_state: Any = None) -> tuple[Any, dict[str, np.ndarray], dict]:
    """Verifies and loads step ``step``; ``abstract_state`` gives the shapes, dtypes and shardings of
    ``state``. Without it the state comes back as saved (plain arrays), e.g. for inspection.

    Raises CheckpointError naming the step and path if the step is damaged or unreadable.
    """
    problem = self.verify(step)
    if problem is not None:
      raise CheckpointError(f"checkpoint step {step} at {self.step_path(step)} is broken: {problem}.")
    restored = self._restore(step, state=ocp.args.StandardRestore(abstract_state),
                             host=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore())
    host = {k: np.asarray(v) for k, v in restored["host"].items() if k != _NO_HOST}
    return restored["state"], host, dict(restored["meta"])

  def newest_intact_step(self) -> int | None:
    """The newest step that passes :meth:`verify`. Each newer, broken step is reported and moved to
    ``<directory>_broken/``. Raises CheckpointError if steps exist but none is intact."""
    steps = self.all_steps()
    reports = []
    for step in reversed(steps):
      problem = self.verify(step)
      if problem is None:
        if reports:
          logging.warning("Resuming from step %d, the newest intact checkpoint.", step)
        return step
      reports.append(f"step {step} at {self.step_path(step)}: {problem}")
      logging.warning("Checkpoint step %d at %s is broken (%s); moved to %s.", step,
                      self.step_path(step), problem, self.quarantine(step))
    if reports:
      raise CheckpointError(
          f"None of the {len(steps)} checkpoint(s) in {self.directory} is intact, so there is nothing "
          "to resume from:\n  " + "\n  ".join(reports) + f"\nThey were moved to {self.directory}_broken/ for inspection; "
          "running again with this --workdir starts from step 0.")
    return None

  def _restore(self, step: int, **items) -> dict:
    try:
      return self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as error:  # orbax/TensorStore errors name neither the step nor what to do
      raise CheckpointError(f"checkpoint step {step} at {self.step_path(step)} could not be read: "
                            f"{type(error).__name__}: {error}") from error

  def quarantine(self, step: int) -> str:
    """Moves step ``step`` out of orbax's directory (process 0), keeping it for inspection."""
    target = os.path.join(f"{self.directory}_broken", str(step))
    if jax.process_index() == 0:
      suffix = 0
      while os.path.exists(target if not suffix else f"{target}.{suffix}"):
        suffix += 1
      target = target if not suffix else f"{target}.{suffix}"
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.move(self.step_path(step), target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"checkpoint {step} moved aside")
    self._manager.reload()
    return target

  def close(self) -> None:
    """Finishes the save in flight (raising its failure), then releases orbax's resources."""
    try:
      self.wait()
    finally:
      if self._finisher is not None:
        self._finisher.shutdown(wait=True)
      self._manager.close()


def abstract_like(tree: Any) -> Any:
  """Shape/dtype/sharding stand-ins for restoring a checkpoint onto ``tree``'s layout."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _file_checksums(root: str) -> dict[str, dict]:
  """``{relative path: {"size", "sha256"}}`` of every file under ``root`` but the checksum file."""
  sums = {}
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      relative = os.path.relpath(path, root)
      if relative == CHECKSUM_FILE:
        continue
      digest = hashlib.sha256()
      with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
          digest.update(chunk)
      sums[relative] = {"size": os.path.getsize(path), "sha256": digest.hexdigest()}
  return sums


def _write_json_atomically(path: str, value: Any) -> None:
  with open(path + ".tmp", "w") as f:
    json.dump(value, f, indent=0, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(path + ".tmp", path)
