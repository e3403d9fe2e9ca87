"""Tests for prosampler_jax.losses against a float64 NumPy transcription of DESIGN §3.1."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from prosampler_jax import losses

SIMCLR_FAMILY = ("nt_xent", "dcl", "hcl")
ALL_LOSSES = SIMCLR_FAMILY + ("info_nce", "graphcl")


# ---------------------------------------------------------------------------------------------------
# Reference: a direct float64 transcription of the DESIGN definitions, one anchor at a time.


def _ref_normalize(z):
  z = np.asarray(z, np.float64)
  return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def _is_negative(anchor, positive, candidate, margin, same_label):
  """DESIGN §3.1's false-negative rules for one (anchor, candidate) pair of another item."""
  if same_label:
    return False
  return margin is None or anchor @ candidate <= margin * (anchor @ positive)


def _ref_simclr(z1, z2, temperature, kind, tau_plus=0.1, beta=1.0, mask=None, stats=None,
                margin=None, labels=None):
  """Mean over the 2B anchors {u_i, v_i} of −log(pos / (pos + Ng)), Ng per nt_xent / dcl / hcl."""
  u, v = _ref_normalize(z1), _ref_normalize(z2)
  keep = np.ones(len(u), bool) if mask is None else np.asarray(mask, bool)
  items = np.flatnonzero(keep)
  same = lambda i, j: labels is not None and labels[i] == labels[j]
  per_anchor = []
  for i in items:
    for anchor, positive in ((u[i], v[i]), (v[i], u[i])):
      negatives = [x for j in items if j != i for x in (u[j], v[j])
                   if _is_negative(anchor, positive, x, margin, same(i, j))]
      n = len(negatives)
      s = np.array([anchor @ x for x in negatives]) / temperature
      pos = np.exp(anchor @ positive / temperature)
      neg = np.exp(s)
      if kind == "nt_xent":
        ng = neg.sum()
      else:
        w = np.exp(beta * s) if kind == "hcl" else np.ones(n)
        r = (w * neg).sum() / w.mean() if n else 0.0
        debiased = (r - tau_plus * n * pos) / (1 - tau_plus)
        floor = n * np.exp(-1 / temperature)
        if stats is not None:
          stats["clamped" if floor > debiased else "unclamped"] += 1
        ng = max(debiased, floor)
      per_anchor.append(-np.log(pos / (pos + ng)))
  return float(np.mean(per_anchor)) if per_anchor else 0.0


def _ref_info_nce(q, k, temperature, mask=None, negatives=None, margin=None, labels=None):
  """Mean over anchors q_i of the cross-entropy of row i of s(q, [k; negatives]) against label i."""
  q, k = _ref_normalize(q), _ref_normalize(k)
  hard = [] if negatives is None else _ref_normalize(negatives)
  keep = np.ones(len(q), bool) if mask is None else np.asarray(mask, bool)
  items = np.flatnonzero(keep)
  same = lambda i, j: labels is not None and labels[i] == labels[j]
  per_anchor = []
  for i in items:
    candidates = ([k[i]] + [k[j] for j in items if j != i and _is_negative(q[i], k[i], k[j], margin,
                                                                         same(i, j))]
                  + [hard[j] for j in items if negatives is not None
                     and _is_negative(q[i], k[i], hard[j], margin, False)])
    logits = np.array([q[i] @ c for c in candidates]) / temperature
    target = q[i] @ k[i] / temperature
    per_anchor.append(np.log(np.exp(logits).sum()) - target)
  return float(np.mean(per_anchor)) if per_anchor else 0.0


