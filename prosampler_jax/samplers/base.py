"""What every batch sampler shares: argument checks, per-epoch coverage state, seeding, uniform fallback.

A sampler turns (seed, epoch, window, embeddings) into an int32 index array ``[num_batches, B]``
(DESIGN §3.4). The trainer splits an epoch of ``N // B`` steps into windows of ``refresh_steps`` batches
and calls ``sample(epoch, bank, num_batches=refresh_steps, window=w)`` for ``w = 0, 1, …``. To let the
windows of one epoch cover as many items as possible, the sampler remembers which items the current
epoch has already used (the *covered* mask) and prefers the others. The mask remembers which window
covered each item, so asking for a window again (a retry, ``sample_window(w)`` twice) forgets that window
and the later ones first and gives the same batches for the same bank. That record is the sampler's whole
state, so ``state_dict()`` / ``load_state_dict()`` make a resumed run continue identically.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import numpy as np

from prosampler_jax import _checks

# Salts that keep the random streams of different purposes apart (one stream per purpose and call).
SALT_UNIFORM = 0
SALT_ORDER = 1
SALT_GRAPH = 2
SALT_WALK = 3
SALT_EPOCH_ORDER = 4  # an epoch's batches made at once (samplers/epoch_order.py)
SALT_REPEAT = 5

_MAX_SEED = 2**32 - 1


class BatchSampler(abc.ABC):
  """Base class: validates arguments, keeps the per-epoch covered mask, derives all randomness.

  Subclasses set ``needs_embeddings`` and implement ``_sample``; everything else lives here once.
  Output is a pure function of (seed, epoch, window, embeddings) and of the epoch's earlier windows as
  drawn (the items they covered). Calling with ``window=0`` starts the epoch afresh, so a whole-epoch call
  ``sample(epoch, embeddings)`` depends on its arguments only; asking for window w again gives the same
  batches for the same bank, whatever later windows were drawn in between.
  """

  needs_embeddings: bool = True
  # Samplers that read a pair of views (x, y) when the data has one (Tail Batch Sampling's cross-view
  # similarity); the others read one row per item. The task says what its pair is, the sampler whether it
  # reads it (``sampler_input``): no task tests a sampler's name.
  reads_pairs: bool = False
  # Samplers whose math runs in JAX keep a bank given as a jax.Array on its device (no host copy).
  bank_on_device: bool = False

  def __init__(self, num_examples: int, batch_size: int, *, seed: int = 0):
    self.num_examples = _checks.check_int("num_examples", num_examples, low=2)
    self.batch_size = _checks.check_int("batch_size", batch_size, low=2, high=self.num_examples)
    self.seed = _checks.check_int("seed", seed, low=0, high=_MAX_SEED)
    self._epoch = -1
    # The window of the current epoch that first covered each item; -1: not covered yet.
    self._covered_in = np.full(self.num_examples, -1, dtype=np.int32)

  # ---------------------------------------------------------------- public interface (DESIGN §3.4)

  @property
  def num_batches_per_epoch(self) -> int:
    """``N // B``: every sampler gives an epoch the same number of optimiser steps."""
    return self.num_examples // self.batch_size

  def sample(self, epoch: int, embeddings=None, *, num_batches: int | None = None,
             window: int = 0) -> np.ndarray:
    """Returns int32 ``[num_batches, B]`` batch indices for window ``window`` of epoch ``epoch``.

    Every row holds B distinct indices in ``[0, N)``. ``num_batches=None`` means ``N // B``.
    ``embeddings`` (the bank, ``[N, D]``) may be None: samplers that need it then return uniform batches.
    """
    epoch = _checks.check_int("epoch", epoch, low=0)
    window = _checks.check_int("window", window, low=0)
    if num_batches is None:
      num_batches = self.num_batches_per_epoch
    num_batches = _checks.check_int("num_batches", num_batches, low=1)
    if embeddings is not None:
      embeddings = self._check_embeddings(embeddings)
    if epoch != self._epoch:
      self._epoch = epoch
      self._covered_in[:] = -1
    else:  # forget this window and the later ones: the covered mask as this window first saw it
      self._covered_in[self._covered_in >= window] = -1
    if embeddings is None and self.needs_embeddings:
      batches = self._uniform_batches(epoch, window, num_batches)
    else:
      batches = self._sample(epoch, window, num_batches, embeddings)
    batches = np.asarray(batches, dtype=np.int32)
    expected = (num_batches, self.batch_size)
    if batches.shape != expected:  # internal invariant, not a user error
      raise AssertionError(f"{type(self).__name__} returned shape {batches.shape}, expected {expected}.")
    self._mark_covered(batches, window)
    return batches

  def window_info(self) -> dict[str, float]:
    """Where the last ``sample()`` call's batches came from, for the trainer's refresh record (floats;
    empty when the batches depend on nothing but their own call's arguments)."""
    return {}

  def state_dict(self) -> dict[str, Any]:
    """The state a checkpoint needs: the current epoch, its covered mask, and the constructor params."""
    return {
        "sampler": type(self).__name__,
        "params": self._params(),
        "epoch": int(self._epoch),
        "covered": self._covered,
        "covered_in": self._covered_in.copy(),
    }

  def load_state_dict(self, state: dict[str, Any]) -> None:
    """Restores ``state_dict()`` output; rejects state from another sampler, size or configuration."""
    if not isinstance(state, dict):
      raise ValueError(f"state must be a dict from state_dict(), got {type(state).__name__}.")
    missing = {"sampler", "params", "epoch", "covered"} - set(state)
    if missing:
      raise ValueError(f"state is missing key(s) {sorted(missing)}; allowed: a dict from state_dict().")
    if state["sampler"] != type(self).__name__:
      raise ValueError(f"state['sampler']={state['sampler']!r} does not match this sampler; "
                       f"allowed: {type(self).__name__!r}.")
    params = dict(state["params"])
    for name, value in self._params().items():
      if name not in params or not _same_param(params[name], value):
        raise ValueError(f"state['params'][{name!r}]={params.get(name)!r} does not match this sampler's "
                         f"{name}={value!r}; allowed: exactly {value!r}.")
    epoch = _checks.check_int("state['epoch']", state["epoch"], low=-1)
    covered = np.asarray(state["covered"])
    if covered.shape != (self.num_examples,) or covered.dtype != bool:
      raise ValueError(f"state['covered'] has shape {covered.shape} and dtype {covered.dtype}; allowed: "
                       f"bool of shape ({self.num_examples},).")
    # An older state has the mask only: its items count as covered by the epoch's first window.
    covered_in = np.asarray(state.get("covered_in", np.where(covered, 0, -1).astype(np.int32)))
    if (covered_in.shape != covered.shape or covered_in.dtype != np.int32
        or not np.array_equal(covered_in >= 0, covered)):
      raise ValueError(f"state['covered_in'] has shape {covered_in.shape} and dtype {covered_in.dtype} or "
                       "disagrees with state['covered']; allowed: int32 of the same shape, ≥ 0 exactly "
                       "where covered.")
    self._epoch = epoch
    self._covered_in = covered_in.astype(np.int32, copy=True)

  # ---------------------------------------------------------------- for subclasses

  @property
  def _covered(self) -> np.ndarray:
    """bool ``[N]``: the items the current epoch's windows so far have used (a fresh array)."""
    return self._covered_in >= 0

  def _mark_covered(self, batches: np.ndarray, window: int) -> None:
    """Records the items of ``batches`` as covered by ``window`` (items covered before keep their window)."""
    items = np.asarray(batches).ravel()
    items = items[self._covered_in[items] < 0]
    self._covered_in[items] = window

  @abc.abstractmethod
  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    """Returns ``[num_batches, B]`` indices; ``embeddings`` is checked (or None if not needed)."""

  def _params(self) -> dict[str, Any]:
    """Constructor parameters recorded in the state for a sanity check on load."""
    return {"num_examples": self.num_examples, "batch_size": self.batch_size, "seed": self.seed}

  def _check_embeddings(self, embeddings):
    """Validates the bank: float ``[N, D]``, finite, N = num_examples."""
    return self._check_bank("embeddings", embeddings)

  def _check_bank(self, name: str, array):
    """One ``[N, D]`` bank array, kept on its device when ``bank_on_device``."""
    return _checks.check_embeddings(name, array, num_examples=self.num_examples,
                                    on_device=self.bank_on_device)

  def _rng(self, epoch: int, window: int, salt: int) -> np.random.Generator:
    """A NumPy generator that depends on (seed, epoch, window, salt) only."""
    return np.random.default_rng([self.seed, epoch, window, salt])

  def _key(self, epoch: int, window: int, salt: int) -> jax.Array:
    """A JAX key that depends on (seed, epoch, window, salt) only (``fold_in`` chain)."""
    key = jax.random.key(self.seed)
    for data in (epoch, window, salt):
      key = jax.random.fold_in(key, data)
    return key

  def _graph_seed(self, epoch: int, window: int) -> int:
    """An int seed for ``build_proximity_graph`` derived from (seed, epoch, window)."""
    return int(self._rng(epoch, window, SALT_GRAPH).integers(0, 2**31 - 1))

  def _preferred_order(self, rng: np.random.Generator, passes: int = 1) -> np.ndarray:
    """``passes`` permutations of N, concatenated; the first puts this epoch's uncovered items first.

    Uncovered and covered items are each shuffled, so taking a prefix draws without replacement from the
    uncovered items and tops up from covered ones when too few are left.
    """
    uncovered = np.flatnonzero(~self._covered)
    covered = np.flatnonzero(self._covered)
    orders = [rng.permutation(uncovered), rng.permutation(covered)]
    orders += [rng.permutation(self.num_examples) for _ in range(passes - 1)]
    return np.concatenate(orders).astype(np.int32)

  def _uniform_batches(self, epoch: int, window: int, num_batches: int) -> np.ndarray:
    """Uniform batches, uncovered items first: the windows of one epoch form one permutation of N.

    Beyond one pass over N, further rows come from fresh permutations; each permutation gives
    ``N // B`` rows (its ``N mod B`` remainder is skipped) so no row ever holds an index twice.
    """
    b, per_pass = self.batch_size, self.num_batches_per_epoch
    passes = -(-num_batches // per_pass)
    order = self._preferred_order(self._rng(epoch, window, SALT_UNIFORM), passes)
    rows = order.reshape(passes, self.num_examples)[:, :per_pass * b].reshape(-1, b)
    return rows[:num_batches]

  def _start_items(self, epoch: int, window: int, count: int) -> np.ndarray:
    """``count`` start items: uncovered items without replacement first, then covered, then repeats."""
    passes = -(-count // self.num_examples)
    return self._preferred_order(self._rng(epoch, window, SALT_ORDER), passes)[:count]


def _same_param(a, b) -> bool:
  """Equality that also holds for floats restored as 0-d arrays and for None."""
  if a is None or b is None:
    return a is None and b is None
  if isinstance(b, str):
    return isinstance(a, str) and a == b
  try:
    return bool(np.asarray(a) == np.asarray(b))
  except (TypeError, ValueError):
    return False


def sampler_input(sampler: BatchSampler, bank, pair):
  """What ``sampler`` samples from: the pair of views when it reads pairs and the data has one, else the
  bank's rows; None for samplers that need no embeddings.

  ``pair`` is ``(x, y)``, None, or a function returning either (called only when the sampler reads
  pairs, so the others never pay for cutting the halves); a task whose rows are not pairs of views
  returns its bank from that function, and a pair-reading sampler then reads the rows.
  """
  if not sampler.needs_embeddings:
    return None
  if not sampler.reads_pairs:
    return bank
  pair = pair() if callable(pair) else pair
  return bank if pair is None else pair
