"""Keeps the model of the best monitor evaluation, as SimCSE keeps the checkpoint with the best STS-B dev.

A task that names a ``selection_metric`` (higher is better) gets its final evaluation on the model of
the evaluation where that metric peaked, not on the last step's. That model's params and model state
are written to ``WORKDIR/checkpoints_best/`` (verified like every checkpoint; the bank and optimiser
state are left out) whenever the metric improves. The best value and its step are read back from the
run's history, so a resumed run selects as a straight one would.
"""

from __future__ import annotations

from typing import Any

from absl import logging

from prosampler_jax import checkpoint


class BestModel:
  """The best-so-far model of one run; inactive (every method a no-op) when ``metric`` is None."""

  def __init__(self, directory: str, metric: str | None, fingerprint: dict):
    self.metric = metric
    self._fingerprint = fingerprint
    self._ckpt = checkpoint.Checkpointer(directory, max_to_keep=1) if metric else None
    self.fallback: str | None = None  # why the last model was evaluated instead of the best, if it was

  def best(self, history: list[dict]) -> tuple[float, int] | None:
    """(value, step) of the best evaluation in ``history`` (the earliest on ties), or None."""
    scored = [(h[self.metric], -h["step"]) for h in history if self.metric and self.metric in h]
    if not scored:
      return None
    value, negative_step = max(scored)
    return value, -negative_step

  def offer(self, step: int, metrics: dict[str, float], state: Any, history: list[dict]) -> bool:
    """Saves ``state``'s model if ``metrics`` beat every evaluation in ``history``; True if it did."""
    if self._ckpt is None:
      return False
    if self.metric not in metrics:
      raise ValueError(f"the task's selection_metric {self.metric!r} is not among its metrics "
                       f"{sorted(metrics)}.")
    best = self.best(history)
    if best is not None and metrics[self.metric] <= best[0]:
      return False
    for stale in self._ckpt.all_steps():  # a resumed run may repeat steps a lost future had saved
      if stale >= step:
        self._ckpt.delete(stale)
    self._ckpt.save(step, model_only(state), {}, {"metrics": metrics}, self._fingerprint)
    logging.info("step %d | new best %s %.4f: model saved.", step, self.metric, metrics[self.metric])
    return True

  def restore(self, state: Any, history: list[dict]) -> tuple[Any, int | None]:
    """``state`` with the best model's params and model state, and its step (None: keep ``state``)."""
    best = self.best(history)
    if self._ckpt is None or best is None:
      return state, None
    step = best[1]
    if step not in self._ckpt.all_steps():
      return self._fall_back(state, f"the best {self.metric} was at step {step} but "
                                    f"{self._ckpt.directory} holds steps {self._ckpt.all_steps()}")
    try:  # restore verifies the step's checksums first
      model, _, _ = self._ckpt.restore(step, checkpoint.abstract_like(model_only(state)))
    except checkpoint.CheckpointError as error:  # moved aside like a damaged training step: no rerun
      return self._fall_back(state, f"the best model (step {step}) in {self._ckpt.directory} is damaged "
                                    f"({error}) and was moved to {self._ckpt.quarantine(step)}")
    return state.replace(params=model["params"], model_state=model["model_state"]), step

  def _fall_back(self, state: Any, reason: str) -> tuple[Any, None]:
    self.fallback = reason + "; the last model was evaluated instead"
    logging.warning("Model selection: %s.", self.fallback)
    return state, None

  def close(self) -> None:
    if self._ckpt is not None:
      self._ckpt.close()


def model_only(state: Any) -> dict[str, Any]:
  return {"params": state.params, "model_state": state.model_state}
