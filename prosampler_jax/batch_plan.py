"""The samplers for any training loop: a PyTorch-style batch sampler, and whole-run batch plans.

``PlanBatchSampler`` is what ``torch.utils.data.DataLoader(dataset, batch_sampler=…)`` expects (an
iterable of lists of item indices with ``__len__``), plus ``set_epoch`` as PyTorch's distributed samplers
have it, without importing torch. It wraps any ``samplers.BatchSampler`` and samples a window of
``refresh_batches`` batches at a time (ProSampler's t; default once per epoch) from one of:

- the **bank** (the default): ``update(indices, rows)`` writes the embeddings the training forward pass
  computed anyway, as this project's own loop does, so nothing is ever re-encoded; until every item has
  been written once, windows are uniform (ProSampler's warm-up epoch);
- ``embed(epoch, window)``: the current embeddings of every item, for models that cannot hand over their
  training rows (a full encode per window: costly at scale);
- a **plan file** (``PlanFileSampler``): batches written earlier by ``python -m prosampler_jax.plan``.

With ``num_replicas`` > 1 each rank gets its own columns of every global batch (as DDP wants), and
``digest()`` fingerprints the batches sampled so far this epoch, for ranks to compare.

``batch_plan`` samples a fixed embedding bank for several epochs at once; ``save_plan``/``load_plan``
keep a plan with a JSON sidecar saying what made it (sampler, arguments, seed, N, B, a fingerprint of the
embeddings), and loading refuses a plan made for another N, B or other embeddings.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from prosampler_jax import _checks
from prosampler_jax import diagnostics
from prosampler_jax.normalize import pair_rows
from prosampler_jax.cadence import WindowSchedule
from prosampler_jax.samplers import BatchSampler
from prosampler_jax.samplers import sampler_input


class PlanBatchSampler:
  """Batches of item indices from a prosampler sampler, for PyTorch's ``DataLoader(batch_sampler=…)``.

  Args:
    sampler: any ``samplers.BatchSampler`` built for the dataset's N and the global batch size B (or a
      ``PlanFileSampler``).
    embed: ``embed(epoch, window) -> embeddings`` (``[N, D]`` array, or an ``(x, y)`` pair for samplers
      that read pairs), called before each window is sampled. None (the default): the sampler reads the
      bank that ``update`` fills.
    refresh_batches: batches per window (ProSampler's t); None: one window per epoch.
    num_replicas, rank: each of the ``num_replicas`` ranks yields columns ``[rank·B/R, (rank+1)·B/R)`` of
      every global batch; all ranks must use the same sampler seed and embeddings (compare ``digest()``).

  Iterating yields the epoch set by ``set_epoch`` (0 at first) as ``len(self)`` lists of Python ints.
  The batches are a pure function of (seed, epoch, window, embeddings). A window is sampled when its
  first batch is requested, so ``update`` calls made while training on a window reach the next one.
  """

  def __init__(self, sampler: BatchSampler, embed: Callable[[int, int], Any] | None = None, *,
               refresh_batches: int | None = None, num_replicas: int = 1, rank: int = 0):
    if not isinstance(sampler, BatchSampler):
      raise ValueError(f"sampler must be a prosampler_jax.samplers.BatchSampler, got "
                       f"{type(sampler).__name__}.")
    if embed is not None and not callable(embed):
      raise ValueError(f"embed must be a callable embed(epoch, window) or None, got {embed!r}.")
    per_epoch = sampler.num_batches_per_epoch
    self.refresh_batches = per_epoch if refresh_batches is None else _checks.check_int(
        "refresh_batches", refresh_batches, low=1)
    self.num_replicas = _checks.check_int("num_replicas", num_replicas, low=1)
    self.rank = _checks.check_int("rank", rank, low=0, high=self.num_replicas - 1)
    if sampler.batch_size % self.num_replicas:
      raise ValueError(f"num_replicas={num_replicas} must divide the batch size "
                       f"{sampler.batch_size}; allowed: a divisor of {sampler.batch_size}.")
    self.sampler, self.embed = sampler, embed
    self.epoch = 0
    self._bank: np.ndarray | None = None          # float32 [N, D], written by update()
    self._written = np.zeros(sampler.num_examples, bool)
    self._digest = hashlib.sha256()

  def set_epoch(self, epoch: int) -> None:
    """The epoch the next iteration yields (as ``DistributedSampler.set_epoch``)."""
    self.epoch = _checks.check_int("epoch", epoch, low=0)

  def start_epoch(self) -> None:
    """Starts the current epoch's digest afresh (iterating does it; an adapter that samples windows
    itself with ``sample_window`` calls it at each epoch's start)."""
    self._digest = hashlib.sha256(f"epoch {self.epoch}".encode())

  def __len__(self) -> int:
    return self.sampler.num_batches_per_epoch

  def update(self, indices, rows) -> None:
    """Writes ``rows`` (``[len(indices), D]``: this step's embeddings of items ``indices``, e.g. the
    training forward pass's, detached) into the bank the next windows are sampled from. Torch tensors on
    any device are accepted (copied to the host as float32). Every rank should write every item of the
    global batch (gather first under DDP), or the ranks' banks, and so their batches, drift apart."""
    if self.embed is not None:
      raise ValueError("update() writes the bank, but this sampler reads embed(epoch, window); allowed: "
                       "one of them (build it without embed= to use the bank).")
    rows = _host_float32(rows)
    indices = np.asarray(_host(indices)).reshape(-1)
    n = self.sampler.num_examples
    if not np.issubdtype(indices.dtype, np.integer) or (indices.size and not 0 <= indices.min() <=
                                                        indices.max() < n):
      raise ValueError(f"indices must be integer item ids in [0, {n - 1}], got dtype {indices.dtype}"
                       + (f" and values in [{indices.min()}, {indices.max()}]." if indices.size else "."))
    if rows.ndim != 2 or rows.shape[0] != indices.size:
      raise ValueError(f"rows has shape {rows.shape}; allowed: [{indices.size}, D], one row per index.")
    if self._bank is None:
      self._bank = np.zeros((n, rows.shape[1]), np.float32)
    elif rows.shape[1] != self._bank.shape[1]:
      raise ValueError(f"rows has width {rows.shape[1]}; allowed: {self._bank.shape[1]}, the width of "
                       "the rows written before.")
    if not np.isfinite(rows).all():
      raise ValueError("rows holds NaN or infinite values; allowed: finite embeddings (a diverged "
                       "step's rows would poison the bank).")
    self._bank[indices] = rows
    self._written[indices] = True

  @property
  def bank_coverage(self) -> float:
    """The share of items ``update`` has written at least once (windows are uniform below 1)."""
    return float(self._written.mean())

  def digest(self) -> str:
    """A fingerprint (16 hex digits) of the epoch and of every global batch sampled so far in it. Ranks
    that will train on the same batches have the same digest: compare it across ranks after each window
    (the sentence-transformers adapter does)."""
    return self._digest.hexdigest()[:16]

  def __iter__(self) -> Iterator[list[int]]:
    schedule = WindowSchedule(len(self), self.refresh_batches)  # the trainer's windows
    local = self.sampler.batch_size // self.num_replicas
    columns = slice(self.rank * local, (self.rank + 1) * local)
    self.start_epoch()
    for window in range(schedule.windows_per_epoch):
      rows = self.sample_window(window)
      for row in rows[:schedule.window_length(window)]:
        yield row[columns].tolist()

  def sample_window(self, window: int) -> np.ndarray:
    """The global batches ``[refresh_batches, B]`` of window ``window`` of the current epoch (what
    iterating yields, before the rank's columns are cut), added to ``digest()``."""
    rows = self.sampler.sample(self.epoch, self._window_embeddings(window),
                               num_batches=self.refresh_batches, window=window)
    self._digest.update(rows.astype(np.int32).tobytes())
    return rows

  def _window_embeddings(self, window: int):
    if self.embed is not None:
      return self.embed(self.epoch, window)
    if not self.sampler.needs_embeddings:
      return None
    if not self._written.all():
      if self.epoch > 0 and window == 0:
        warnings.warn(f"epoch {self.epoch} starts with {int(self._written.sum())} of "
                      f"{self._written.size} items in the bank: its windows stay uniform until update() "
                      "has written every item once.", stacklevel=3)
      return None  # uniform batches: the warm-up that fills the bank
    return self._bank


def _host(value):
  """A NumPy view of ``value``; a torch tensor (any device) is detached and copied to the host first."""
  if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch, without importing it
    value = value.detach().cpu()
    value = value.float() if value.is_floating_point() else value
    return value.numpy()
  return np.asarray(value)


def _host_float32(value) -> np.ndarray:
  array = _host(value)
  if not np.issubdtype(array.dtype, np.floating):
    raise ValueError(f"rows must hold floats, got dtype {array.dtype}.")
  return array.astype(np.float32, copy=False)


class PlanFileSampler(BatchSampler):
  """A plan written by ``save_plan`` (or ``python -m prosampler_jax.plan``) served as a sampler: window
  ``w`` of epoch ``e`` is rows ``[w·t, (w+1)·t)`` of the plan's epoch ``e``. ``PlanBatchSampler`` and the
  sentence-transformers adapter read it like any sampler; it needs no embeddings.

  Args:
    path: the plan's ``.npy`` (its ``.json`` sidecar beside it).
    num_examples, batch_size: the dataset's N and the batch size B this plan must have been made for.
    embeddings: optional: the embeddings the plan must have been made from (refused when their
      fingerprint differs: a stale plan).
  """

  needs_embeddings = False

  def __init__(self, path: str, num_examples: int, batch_size: int, *, embeddings=None):
    super().__init__(num_examples, batch_size)
    self.path = path
    self.plan, self.provenance = load_plan(path, num_examples=num_examples, batch_size=batch_size,
                                           embeddings=embeddings)

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    if epoch >= len(self.plan):
      raise ValueError(f"epoch={epoch} is past the plan's {len(self.plan)} epoch(s) in {self.path}; "
                       f"allowed: 0–{len(self.plan) - 1} (write a longer plan: --epochs).")
    rows = self.plan[epoch]
    start = window * num_batches
    if start >= len(rows):
      raise ValueError(f"window={window} of {num_batches} batches starts past the plan's {len(rows)} "
                       "batches per epoch.")
    return np.resize(rows[start:start + num_batches], (num_batches, self.batch_size))  # last: padded

  def _params(self) -> dict[str, Any]:
    return {**super()._params(), "plan": self.provenance.get("embeddings_sha256", "")}


def batch_plan(sampler: BatchSampler, embeddings, *, epochs: int, labels=None
               ) -> tuple[np.ndarray, list[dict]]:
  """``epochs`` whole epochs from fixed ``embeddings``: int32 ``[epochs, N // B, B]`` and each epoch's
  ``diagnostics.batch_stats``.

  ``embeddings``: ``[N, D]``, or a pair ``(x, y)`` of views: "tail" orders the pair (its symmetrised
  cross-view similarity), the other samplers and the statistics use one row per item, the unit views side
  by side (as the trainers' two-view tasks keep their bank).
  """
  epochs = _checks.check_int("epochs", epochs, low=1)
  bank, pair = plan_bank(embeddings)
  view = sampler_input(sampler, bank, pair)
  plans, stats = [], []
  for epoch in range(epochs):
    plan = sampler.sample(epoch, view)
    plans.append(plan)
    stats.append({"epoch": epoch, **diagnostics.batch_stats(plan, bank, labels)})
  return np.stack(plans).astype(np.int32), stats


def plan_bank(embeddings) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
  """``(bank, pair)`` on the default device, once for every epoch: for one array ``[N, D]`` the array and
  None; for a pair ``(x, y)`` of views one row per item, the unit views side by side (as the trainers'
  two-view tasks keep their bank), and the pair itself."""
  if not isinstance(embeddings, tuple):
    return _checks.check_embeddings("embeddings", embeddings, on_device=True), None
  if len(embeddings) != 2:
    raise ValueError(f"embeddings is a tuple of length {len(embeddings)}; allowed: an array [N, D] "
                     "or a pair (x, y).")
  x, y = (_checks.check_embeddings(f"embeddings[{i}]", v, on_device=True)
          for i, v in enumerate(embeddings))
  if x.shape != y.shape:
    raise ValueError(f"the pair's views must have the same shape, got {x.shape} and {y.shape}.")
  return pair_rows(x, y), (x, y)


PLAN_FORMAT = 1


def fingerprint(embeddings) -> str:
  """SHA-256 (hex) of embeddings as float32 (an array, or an ``(x, y)`` pair), shapes included: the
  identity of the data a plan was made from."""
  digest = hashlib.sha256()
  for array in embeddings if isinstance(embeddings, tuple) else (embeddings,):
    array = np.ascontiguousarray(np.asarray(array, np.float32))
    digest.update(repr(array.shape).encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def save_plan(path: str, plan: np.ndarray, sampler: BatchSampler, embeddings, **extra) -> str:
  """Writes ``plan`` (int32 ``[epochs, N // B, B]``) to ``path`` (.npy) and its provenance to the
  ``.json`` beside it: sampler and constructor arguments, seed, epochs, N, B, the embeddings' fingerprint,
  and ``extra`` (e.g. the command line). Returns the sidecar's path."""
  if not path.endswith(".npy"):
    raise ValueError(f"path={path!r}; allowed: a path ending in .npy.")
  plan = np.asarray(plan, np.int32)
  params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sampler._params().items()}  # pylint: disable=protected-access
  provenance = {"format": PLAN_FORMAT, "sampler": type(sampler).__name__, "arguments": params,
                "seed": sampler.seed, "epochs": int(plan.shape[0]), "num_examples": sampler.num_examples,
                "batch_size": sampler.batch_size, "embeddings_sha256": fingerprint(embeddings), **extra}
  np.save(path, plan)
  sidecar = plan_sidecar(path)
  with open(sidecar, "w", encoding="utf-8") as f:
    json.dump(provenance, f, indent=1, default=str)
  return sidecar


def plan_sidecar(path: str) -> str:
  """The provenance file of plan ``path``: the same name with ``.json``."""
  return os.path.splitext(path)[0] + ".json"


def load_plan(path: str, *, num_examples: int | None = None, batch_size: int | None = None,
              embeddings=None) -> tuple[np.ndarray, dict]:
  """``(plan, provenance)`` of a plan written by ``save_plan``. Refuses, naming both values, a plan made
  for another ``num_examples`` or ``batch_size``, or (when ``embeddings`` is given) from other
  embeddings; a plan without its sidecar is refused too (nothing says what made it)."""
  if not os.path.isfile(path):
    raise ValueError(f"plan {path!r}: no such file; allowed: a .npy written by python -m "
                     "prosampler_jax.plan (or batch_plan.save_plan).")
  sidecar = plan_sidecar(path)
  if not os.path.isfile(sidecar):
    raise ValueError(f"plan {path!r} has no provenance file {sidecar!r}, so nothing says which data, "
                     "sampler, N and B made it; allowed: a plan written by python -m prosampler_jax.plan "
                     "(or batch_plan.save_plan), which writes both.")
  try:
    with open(sidecar, encoding="utf-8") as f:
      provenance = json.load(f)
    plan = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise ValueError(f"plan {path!r} or its sidecar cannot be read ({e}).") from e
  if not isinstance(provenance, dict) or provenance.get("format") != PLAN_FORMAT:
    raise ValueError(f"{sidecar!r} is not a plan provenance file of format {PLAN_FORMAT}.")
  n, b = provenance["num_examples"], provenance["batch_size"]
  if plan.ndim != 3 or plan.shape[1:] != (n // b, b) or plan.shape[0] != provenance["epochs"]:
    raise ValueError(f"plan {path!r} has shape {plan.shape}; its sidecar says "
                     f"[{provenance['epochs']}, {n // b}, {b}] (N = {n}, B = {b}).")
  for name, wanted, made in (("num_examples", num_examples, n), ("batch_size", batch_size, b)):
    if wanted is not None and wanted != made:
      raise ValueError(f"plan {path!r} was made for {name}={made}, not {wanted}; allowed: a plan made "
                       f"for this data (python -m prosampler_jax.plan --out={path} …).")
  if embeddings is not None and fingerprint(embeddings) != provenance["embeddings_sha256"]:
    raise ValueError(f"plan {path!r} was made from other embeddings (fingerprint "
                     f"{provenance['embeddings_sha256'][:16]}…, these {fingerprint(embeddings)[:16]}…): a "
                     "stale plan; allowed: write it again from these embeddings.")
  return plan.astype(np.int32, copy=False), provenance