def _ref_graphcl(x, x_aug, temperature, mask=None, margin=None, labels=None):
  """GraphCL's loss_cal (unsupervised_TU/gsimclr.py) in matrix form: exp-cosine matrix of x against
  x_aug, the diagonal over the off-diagonal row sum, −log, mean; masked items are dropped first. (The
  off-diagonal entries are summed directly: GraphCL's ``row sum − diagonal`` cancels to 0 in float64 at
  t = 0.01, where the positive term dominates the row.)"""
  keep = np.ones(len(x), bool) if mask is None else np.asarray(mask, bool)
  if margin is not None or labels is not None:  # per anchor, over the negatives the rules keep
    u, v = _ref_normalize(x), _ref_normalize(x_aug)
    items = np.flatnonzero(keep)
    per_anchor = []
    for i in items:
      kept = [v[j] for j in items if j != i and _is_negative(
          u[i], v[i], v[j], margin, labels is not None and labels[i] == labels[j])]
      per_anchor.append(np.log(np.exp(np.array([u[i] @ c for c in kept]) / temperature).sum())
                        - u[i] @ v[i] / temperature if kept else 0.0)
    return float(np.mean(per_anchor)) if per_anchor else 0.0
  x, x_aug = np.asarray(x, np.float64)[keep], np.asarray(x_aug, np.float64)[keep]
  if len(x) < 2:
    return 0.0
  norms = np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x_aug, axis=1))
  sim = np.exp(np.einsum("ik,jk->ij", x, x_aug) / norms / temperature)
  pos = np.diag(sim)
  negatives = np.where(np.eye(len(x), dtype=bool), 0.0, sim).sum(axis=1)
  return float(-np.log(pos / negatives).mean())


def _reference(name, z1, z2, temperature, mask=None, **kwargs):
  if name == "graphcl":
    return _ref_graphcl(z1, z2, temperature, mask, **kwargs)
  if name == "info_nce":
    return _ref_info_nce(z1, z2, temperature, mask, **kwargs)
  return _ref_simclr(z1, z2, temperature, name, mask=mask, **kwargs)


def _views(batch, dim, seed, noise=0.5):
  """Two correlated views: z2 = z1 + noise (positives more similar than negatives)."""
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=(batch, dim)).astype(np.float32)
  z2 = (z1 + noise * rng.normal(size=(batch, dim))).astype(np.float32)
  return z1, z2


