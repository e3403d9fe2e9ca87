"""Samplers that compose a whole epoch's batches at once, at the epoch's first window.

Tail Batch Sampling orders the items, the partition and cluster samplers group them; each makes all of an
epoch's batches from one bank, as their papers do (encode, then train an epoch). The trainer asks for
every refresh window; this base class answers later windows from the epoch's batches instead of
recomputing them, keeps those batches in the sampler state for exact resume, and says which window's bank
they came from (:meth:`EpochOrderSampler.window_info`).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from prosampler_jax import _checks
from prosampler_jax.samplers import base


class EpochOrderSampler(base.BatchSampler):
  """Window w of an epoch gets rows ``[w·t, (w + 1)·t)`` of batches made once, at the first window.

  t = ``num_batches`` (the trainer's refresh window). The batches are made by :meth:`_cut` from the
  items the epoch has not covered (all N at window 0), from the bank given to that window, and their
  order is shuffled by (seed, epoch, window). Every index appears at most once per epoch. A window asked
  for in an epoch with no batches yet (a window > 0 called first, or a state without them) makes them
  from the items not covered yet. Rows asked for beyond the batches are further shuffles of them in a
  whole-epoch call, and uniform batches of the uncovered items in a later window.
  """

  def __init__(self, num_examples: int, batch_size: int, *, seed: int = 0):
    super().__init__(num_examples, batch_size, seed=seed)
    self._clear_order()

  @abc.abstractmethod
  def _cut(self, pool: np.ndarray, embeddings, rng: np.random.Generator) -> np.ndarray:
    """int32 ``[len(pool) / B, B]``: batches of the ``pool`` items (global indices, a multiple of B, in
    random order), each index once. ``embeddings`` is checked."""

  # ---------------------------------------------------------------- the epoch's batches and their state

  def _clear_order(self) -> None:
    self._order = np.zeros((0, self.batch_size), np.int32)
    self._order_epoch, self._order_window, self._window = -1, -1, -1

  def state_dict(self) -> dict[str, Any]:
    """The base state plus the epoch's batches (``order`` ``[rows, B]``, their epoch and first window)."""
    return {**super().state_dict(), "order": self._order.copy(), "order_epoch": self._order_epoch,
            "order_window": self._order_window}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    """Restores ``state_dict()``; a state without batches (an empty array is not checkpointed, or an
    older checkpoint) restores none: the next window makes them from the epoch's uncovered items."""
    super().load_state_dict(state)
    self._clear_order()
    if "order" not in state:
      return
    order = np.asarray(state["order"])
    if order.ndim != 2 or order.shape[1] != self.batch_size or order.dtype != np.int32:
      raise ValueError(f"state['order'] has shape {order.shape} and dtype {order.dtype}; allowed: int32 "
                       f"of shape (rows, {self.batch_size}).")
    self._order = order.copy()
    self._order_epoch = _checks.check_int("state['order_epoch']", state["order_epoch"], low=-1)
    self._order_window = _checks.check_int("state['order_window']", state["order_window"], low=-1)

  def window_info(self) -> dict[str, float]:
    """Which bank the last window's batches came from: ``order_window`` (the window of this epoch whose
    bank made them) and ``order_age_windows`` (windows since then); empty before any."""
    if self._order_window < 0 or self._window < 0 or self._order_epoch != self._epoch:
      return {}
    return {"order_window": float(self._order_window),
            "order_age_windows": float(self._window - self._order_window)}

  # ---------------------------------------------------------------- sampling

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    self._window = window
    if window == 0 or self._order_epoch != epoch or window < self._order_window:
      uncovered = np.flatnonzero(~self._covered)
      if uncovered.size < self.batch_size:  # nothing left to compose in this epoch
        self._clear_order()
        return self._uniform_batches(epoch, window, num_batches)
      rng = self._rng(epoch, window, base.SALT_EPOCH_ORDER)
      # The len(pool) mod B items left out, chosen at random (not the outliers at an order's ends); the
      # permutation also relabels the pool at random, so ties never depend on item ids.
      pool = rng.permutation(uncovered)[:(uncovered.size // self.batch_size) * self.batch_size]
      cut = self._cut(pool, embeddings, rng)
      self._order = cut[self._rng(epoch, window, base.SALT_ORDER).permutation(len(cut))]
      self._order_epoch, self._order_window = epoch, window
    start = (window - self._order_window) * num_batches
    parts = [self._order[start:start + num_batches]]
    missing = num_batches - len(parts[0])
    whole_epoch = start == 0 and len(self._order) == self.num_batches_per_epoch
    if missing > 0 and whole_epoch:  # a whole-epoch call asking for more: further passes, reshuffled
      rng = self._rng(epoch, window, base.SALT_REPEAT)
      parts += [self._order[rng.permutation(len(self._order))]
                for _ in range(-(-missing // len(self._order)))]
    elif missing > 0:  # past what the epoch's batches hold: uniform rows of the items no row has used yet
      self._mark_covered(parts[0], window)
      parts.append(self._uniform_batches(epoch, window, missing))
    return np.concatenate(parts)[:num_batches]
