"""Atomic, resumable checkpoints with orbax: the device train state plus the host-side loop state.

Three items per step: ``state`` (params, optimizer state, bank, key, step — restored onto the given
shardings), ``host`` (NumPy arrays: the sampler's state and the current/next windows' index arrays) and
``meta`` (JSON: counters and the running batch-sequence digest). orbax writes each step to a temporary
directory and renames it when complete, so a killed run never leaves a half-written checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores training checkpoints under ``directory``, keeping the last ``max_to_keep``."""

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=False),
        item_names=("state", "host", "meta"))

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step, or None."""
    return self._manager.latest_step()

  def save(self, step: int, state: Any, host: dict[str, np.ndarray], meta: dict) -> None:
    """Writes one checkpoint (blocking; atomic by orbax's temporary-directory rename).

    Empty host arrays are left out (orbax cannot store zero-size arrays); restore returns fewer keys.
    """
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        host=ocp.args.StandardSave({k: np.asarray(v) for k, v in host.items() if np.size(v)}),
        meta=ocp.args.JsonSave(meta)))
    self._manager.wait_until_finished()

  def restore(self, step: int, abstract_state: Any = None) -> tuple[Any, dict[str, np.ndarray], dict]:
    """Loads step ``step``; ``abstract_state`` gives the shapes, dtypes and shardings of ``state``.

    Without ``abstract_state`` the state comes back as saved (plain arrays), e.g. for inspection.
    """
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        host=ocp.args.StandardRestore(),
        meta=ocp.args.JsonRestore()))
    host = {k: np.asarray(v) for k, v in restored["host"].items()}
    return restored["state"], host, dict(restored["meta"])

  def close(self) -> None:
    self._manager.close()


def abstract_like(tree: Any) -> Any:
  """Shape/dtype/sharding stand-ins for restoring a checkpoint onto ``tree``'s layout."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