# ---------------------------------------------------------------------------------------------------
# Values.


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("dim", [3, 32])
@pytest.mark.parametrize("batch", [2, 5, 16])
def test_matches_float64_reference(batch, dim, temperature):
  z1, z2 = _views(batch, dim, seed=batch * 100 + dim)
  for name in ALL_LOSSES:
    got = getattr(losses, name)(z1, z2, temperature=temperature)
    assert got.dtype == jnp.float32 and got.shape == ()
    want = _reference(name, z1, z2, temperature)
    np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=5e-5, err_msg=name)
  # β = 0 turns HCL's reweighting off: it is DCL.
  np.testing.assert_allclose(
      float(losses.hcl(z1, z2, temperature=temperature, beta=0.0)),
      float(losses.dcl(z1, z2, temperature=temperature)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("tau_plus, beta", [(0.0, 0.5), (0.3, 2.0), (0.9, 1.0)])
def test_dcl_hcl_hyperparameters_and_both_clamp_branches(tau_plus, beta):
  # Mixed data: some items' views nearly coincide (Σneg − τ⁺·N·pos < N·e^(−1/t): clamped), others
  # are unrelated (not clamped); at t = 0.2 both branches of the max occur in one batch.
  rng = np.random.default_rng(7)
  z1 = rng.normal(size=(16, 32)).astype(np.float32)
  z2 = rng.normal(size=(16, 32)).astype(np.float32)
  z2[:8] = z1[:8] + 0.05 * rng.normal(size=(8, 32)).astype(np.float32)
  stats = {"clamped": 0, "unclamped": 0}
  for name in ("dcl", "hcl"):
    kwargs = {"beta": beta} if name == "hcl" else {}
    got = getattr(losses, name)(z1, z2, temperature=0.2, tau_plus=tau_plus, **kwargs)
    want = _ref_simclr(z1, z2, 0.2, name, tau_plus=tau_plus, beta=beta, stats=stats)
    np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=5e-5, err_msg=name)
  if tau_plus > 0:
    assert stats["clamped"] > 0 and stats["unclamped"] > 0, stats


@pytest.mark.parametrize("temperature", [0.02, 0.05, 0.07])
def test_dcl_hcl_take_the_official_clamp_where_the_corrected_sum_is_not_positive(temperature):
  # At low t the positive dominates: Σneg − τ⁺·N·pos ≤ 0 for every anchor, so the official code uses
  # exactly N·e^(−1/t) and the loss is ~1e-15 (not a floor proportional to Σneg), with ~no gradient.
  z1, z2 = _views(16, 32, seed=5, noise=0.01)
  stats = {"clamped": 0, "unclamped": 0}
  for name in ("dcl", "hcl"):
    value, grads = _loss_and_grads(name, z1, z2, temperature=temperature)
    want = _ref_simclr(z1, z2, temperature, name, stats=stats)
    assert abs(float(value) - want) <= 1e-12, (name, float(value), want)
    assert all(float(jnp.max(jnp.abs(g))) <= 1e-9 for g in grads), name
  assert stats["unclamped"] == 0 and stats["clamped"] == 2 * 2 * 16, stats


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_the_compiled_loss_holds_no_batch_sized_constant(name):
  # Masks must come from iota comparisons: a NumPy [2B, 2B] table would be embedded in the program
  # (1 GiB at B = 16k) and make compiling slow. The program's text must not grow with B².
  def program_size(batch):
    z = jnp.zeros((batch, 8), jnp.float32)
    fn = functools.partial(getattr(losses, name), temperature=0.5)
    closed = jax.make_jaxpr(jax.value_and_grad(fn))(z, z)
    const_bytes = sum(np.asarray(c).nbytes for c in closed.consts)
    return const_bytes, len(jax.jit(jax.value_and_grad(fn)).lower(z, z).as_text())

  small_consts, small_text = program_size(8)
  large_consts, large_text = program_size(512)
  assert large_consts <= small_consts + 64, (small_consts, large_consts)
  assert large_text < 1.5 * small_text, (small_text, large_text)


def test_log_space_beyond_float32_exp_range():
  # t = 0.01: e^(s/t) reaches e^100 (HCL: e^200), past float32's e^88; only log space survives.
  z1, z2 = _views(16, 32, seed=13, noise=0.05)
  for name in ALL_LOSSES:
    value, grads = _loss_and_grads(name, z1, z2, temperature=0.01)
    want = _reference(name, z1, z2, 0.01)
    np.testing.assert_allclose(float(value), want, rtol=1e-4, atol=1e-4, err_msg=name)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads), name


def test_jit_matches_eager_and_accepts_bfloat16():
  z1, z2 = _views(5, 32, seed=3)
  for name in ALL_LOSSES:
    fn = functools.partial(getattr(losses, name), temperature=0.05)
    eager = fn(z1, z2)
    np.testing.assert_allclose(float(jax.jit(fn)(z1, z2)), float(eager), rtol=1e-6)
    b1, b2 = jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16)
    got = fn(b1, b2)
    assert got.dtype == jnp.float32
    # Computed in float32 from the bf16-rounded inputs.
    want = _reference(name, np.asarray(b1, np.float32), np.asarray(b2, np.float32), 0.05)
    np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=5e-5, err_msg=name)


# ---------------------------------------------------------------------------------------------------
# Gradients.


