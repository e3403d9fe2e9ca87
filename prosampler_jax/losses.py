"""Contrastive losses on raw embeddings: NT-Xent, debiased (DCL), hard-negative (HCL), InfoNCE and
GraphCL's variant.

Every loss L2-normalises its inputs, computes in float32 and in log space (stable at temperature 0.05),
and returns the mean over unmasked anchors (DESIGN §3.1). ``mask`` (bool ``[B]``) removes items both
as anchors and as negatives. With ``axis_name`` the call runs inside ``jax.shard_map`` on its local
shard: candidates are all-gathered over that axis and the local anchors compared against the global
batch, so value and gradient equal the unsharded loss on the concatenated global batch.
``temperature`` may be a traced value (e.g. a jit argument or a learned scalar; its range is then not
checked); ``tau_plus`` and ``beta`` choose the computation and must be concrete Python numbers.

False-negative control (every loss; DESIGN §3.1), applied to the negatives before any sum or count, so
DCL/HCL's N counts the kept negatives only:
- ``false_negative_margin=m`` (m > 0): an anchor a drops candidate c from its negatives when
  cos(a, c) > m · cos(a, a⁺), cosines of the normalised embeddings (not divided by the temperature).
  m = 1 − ``relative_margin`` of sentence-transformers' ``mine_hard_negatives`` (m = 0.95 keeps negatives at
  most 95% as similar as the positive). The rule is applied literally whatever the signs: when
  cos(a, a⁺) ≤ 0 the threshold m · cos(a, a⁺) lies at or above cos(a, a⁺) for m ≤ 1, so negatives between
  the two are kept. The comparison carries no gradient (a hard choice, as in sentence-transformers).
- ``labels`` (int ``[B]``, class or source ids): a candidate of another item with the anchor's label is
  not a negative (SupCon-style exclusion). Explicit hard negatives (``info_nce``'s ``negatives``) are
  other sentences, not the items: the label rule leaves them negatives (the margin rule still applies).
Under ``axis_name`` the labels are all-gathered with the candidates, so the rules see the global batch.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from prosampler_jax import _checks
from prosampler_jax.normalize import l2_normalize

# DCL/HCL: Σneg − τ⁺·N·pos counts as positive when it exceeds this fraction of Σneg (far below float32
# resolution of R, so only differences that underflow to zero are treated as "not positive").
_MIN_LOG_GAP = 1e-30
# Keyword arguments that come with each batch, not from a config (``bind`` leaves them to the caller).
PER_BATCH_ARGUMENTS = ("mask", "labels", "axis_name")
NAMES = ("nt_xent", "dcl", "hcl", "info_nce", "graphcl")  # the losses a config can name (``bind``)


class _Similarities(NamedTuple):
  """Local anchors against the (global) candidates, with who is whose positive and negative."""
  logits: jax.Array  # [A, C] float32, s(anchor, candidate) = a·c / t
  positive: jax.Array  # [A, C] bool, exactly one True per row: the anchor's positive
  negative: jax.Array  # [A, C] bool, the candidates of every other unmasked item
  anchor: jax.Array  # [A] bool, the anchor's item is unmasked


def nt_xent(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.5, mask: jax.Array | None = None,
            false_negative_margin: float | None = None, labels: jax.Array | None = None,
            axis_name: str | None = None) -> jax.Array:
  """SimCLR's NT-Xent (Chen et al. 2020): ℓ = −log(pos / (pos + Σ_j neg_j)) over the 2B views."""
  sim = _simclr_similarities(z1, z2, temperature, mask, axis_name, false_negative_margin, labels)
  return _mean_over_anchors(_cross_entropy(sim), sim.anchor, axis_name)


def dcl(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.5, tau_plus: float = 0.1,
        mask: jax.Array | None = None, false_negative_margin: float | None = None,
        labels: jax.Array | None = None, axis_name: str | None = None) -> jax.Array:
  """Debiased contrastive loss (Chuang et al. 2020): Ng = max((Σneg − τ⁺·N·pos)/(1 − τ⁺), N·e^(−1/t))."""
  tau_plus = _concrete_float("tau_plus", tau_plus, low=0.0, high=1.0, high_open=True)
  sim = _simclr_similarities(z1, z2, temperature, mask, axis_name, false_negative_margin, labels)
  per_anchor = _debiased(sim, temperature=temperature, tau_plus=tau_plus, beta=0.0)
  return _mean_over_anchors(per_anchor, sim.anchor, axis_name)


