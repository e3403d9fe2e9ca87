"""Catches a diverging run at the step where it happens, without waiting on the device every step.

A step is healthy when its loss, its gradient norm and the norm of the parameters it produced are all
finite. The parameter norm matters: with a learning rate of 1e30 the first step still has a finite loss
and gradient, but its parameters (±1e30) make every later loss NaN — a checkpoint of that step is not a
"last good" one. The norm is a float32 sum of squares, so it also overflows once weights pass ~1e19.

Each step's verdict is folded into one device scalar (the first unhealthy step, or -1) by a tiny jitted
update, so nothing syncs. The loop reads it where it syncs anyway — logging, saving — and the sampler
thread reads it before sampling a window from the bank, which an unhealthy step would have filled with
NaN rows: the run stops with this module's message, not with the sampler's complaint about its input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

HEALTH_KEYS = ("loss", "grad_norm", "param_norm")


class TrainingDiverged(FloatingPointError):
  """A step produced a non-finite loss, gradient norm or parameter norm."""

  def __init__(self, step: int, message: str | None = None):
    super().__init__(message or f"training diverged at step {step}")
    self.step = step


@jax.jit
def _no_bad_step(step: jax.Array) -> jax.Array:
  return step * 0 - 1  # computed from the step, so laid out like it: no value travels (full_like would)


@jax.jit
def _fold(first_bad: jax.Array, metrics: dict[str, jax.Array]) -> jax.Array:
  healthy = jnp.all(jnp.stack([jnp.isfinite(metrics[k]) for k in HEALTH_KEYS]))
  return jnp.where((first_bad < 0) & ~healthy, metrics["step"], first_bad)


class DivergenceMonitor:
  """Records each step's health metrics on device; :meth:`check` syncs and raises at the first bad step.

  ``advice`` is appended to the error (what to change); ``last_good`` says where the last good
  checkpoint is (called only when raising).
  """

  def __init__(self, *, advice: str, last_good):
    self._advice, self._last_good = advice, last_good
    # Device scalar: the first unhealthy step (-1: none); None until a step is recorded, then laid out
    # like the steps' metrics, so folding a step in moves nothing between devices.
    self.first_bad: jax.Array | None = None
    self._pending: list[tuple[int, dict[str, jax.Array]]] = []
    self._interval: list[dict[str, jax.Array]] = []  # every step since the last interval_means()

  def record(self, step: int, metrics: dict[str, jax.Array]) -> None:
    """``metrics`` of the step that brought the run to ``step``: device scalars, among them ``"step"``
    (that step number, as the train step returns it, so nothing moves between host and device here)."""
    if self.first_bad is None:
      self.first_bad = _no_bad_step(metrics["step"])
    self.first_bad = _fold(self.first_bad, {k: metrics[k] for k in (*HEALTH_KEYS, "step")})
    self._pending.append((step, metrics))
    self._interval.append({k: v for k, v in metrics.items() if k != "step"})

  def interval_means(self) -> dict[str, float]:
    """Each recorded metric's mean over the steps since the last call (the logging interval; checks in
    between do not shorten it), and forgets them. Syncs: call it where the loop logs, after ``check``."""
    if not self._interval:
      return {}
    means = {k: float(np.mean([np.asarray(m[k]) for m in self._interval])) for k in self._interval[0]}
    self._interval.clear()
    return means

  def interval_state(self) -> dict[str, dict]:
    """The open logging interval's recorded values, for a checkpoint (host floats with their dtype;
    syncs): restored by :meth:`restore_interval`, a resumed run's next log averages the same steps as an
    uninterrupted run's, not only those the new process ran."""
    state = {}
    for key in (self._interval[0] if self._interval else ()):
      values = [np.asarray(m[key]) for m in self._interval]
      state[key] = {"dtype": values[0].dtype.name, "values": [v.item() for v in values]}
    return state

  def restore_interval(self, state: dict[str, dict]) -> None:
    """Puts back the steps of ``interval_state()`` ahead of any recorded since (an older checkpoint
    without them: ``{}``, the interval starts empty)."""
    count = len(next(iter(state.values()))["values"]) if state else 0
    self._interval[:0] = [{k: np.asarray(v["values"][i], v["dtype"]) for k, v in state.items()}
                          for i in range(count)]

  def check(self) -> float | None:
    """Waits for the recorded steps; raises TrainingDiverged at the first unhealthy one, else returns
    the last recorded loss (None if nothing was recorded) and forgets the recorded steps."""
    if not self._pending:
      return None
    first_bad = int(self.first_bad)
    if first_bad >= 0:
      values = dict(self._pending)[first_bad]
      shown = ", ".join(f"{k} {float(np.asarray(values[k])):.4g}" for k in HEALTH_KEYS)
      good = self._last_good()
      where = ("no checkpoint was written before it" if good is None else
               f"the last good checkpoint is step {good[0]} under {good[1]}")
      raise TrainingDiverged(first_bad, (
          f"Training diverged at step {first_bad}: {shown} (loss, gradient norm and parameter norm must "
          f"be finite). Nothing from that step on was saved; {where}. {self._advice}"))
    loss = float(np.asarray(self._pending[-1][1]["loss"]))
    self._pending.clear()
    return loss