def _loss_and_grads(name, z1, z2, **kwargs):
  return jax.value_and_grad(functools.partial(getattr(losses, name), **kwargs), argnums=(0, 1))(z1, z2)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_gradients_finite_at_low_temperature_with_near_duplicates(name):
  rng = np.random.default_rng(11)
  z1 = rng.normal(size=(16, 32)).astype(np.float32)
  z1[1] = z1[0]  # two items with identical embeddings (a false negative at distance 0)
  z1[2] = 0.0  # an all-zero row (normalisation eps)
  z2 = (z1 + 1e-4 * rng.normal(size=z1.shape)).astype(np.float32)
  z2[3] = z1[3]  # exact positive pair
  mask = np.ones(16, bool)
  mask[5] = False
  for kwargs in ({}, {"mask": mask}):
    value, grads = _loss_and_grads(name, z1, z2, temperature=0.05, **kwargs)
    assert np.isfinite(float(value))
    for g in grads:
      assert np.all(np.isfinite(np.asarray(g))), (name, kwargs)
  # bf16 inputs give finite bf16 gradients too.
  _, grads = _loss_and_grads(name, jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16),
                             temperature=0.05)
  assert all(g.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(g, np.float32))) for g in grads)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_gradient_matches_finite_differences(name):
  z1, z2 = _views(5, 3, seed=21)
  fn = functools.partial(getattr(losses, name), temperature=0.5)
  _, (g1, g2) = jax.value_and_grad(fn, argnums=(0, 1))(z1, z2)
  rng = np.random.default_rng(22)
  d1, d2 = rng.normal(size=z1.shape), rng.normal(size=z2.shape)
  h = 1e-2
  numeric = (float(fn(z1 + h * d1, z2 + h * d2)) - float(fn(z1 - h * d1, z2 - h * d2))) / (2 * h)
  analytic = float(np.sum(np.asarray(g1) * d1) + np.sum(np.asarray(g2) * d2))
  np.testing.assert_allclose(analytic, numeric, rtol=1e-2, atol=1e-3)


# ---------------------------------------------------------------------------------------------------
# Masking.


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_mask_equals_dropping_the_rows(name):
  z1, z2 = _views(5, 3, seed=5)
  mask = np.array([False, True, False, True, False])  # k = 3 masked rows
  fn = getattr(losses, name)
  masked = float(fn(z1, z2, temperature=0.1, mask=mask))
  dropped = float(fn(z1[mask], z2[mask], temperature=0.1))
  np.testing.assert_allclose(masked, dropped, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(masked, _reference(name, z1, z2, 0.1, mask=mask), rtol=1e-5, atol=5e-5)
  # Masked rows receive no gradient.
  _, grads = _loss_and_grads(name, z1, z2, temperature=0.1, mask=mask)
  for g in grads:
    assert np.all(np.asarray(g)[~mask] == 0)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_all_masked_is_zero_and_single_item_is_finite(name):
  z1, z2 = _views(5, 3, seed=9)
  value, grads = _loss_and_grads(name, z1, z2, temperature=0.05, mask=np.zeros(5, bool))
  assert float(value) == 0.0
  assert all(np.all(np.asarray(g) == 0) for g in grads)
  # One unmasked item: no negatives at all (N = 0).
  one = np.array([False, True, False, False, False])
  value, grads = _loss_and_grads(name, z1, z2, temperature=0.05, mask=one)
  np.testing.assert_allclose(float(value), _reference(name, z1, z2, 0.05, mask=one), atol=1e-6)
  assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


# ---------------------------------------------------------------------------------------------------
# Sharded: shard_map over 4 simulated CPU devices equals the unsharded loss (value and gradient).


@pytest.fixture(scope="module")
def mesh():
  if jax.device_count() < 4:
    pytest.fail("tests/conftest.py should provide 4 simulated CPU devices")
  return jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_shard_map_matches_unsharded(mesh, name, use_mask):
  z1, z2 = _views(16, 3, seed=31)
  mask = np.ones(16, bool)
  if use_mask:
    mask[[1, 4, 5, 6, 7, 14]] = False  # uneven per shard; shard 1 (items 4-7) is entirely masked
  fn = functools.partial(getattr(losses, name), temperature=0.1)

  def local(a, b, m):
    return fn(a, b, mask=m if use_mask else None, axis_name="data")

  sharded = jax.shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P())
  put = functools.partial(jax.device_put, device=NamedSharding(mesh, P("data")))
  value, grads = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1)))(put(z1), put(z2), put(mask))
  want_value, want_grads = jax.value_and_grad(
      lambda a, b: fn(a, b, mask=mask if use_mask else None), argnums=(0, 1))(z1, z2)
  np.testing.assert_allclose(float(value), float(want_value), rtol=1e-5, atol=1e-5)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Bad input.


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan")])
def test_rejects_bad_temperature(name, temperature):
  z1, z2 = _views(3, 2, seed=0)
  with pytest.raises(ValueError, match="temperature"):
    getattr(losses, name)(z1, z2, temperature=temperature)