def hcl(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.5, tau_plus: float = 0.1,
        beta: float = 1.0, mask: jax.Array | None = None, false_negative_margin: float | None = None,
        labels: jax.Array | None = None, axis_name: str | None = None) -> jax.Array:
  """Hard-negative loss (Robinson et al. 2021): DCL with negatives reweighted by w_j = e^(β·s_j)."""
  tau_plus = _concrete_float("tau_plus", tau_plus, low=0.0, high=1.0, high_open=True)
  beta = _concrete_float("beta", beta, low=0.0)
  sim = _simclr_similarities(z1, z2, temperature, mask, axis_name, false_negative_margin, labels)
  per_anchor = _debiased(sim, temperature=temperature, tau_plus=tau_plus, beta=beta)
  return _mean_over_anchors(per_anchor, sim.anchor, axis_name)


def info_nce(q: jax.Array, k: jax.Array, *, negatives: jax.Array | None = None,
             temperature: float = 0.05, mask: jax.Array | None = None,
             false_negative_margin: float | None = None, labels: jax.Array | None = None,
             axis_name: str | None = None) -> jax.Array:
  """SimCSE's InfoNCE (Gao et al. 2021): cross-entropy of row i of s(q, [k; negatives]) against label i.

  Anchor q_i's positive is k_i; its negatives are every other k_j and, with ``negatives`` (``[B, D]``,
  supervised SimCSE's hard negatives), every hard negative of the batch — its own included. Under
  ``axis_name`` both k and the negatives are all-gathered, so the candidates are the global batch's.
  """
  temperature = _check_temperature(temperature)
  q, k = _check_pair("q", q, "k", k)
  candidates, own_negative_views = (k,), ()
  if negatives is not None:
    _, negatives = _check_pair("q", q, "negatives", negatives)
    candidates, own_negative_views = (k, negatives), (1,)
  mask = _check_mask(mask, q.shape[0])
  sim = _similarities((q,), candidates, (0,), mask, temperature, axis_name,
                      own_negative_views=own_negative_views,
                      false_negative_margin=false_negative_margin, labels=labels)
  return _mean_over_anchors(_cross_entropy(sim), sim.anchor, axis_name)


def graphcl(z1: jax.Array, z2: jax.Array, *, temperature: float = 0.2, mask: jax.Array | None = None,
            false_negative_margin: float | None = None, labels: jax.Array | None = None,
            axis_name: str | None = None) -> jax.Array:
  """GraphCL's loss (You et al. 2020, unsupervised TU code): ℓ_i = −log(pos_i / Σ_{j≠i} e^(s(z1_i, z2_j)/t)).

  Differs from ``nt_xent`` in three ways, all as GraphCL computes it: only cross-view similarities
  (anchors are the first views, candidates the second views: no z1–z1 negatives), one direction (z2 is
  never an anchor), and the positive is *excluded* from the denominator. Under ``axis_name`` the second
  views are all-gathered. An anchor without negatives (a one-item batch) contributes 0.
  """
  temperature = _check_temperature(temperature)
  z1, z2 = _check_pair("z1", z1, "z2", z2)
  mask = _check_mask(mask, z1.shape[0])
  sim = _similarities((z1,), (z2,), (0,), mask, temperature, axis_name,
                      false_negative_margin=false_negative_margin, labels=labels)
  s_pos = jnp.sum(jnp.where(sim.positive, sim.logits, 0.0), axis=-1)
  has_neg = jnp.any(sim.negative, axis=-1)
  per_anchor = jnp.where(has_neg, _logsumexp(sim.logits, sim.negative) - s_pos, 0.0)
  return _mean_over_anchors(per_anchor, sim.anchor, axis_name)


def hyperparameter_names(name: str) -> list[str]:
  """The hyper-parameters loss ``name`` accepts: its keyword-only arguments minus the per-batch ones."""
  _checks.check_choice("config.loss.name", name, NAMES)
  return [p.name for p in inspect.signature(globals()[name]).parameters.values()
          if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in PER_BATCH_ARGUMENTS]