@pytest.mark.parametrize("name", ["dcl", "hcl"])
@pytest.mark.parametrize("tau_plus", [-0.1, 1.0, 1.5])
def test_rejects_bad_tau_plus(name, tau_plus):
  z1, z2 = _views(3, 2, seed=0)
  with pytest.raises(ValueError, match="tau_plus"):
    getattr(losses, name)(z1, z2, tau_plus=tau_plus)


def test_rejects_bad_beta():
  z1, z2 = _views(3, 2, seed=0)
  with pytest.raises(ValueError, match="beta"):
    losses.hcl(z1, z2, beta=-1.0)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_rejects_bad_shapes(name):
  fn = getattr(losses, name)
  first, second = ("q", "k") if name == "info_nce" else ("z1", "z2")
  z1, z2 = _views(4, 3, seed=0)
  with pytest.raises(ValueError, match=first):
    fn(z1[0], z2)  # rank 1
  with pytest.raises(ValueError, match=second):
    fn(z1, z2[None])  # rank 3
  with pytest.raises(ValueError, match=second):
    fn(z1, z2[:3])  # different B
  with pytest.raises(ValueError, match=second):
    fn(z1, z2[:, :2])  # different D
  with pytest.raises(ValueError, match="mask"):
    fn(z1, z2, mask=np.ones(3, bool))
  with pytest.raises(ValueError, match="mask"):
    fn(z1, z2, mask=np.ones(4, np.int32))
  # The checks use static shapes, so they also fire under jit.
  with pytest.raises(ValueError, match=second):
    jax.jit(fn)(z1, z2[:3])


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_a_traced_temperature_works_under_jit_and_grad(name):
  """U9 of the reliability audit: a temperature passed through jit failed with 'got JitTracer'."""
  fn = getattr(losses, name)
  z1, z2 = _views(6, 4, seed=1)
  traced = jax.jit(lambda t: fn(z1, z2, temperature=t))
  np.testing.assert_allclose(traced(0.3), fn(z1, z2, temperature=0.3), rtol=1e-6)
  assert np.isfinite(jax.grad(lambda t: fn(z1, z2, temperature=t))(0.3))  # e.g. a learned temperature
  # The same learned scalar read outside jit: a concrete 0-d array, checked as its value.
  np.testing.assert_allclose(fn(z1, z2, temperature=jnp.float32(0.3)), fn(z1, z2, temperature=0.3),
                             rtol=1e-6)
  np.testing.assert_allclose(fn(z1, z2, temperature=np.array(0.3)), fn(z1, z2, temperature=0.3), rtol=1e-6)
  with pytest.raises(ValueError, match=r"temperature=-0.3 is out of range"):
    fn(z1, z2, temperature=jnp.float32(-0.3))
  with pytest.raises(ValueError, match="temperature must be a finite real number"):
    fn(z1, z2, temperature=jnp.ones(2))


def test_traced_tau_plus_or_beta_and_an_unbound_axis_name_give_clear_errors():
  z1, z2 = _views(6, 4, seed=1)
  with pytest.raises(ValueError, match="tau_plus is a traced value; allowed: a concrete Python float"):
    jax.jit(lambda t: losses.dcl(z1, z2, tau_plus=t))(0.1)
  with pytest.raises(ValueError, match="beta is a traced value"):
    jax.jit(lambda b: losses.hcl(z1, z2, beta=b))(1.0)
  for name in ALL_LOSSES:  # outside shard_map: JAX's NameError named no argument
    with pytest.raises(ValueError, match="axis_name='data' is not bound here; allowed: the name of a mesh"):
      getattr(losses, name)(z1, z2, axis_name="data")


@pytest.mark.parametrize("use_mask", [False, True])
def test_info_nce_with_hard_negatives_matches_the_reference_sharded_or_not(mesh, use_mask):
  """Supervised SimCSE: candidates are every positive and every hard negative of the global batch."""
  q, k = _views(16, 5, seed=3)
  negatives = _views(16, 5, seed=4)[0]
  mask = np.ones(16, bool)
  if use_mask:
    mask[[0, 5, 6, 7, 4, 13]] = False  # shard 1 entirely masked
  used = mask if use_mask else None
  fn = functools.partial(losses.info_nce, temperature=0.05)
  value = fn(q, k, negatives=negatives, mask=used)
  np.testing.assert_allclose(float(value), _ref_info_nce(q, k, 0.05, used, negatives), rtol=1e-5)
  assert float(value) > float(fn(q, k, mask=used))  # more candidates, a larger cross-entropy

  def local(a, b, c, m):
    return fn(a, b, negatives=c, mask=m if use_mask else None, axis_name="data")

  sharded = jax.shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P())
  put = functools.partial(jax.device_put, device=NamedSharding(mesh, P("data")))
  got, grads = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1, 2)))(put(q), put(k), put(negatives),
                                                                       put(mask))
  want, want_grads = jax.value_and_grad(lambda a, b, c: fn(a, b, negatives=c, mask=used),
                                        argnums=(0, 1, 2))(q, k, negatives)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-5, atol=1e-5)
  for g, w in zip(grads, want_grads):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
  assert np.abs(np.asarray(grads[2])).sum() > 0  # the hard negatives get gradient
  with pytest.raises(ValueError, match="negatives has shape"):
    fn(q, k, negatives=negatives[:3])


# ---------------------------------------------------------------------------------------------------
# False-negative control: the relative margin and same-label exclusion (DESIGN §3.1).