def bind(name: str, hyperparameters, *, allowed: Sequence[str]) -> functools.partial:
  """Loss ``name`` (one of ``allowed``) with the hyper-parameters it accepts taken from a mapping.

  The accepted keys are read from the loss's own signature (keyword-only, minus the per-batch
  ``PER_BATCH_ARGUMENTS``), and their values are checked now, so a bad temperature fails before data loads.
  """
  _checks.check_choice("config.loss.name", name, tuple(allowed))
  fn = globals()[name]
  accepted = hyperparameter_names(name)
  kwargs = {k: hyperparameters[k] for k in accepted if k in hyperparameters}
  probe = jnp.ones((2, 2), jnp.float32)
  try:  # the loss's own checks, on a 2-item batch; their messages start with the argument's name
    fn(probe, probe, **kwargs)
  except ValueError as error:
    raise ValueError(f"config.loss.{error}") from None
  return functools.partial(fn, **kwargs)


def beyond_margin(cosines: jax.Array, positive_cosine: jax.Array, margin: float) -> jax.Array:
  """The relative-margin rule, True where a candidate is too close to be trusted as a negative:
  cos(a, c) > m · cos(a, a⁺) (broadcast ``positive_cosine`` against ``cosines``). No gradient flows
  through the choice. The one definition of the rule: the losses and ``diagnostics`` both use it."""
  return lax.stop_gradient(cosines) > margin * lax.stop_gradient(positive_cosine)


def _simclr_similarities(z1, z2, temperature, mask, axis_name, false_negative_margin, labels
                         ) -> _Similarities:
  """2B anchors {u_i, v_i}: the positive of u_i is v_i and vice versa; negatives are other items' views."""
  temperature = _check_temperature(temperature)
  z1, z2 = _check_pair("z1", z1, "z2", z2)
  mask = _check_mask(mask, z1.shape[0])
  return _similarities((z1, z2), (z1, z2), (1, 0), mask, temperature, axis_name,
                       false_negative_margin=false_negative_margin, labels=labels)