def _labelled_views(batch=12, dim=6, seed=5):
  """Views with near-duplicate items (false negatives a margin should catch) and a few classes."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(3, dim))
  labels = np.arange(batch) % 3
  z1 = centres[labels] + 0.6 * rng.normal(size=(batch, dim))
  z2 = z1 + 0.8 * rng.normal(size=(batch, dim))
  return z1.astype(np.float32), z2.astype(np.float32), labels.astype(np.int32)


def _false_negative_options():
  return [dict(margin=0.9), dict(labels=True), dict(margin=0.6, labels=True), dict(margin=1.0)]


@pytest.mark.parametrize("options", _false_negative_options(), ids=str)
@pytest.mark.parametrize("name", ALL_LOSSES)
def test_false_negative_control_matches_the_float64_reference(name, options):
  z1, z2, labels = _labelled_views()
  kwargs = {"false_negative_margin": options.get("margin"),
            "labels": labels if options.get("labels") else None}
  ref_kwargs = {"margin": options.get("margin"), "labels": kwargs["labels"]}
  got = float(getattr(losses, name)(z1, z2, temperature=0.1, **kwargs))
  want = _reference(name, z1, z2, 0.1, **ref_kwargs)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  plain = _reference(name, z1, z2, 0.1)
  assert abs(want - plain) > 1e-3, "the options must change this batch's loss (else the test is idle)"


def _negative_count_reference(anchors, candidates, positive_of, margin):
  """How many (anchor, candidate) pairs of different items the margin rule keeps, in float64."""
  kept = 0
  for a, (anchor, owner) in enumerate(anchors):
    positive = candidates[positive_of[a]][0]
    for candidate, other in candidates:
      kept += other != owner and _is_negative(anchor, positive, candidate, margin, False)
  return kept


@pytest.mark.parametrize("margin", [0.5, 0.8, 0.95, 1.0])
def test_the_margin_drops_exactly_the_negatives_beyond_m_times_the_positive(margin):
  """Counted: the negatives the loss keeps are those with cos(a, c) ≤ m · cos(a, a⁺), no more, no less
  (including anchors whose positive cosine is negative, where m · cos⁺ ≥ cos⁺)."""
  z1, z2, _ = _labelled_views(batch=16, seed=9)
  z2[3] = -z1[3]  # a negative positive cosine: the rule is applied literally
  u, v = _ref_normalize(z1), _ref_normalize(z2)
  b = len(u)
  sim = losses._similarities((jnp.asarray(z1), jnp.asarray(z2)), (jnp.asarray(z1), jnp.asarray(z2)),
                             (1, 0), None, 0.1, None, false_negative_margin=margin)
  anchors = [(x, i) for x in (u, v) for i, x in enumerate(x)]
  candidates = [(x, i) for x in (u, v) for i, x in enumerate(x)]
  positive_of = [b + i for i in range(b)] + list(range(b))
  want = _negative_count_reference(anchors, candidates, positive_of, margin)
  assert int(sim.negative.sum()) == want
  assert want < 2 * b * (2 * b - 2), "some negatives must be dropped at this margin"


def test_same_label_exclusion_removes_classmates_and_nothing_else():
  z1, z2, _ = _labelled_views()
  distinct = np.arange(12, dtype=np.int32)
  for name in ALL_LOSSES:
    fn = functools.partial(getattr(losses, name), temperature=0.1)
    np.testing.assert_allclose(float(fn(z1, z2, labels=distinct)), float(fn(z1, z2)), rtol=1e-6)
    # One class: nobody is a negative, so every anchor's loss is −log(pos / pos) = 0 (or 0 by definition).
    assert float(fn(z1, z2, labels=np.zeros(12, np.int32))) == pytest.approx(0.0, abs=1e-6)
  # Supervised SimCSE's hard negatives stay negatives under the label rule.
  negatives = _labelled_views(seed=6)[0]
  one_class = losses.info_nce(z1, z2, negatives=negatives, temperature=0.1, labels=np.zeros(12, np.int32))
  np.testing.assert_allclose(float(one_class),
                             _ref_info_nce(z1, z2, 0.1, negatives=negatives, labels=np.zeros(12)),
                             rtol=1e-5)
  assert float(one_class) > 0.1


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_false_negative_control_sharded_equals_unsharded(mesh, name):
  z1, z2, labels = _labelled_views(batch=16, seed=11)
  mask = np.ones(16, bool)
  mask[[2, 9]] = False
  fn = functools.partial(getattr(losses, name), temperature=0.1, false_negative_margin=0.8)

  def local(a, b, m, lab):
    return fn(a, b, mask=m, labels=lab, axis_name="data")

  sharded = jax.shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P())
  put = functools.partial(jax.device_put, device=NamedSharding(mesh, P("data")))
  value, grads = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1)))(put(z1), put(z2), put(mask),
                                                                      put(labels))
  want_value, want_grads = jax.value_and_grad(
      lambda a, b: fn(a, b, mask=mask, labels=labels), argnums=(0, 1))(z1, z2)
  np.testing.assert_allclose(float(value), float(want_value), rtol=1e-5, atol=1e-5)
  for got, want in zip(grads, want_grads):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
  assert abs(float(want_value) - float(getattr(losses, name)(z1, z2, temperature=0.1, mask=mask))) > 1e-3


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_false_negative_options_reject_bad_values(name):
  z1, z2, labels = _labelled_views()
  fn = getattr(losses, name)
  for margin in (0.0, -1.0, float("nan")):
    with pytest.raises(ValueError, match="false_negative_margin"):
      fn(z1, z2, false_negative_margin=margin)
  with pytest.raises(ValueError, match=r"labels has shape \(3,\); allowed: \(12,\)"):
    fn(z1, z2, labels=labels[:3])
  with pytest.raises(ValueError, match="labels has dtype float32; allowed: an integer dtype"):
    fn(z1, z2, labels=labels.astype(np.float32))


def test_bind_takes_the_margin_from_the_config_but_never_labels():
  bound = losses.bind("nt_xent", {"temperature": 0.1, "false_negative_margin": 0.9, "labels": [1, 2]},
                      allowed=("nt_xent",))
  assert bound.keywords == {"temperature": 0.1, "false_negative_margin": 0.9}
  with pytest.raises(ValueError, match=r"config.loss.false_negative_margin=0 is out of range"):
    losses.bind("nt_xent", {"false_negative_margin": 0.0}, allowed=("nt_xent",))