def _similarities(anchor_views: Sequence[jax.Array], candidate_views: Sequence[jax.Array],
                  positive_view: Sequence[int], mask: jax.Array | None, temperature: float,
                  axis_name: str | None, *, own_negative_views: Sequence[int] = (),
                  false_negative_margin: float | None = None, labels: jax.Array | None = None
                  ) -> _Similarities:
  """The shared core: normalised local anchor views against all candidate views of the global batch.

  Anchor view ``a`` of item i has its positive in candidate view ``positive_view[a]`` of the same item;
  its negatives are all candidate views of every other unmasked item, plus the item's own candidate
  views listed in ``own_negative_views`` (e.g. its hard negative), less those the false-negative rules
  (module docstring) drop.
  """
  batch = anchor_views[0].shape[0]
  margin = _check_margin(false_negative_margin)
  labels = _check_labels(labels, batch)
  anchor_views = [l2_normalize(z) for z in anchor_views]
  candidate_views = [l2_normalize(z) for z in candidate_views]
  anchor_mask = jnp.ones((batch,), bool) if mask is None else mask
  candidate_mask = anchor_mask
  offset = 0
  candidate_labels = labels
  if axis_name is not None:
    _check_axis_bound(axis_name)
    candidate_views = [jax.lax.all_gather(z, axis_name, tiled=True) for z in candidate_views]
    if mask is not None:
      candidate_mask = jax.lax.all_gather(mask, axis_name, tiled=True)
    if labels is not None:
      candidate_labels = jax.lax.all_gather(labels, axis_name, tiled=True)
    offset = jax.lax.axis_index(axis_name) * batch
  total = candidate_views[0].shape[0]
  if mask is None:
    candidate_mask = jnp.ones((total,), bool)

  anchors = jnp.concatenate(anchor_views)
  candidates = jnp.concatenate(candidate_views)
  # HIGHEST: accelerators may otherwise run float32 matmuls in bf16/TF32, too coarse at t = 0.05.
  cosines = jnp.matmul(anchors, candidates.T, precision=jax.lax.Precision.HIGHEST)
  logits = cosines / temperature

  # Every mask comes from iota comparisons, which XLA fuses into the consumers: no [A, C] constant is
  # baked into the program (a NumPy table would be (2B)² bytes, 1 GiB at B = 16k, and slow to compile).
  num_anchor_views, num_candidate_views = len(anchor_views), len(candidate_views)
  shape = (num_anchor_views * batch, num_candidate_views * total)
  row = lax.broadcasted_iota(jnp.int32, shape, 0)
  col = lax.broadcasted_iota(jnp.int32, shape, 1)
  same_item = (offset + row % batch) == col % total
  candidate_view = col // total
  wanted_view = jnp.zeros(shape, jnp.int32)
  for view, positive_candidate_view in enumerate(positive_view):  # a few static views: one select each
    wanted_view = jnp.where(row // batch == view, positive_candidate_view, wanted_view)
  positive = same_item & (candidate_view == wanted_view)
  own_negative = jnp.zeros(shape, bool)
  for view in own_negative_views:
    own_negative = own_negative | (candidate_view == view)
  negative = ((~same_item | own_negative) & ~positive
              & jnp.tile(candidate_mask, num_candidate_views)[None, :])
  if margin is not None:
    positive_cosine = jnp.sum(jnp.where(positive, cosines, 0.0), axis=-1, keepdims=True)
    negative = negative & ~beyond_margin(cosines, positive_cosine, margin)
  if labels is not None:  # another item with the anchor's label: not a negative (its hard negatives are)
    anchor_label = jnp.tile(labels, num_anchor_views)[:, None]
    candidate_label = jnp.tile(candidate_labels, num_candidate_views)[None, :]
    negative = negative & ~((anchor_label == candidate_label) & ~own_negative)
  return _Similarities(logits, positive, negative, jnp.tile(anchor_mask, num_anchor_views))


def _cross_entropy(sim: _Similarities) -> jax.Array:
  """Per anchor −log(pos / (pos + Σ_j neg_j)) = logsumexp(s⁺, s_j) − s⁺."""
  s_pos = jnp.sum(jnp.where(sim.positive, sim.logits, 0.0), axis=-1)
  return _logsumexp(sim.logits, sim.positive | sim.negative) - s_pos


def _debiased(sim: _Similarities, *, temperature: float, tau_plus: float, beta: float) -> jax.Array:
  """Per anchor −log(pos / (pos + Ng)) with the DCL/HCL negative estimate Ng, all in log space."""
  s_pos = jnp.sum(jnp.where(sim.positive, sim.logits, 0.0), axis=-1)
  num_neg = jnp.sum(sim.negative, axis=-1).astype(jnp.float32)
  has_neg = num_neg > 0
  log_n = jnp.log(jnp.maximum(num_neg, 1.0))
  if beta == 0.0:  # log R = log Σ_j neg_j
    log_r = _logsumexp(sim.logits, sim.negative)
  else:  # log R = log Σ_j w_j·neg_j − log mean_j w_j, with w_j = e^(β·s_j)
    log_r = (_logsumexp((1.0 + beta) * sim.logits, sim.negative)
             - _logsumexp(beta * sim.logits, sim.negative) + log_n)
  log_ng = log_r
  log_clamp = log_n - 1.0 / temperature  # the official clamp N·e^(−1/t)
  if tau_plus > 0.0:
    # log(R − τ⁺·N·pos) = log R + log(1 − e^gap), gap = log(τ⁺·N·pos) − log R. Where the difference
    # is not positive (gap ≥ 0, up to float32 underflow) the official code takes the clamp exactly;
    # there the log is evaluated at a harmless stand-in so that its gradient stays finite.
    gap = s_pos + math.log(tau_plus) + log_n - log_r
    positive_difference = gap < -_MIN_LOG_GAP
    safe_gap = jnp.where(positive_difference, gap, -1.0)
    log_ng = jnp.where(positive_difference, log_r + jnp.log(-jnp.expm1(safe_gap)), -jnp.inf)
  log_ng = jnp.maximum(log_ng - math.log1p(-tau_plus), log_clamp)
  # −log(pos / (pos + Ng)) = softplus(log Ng − s⁺); without negatives (N = 0) Ng = 0 and ℓ = 0.
  return jnp.where(has_neg, jax.nn.softplus(log_ng - s_pos), 0.0)


def _logsumexp(x: jax.Array, where: jax.Array) -> jax.Array:
  """Row-wise logsumexp over the entries in ``where``; rows without entries give 0 (callers mask them)."""
  x = jnp.where(where, x, -jnp.inf)
  shift = jax.lax.stop_gradient(jnp.max(x, axis=-1, keepdims=True))
  shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
  total = jnp.sum(jnp.where(where, jnp.exp(x - shift), 0.0), axis=-1)
  return jnp.log(jnp.where(total > 0, total, 1.0)) + shift[..., 0]


def _mean_over_anchors(per_anchor: jax.Array, anchor: jax.Array, axis_name: str | None) -> jax.Array:
  """Mean over the (global) unmasked anchors; 0 when every item is masked."""
  total = jnp.sum(jnp.where(anchor, per_anchor, 0.0))
  count = jnp.sum(anchor).astype(jnp.float32)
  if axis_name is not None:
    total, count = jax.lax.psum((total, count), axis_name)
  return total / jnp.maximum(count, 1.0)


def _check_temperature(temperature):
  """A positive float, or a traced scalar (not checkable under jit: passed through). A concrete 0-d float
  array (a learned temperature read outside jit) is checked as its value."""
  if isinstance(temperature, jax.core.Tracer):
    return temperature
  if (isinstance(temperature, (jax.Array, np.ndarray)) and temperature.ndim == 0
      and jnp.issubdtype(temperature.dtype, jnp.floating)):
    temperature = float(temperature)
  return _checks.check_float("temperature", temperature, low=0.0, low_open=True)


def _concrete_float(name: str, value, **bounds) -> float:
  """A concrete float in range: these hyper-parameters pick the computation, so they cannot be traced."""
  if isinstance(value, jax.core.Tracer):
    raise ValueError(f"{name} is a traced value; allowed: a concrete Python float (it selects the "
                     f"computation). Close over it or mark it static (jax.jit(..., static_argnames="
                     f"[{name!r}])).")
  return _checks.check_float(name, value, **bounds)


def _check_axis_bound(axis_name: str) -> None:
  """Fails clearly when ``axis_name`` is not an axis of an enclosing ``shard_map``/``pmap``."""
  try:
    jax.lax.axis_index(axis_name)
  except NameError:
    raise ValueError(f"axis_name={axis_name!r} is not bound here; allowed: the name of a mesh axis of "
                     "the enclosing jax.shard_map (or pmap), or None for a batch that is not sharded."
                     ) from None


def _check_pair(name1: str, z1, name2: str, z2) -> tuple[jax.Array, jax.Array]:
  """Two rank-2 ``[B, D]`` embedding arrays of the same shape (static checks, fine under jit)."""
  z1, z2 = jnp.asarray(z1), jnp.asarray(z2)
  for name, z in ((name1, z1), (name2, z2)):
    if z.ndim != 2:
      raise ValueError(f"{name} must have rank 2 [B, D], got shape {z.shape}; allowed: rank 2.")
    if z.shape[0] < 1 or z.shape[1] < 1:
      raise ValueError(f"{name} must have B >= 1 rows and D >= 1 columns, got shape {z.shape}.")
  if z1.shape != z2.shape:
    raise ValueError(f"{name2} has shape {z2.shape} but {name1} has shape {z1.shape}; allowed: "
                     f"the same shape {z1.shape}.")
  return z1, z2


def _check_margin(margin) -> float | None:
  """``None`` or a concrete m > 0 (it decides which negatives exist, so it cannot be traced)."""
  if margin is None:
    return None
  return _concrete_float("false_negative_margin", margin, low=0.0, low_open=True)


def _check_labels(labels, batch: int) -> jax.Array | None:
  """``None`` or an integer ``[B]`` array of class or source ids."""
  if labels is None:
    return None
  labels = jnp.asarray(labels)
  if labels.shape != (batch,):
    raise ValueError(f"labels has shape {labels.shape}; allowed: ({batch},), one id per item.")
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"labels has dtype {labels.dtype}; allowed: an integer dtype (class or source ids).")
  return labels


def _check_mask(mask, batch: int) -> jax.Array | None:
  """``None`` or a bool ``[B]`` array."""
  if mask is None:
    return None
  mask = jnp.asarray(mask)
  if mask.shape != (batch,):
    raise ValueError(f"mask has shape {mask.shape}; allowed: ({batch},), one entry per item.")
  if mask.dtype != jnp.bool_:
    raise ValueError(f"mask has dtype {mask.dtype}; allowed: bool.")
  return mask
