"""Tests for prosampler_jax.models: shapes, parameter counts, BatchNorm modes, functional NNX path."""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import models
from prosampler_jax.models import resnet


def _num_params(module: nnx.Module) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _images(batch: int, size: int, channels: int, seed: int = 0) -> jax.Array:
  # Host RNG: every new shape of jax.random.normal is another (slow, on CPU) XLA compile.
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(batch, size, size, channels)).astype(np.float32))


@pytest.fixture(scope="module")
def digits_model() -> models.ContrastiveModel:
  return models.make_model("small_cnn", in_channels=1, width=8, projection_dim=16, seed=3)


@pytest.mark.parametrize("constructor, cifar_stem, expected", [
    (models.ResNet18, False, 11_176_512),  # torchvision resnet18 (11,689,512) minus its 512x1000 fc
    (models.ResNet18, True, 11_168_832),   # 3x3 stem: 7*7*3*64 - 3*3*3*64 = 7,680 fewer
    (models.ResNet50, False, 23_508_032),  # torchvision resnet50 (25,557,032) minus its 2048x1000 fc
])
def test_resnet_parameter_counts_match_torchvision(constructor, cifar_stem, expected):
  encoder = nnx.eval_shape(lambda: constructor(cifar_stem=cifar_stem, rngs=nnx.Rngs(0)))
  assert _num_params(encoder) == expected


@pytest.mark.parametrize("encoder, in_channels, cifar_stem, size, num_features", [
    ("resnet18", 3, True, 32, 512), ("resnet18", 3, False, 64, 512), ("resnet50", 3, True, 32, 2048),
    ("resnet50", 1, False, 96, 2048), ("small_cnn", 1, False, 8, 128),
])
def test_output_shapes_and_dtypes(encoder, in_channels, cifar_stem, size, num_features):
  # Traced abstractly (no compile), so the full-size ResNet-50 stays cheap on CPU.
  model = nnx.eval_shape(lambda: models.make_model(encoder, in_channels=in_channels,
                                                   cifar_stem=cifar_stem, projection_dim=64))
  graphdef, state = nnx.split(model)
  x = jax.ShapeDtypeStruct((2, size, size, in_channels), jnp.float32)
  features, projections = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state, x)
  assert model.num_features == num_features
  assert features.shape == (2, num_features) and features.dtype == jnp.float32
  assert projections.shape == (2, 64) and projections.dtype == jnp.float32


def _apply(module: nnx.Module, x: jax.Array) -> jax.Array:
  """One jitted call (a single compile is much cheaper on CPU than op-by-op eager dispatch)."""
  graphdef, state = nnx.split(module)
  return jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))(state, x)


# Widths 8 and one input channel share kernel shapes with the small CNN: the initialisers' per-shape
# compiles (the slow part on CPU) are reused.
@pytest.mark.parametrize("stage_sizes, block, cifar_stem, size, spatial", [
    ((1, 1), "basic", False, 16, 2),      # 16 → stem conv 8 → max-pool 4 → stage 2 halves to 2
    ((2,), "bottleneck", True, 8, 8),     # CIFAR stem keeps the resolution
])
def test_tiny_resnet_runs_and_blocks_start_as_identity(stage_sizes, block, cifar_stem, size, spatial):
  encoder = resnet.ResNet(stage_sizes, block, in_channels=1, cifar_stem=cifar_stem, width=8,
                          rngs=nnx.Rngs(0))
  expansion = 1 if block == "basic" else 4
  num_features = 8 * 2**(len(stage_sizes) - 1) * expansion
  assert encoder.num_features == num_features
  encoder.eval()
  x = _images(3, size, 1)

  def trunk(module, x):  # the encoder before global pooling
    x = nnx.relu(module.stem_norm(module.stem_conv(x)))
    x = x if module.cifar_stem else nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for b in module.blocks:
      x = b(x)
    return x

  graphdef, state = nnx.split(encoder)
  features, maps = jax.jit(lambda s, x: (nnx.merge(graphdef, s)(x), trunk(nnx.merge(graphdef, s), x)))(
      state, x)
  assert maps.shape == (3, spatial, spatial, num_features)
  np.testing.assert_allclose(features, maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
  assert np.isfinite(np.asarray(features)).all()
  last_norms = [b.norm2 if block == "basic" else b.norm3 for b in encoder.blocks]
  assert all(np.all(np.asarray(n.scale[...]) == 0.0) for n in last_norms)
  # The zero-initialised last BN scale makes a block without projection the identity on ReLU outputs.
  identity_block = encoder.blocks[0] if block == "basic" else encoder.blocks[1]
  assert identity_block.shortcut is None and encoder.blocks[-1 if block == "basic" else 0].shortcut
  channels = 8 * expansion
  x = jnp.maximum(_images(2, 4, channels, seed=1), 0.0)
  np.testing.assert_allclose(_apply(identity_block, x), x, atol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_features():
  x = _images(4, 8, 1)
  # Same shapes as digits_model (width 8, projection 16) so the initialisers' compiles are reused.
  full = models.make_model("small_cnn", in_channels=1, width=8, projection_dim=16, seed=1)
  half = models.make_model("small_cnn", in_channels=1, width=8, projection_dim=16, seed=1,
                           dtype=jnp.bfloat16)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(nnx.state(half, nnx.Param)))
  assert half.encoder.block1.conv.dtype == jnp.bfloat16
  features_half, _ = _apply(half, x)
  features_full, _ = _apply(full, x)
  assert features_half.dtype == jnp.float32
  np.testing.assert_allclose(features_half, features_full, rtol=0.1, atol=0.1)
  assert not np.array_equal(np.asarray(features_half), np.asarray(features_full))


def test_batchnorm_train_uses_batch_stats_and_updates_running_averages(digits_model):
  model = nnx.clone(digits_model)
  x = _images(8, 8, 1) * 3.0 + 1.0
  before = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  model.train()
  train_features, _ = model(x)
  after_train = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  model.eval()
  eval_features, _ = model(x)
  after_eval = jax.tree.map(np.asarray, nnx.state(model, nnx.BatchStat))
  assert not np.allclose(train_features, eval_features)
  changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.allclose(a, b), before, after_train))
  assert len(changed) == 8 and all(changed)  # mean and var of all four BatchNorm layers
  unchanged = jax.tree.leaves(jax.tree.map(np.array_equal, after_train, after_eval))
  assert all(unchanged)


def test_functional_split_merge_jit_matches_eager(digits_model):
  model = nnx.clone(digits_model)
  x = _images(6, 8, 1, seed=2)

  # graphdef is a static argument: it carries the train/eval flags, so a closure over it would let jit
  # reuse the program traced for the other mode.
  @jax.jit(static_argnums=0)
  def forward(graphdef, params, batch_stats, x):
    merged = nnx.merge(graphdef, params, batch_stats)
    outputs = merged(x)
    return outputs, nnx.state(merged, nnx.BatchStat)

  for mode in ("eval", "train"):
    getattr(model, mode)()
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    (jit_features, jit_projections), jit_stats = forward(graphdef, params, batch_stats, x)
    eager_features, eager_projections = model(x)
    np.testing.assert_allclose(jit_features, eager_features, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jit_projections, eager_projections, rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree.leaves(jit_stats), jax.tree.leaves(nnx.state(model, nnx.BatchStat))):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    if mode == "eval":  # (in train mode a second call would update the running averages again)
      np.testing.assert_allclose(model.encode(x), eager_features, rtol=1e-4, atol=1e-4)


def test_jitted_gradient_step_through_contrastive_model_is_finite(digits_model):
  model = nnx.clone(digits_model)
  model.train()
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  view1 = _images(8, 8, 1, seed=4)
  view2 = view1 + 0.1 * _images(8, 8, 1, seed=5)

  def loss_fn(params, batch_stats, view1, view2):
    # copy=True: without it merge reuses the BatchStat variables jit created outside this grad trace,
    # and BatchNorm's running-average update fails with TraceContextError (flax 0.12).
    merged = nnx.merge(graphdef, params, batch_stats, copy=True)
    _, z = merged(jnp.concatenate([view1, view2]))
    z = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
    logits = z[:8] @ z[8:].T / 0.5  # InfoNCE between the two views; labels on the diagonal
    loss = jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.diag(logits))
    return loss, nnx.state(merged, nnx.BatchStat)

  @jax.jit
  def step(params, batch_stats, view1, view2):
    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, view1, view2)
    new_params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    return loss, grads, new_params, new_stats

  loss, grads, new_params, new_stats = step(params, batch_stats, view1, view2)
  grad_leaves = [np.asarray(g) for g in jax.tree.leaves(grads)]
  assert np.isfinite(float(loss))
  assert all(np.isfinite(g).all() for g in grad_leaves)
  assert sum(float(np.abs(g).sum()) for g in grad_leaves) > 0.0
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(batch_stats), jax.tree.leaves(new_stats)))
  new_loss, *_ = step(new_params, new_stats, view1, view2)
  assert np.isfinite(float(new_loss))


@pytest.mark.parametrize("num_layers, hidden, expected", [
    (1, None, 32 * 16 + 16),
    (2, None, 32 * 32 + 2 * 32 + 32 * 16 + 16),  # hidden width defaults to in_features
    (3, 16, 32 * 16 + 2 * 16 + 16 * 16 + 2 * 16 + 16 * 16 + 16),
])
def test_projection_head_layers(num_layers, hidden, expected):
  head = models.ProjectionHead(32, hidden_features=hidden, out_features=16, num_layers=num_layers,
                               rngs=nnx.Rngs(0))
  assert _num_params(head) == expected
  assert _apply(head, jnp.ones((4, 32))).shape == (4, 16)


def test_make_model_is_deterministic_in_seed():
  states = [nnx.state(models.make_model("small_cnn", in_channels=1, width=8, projection_dim=16,
                                        seed=s), nnx.Param) for s in (7, 7, 8)]
  leaves = [jax.tree.leaves(s) for s in states]
  assert all(np.array_equal(a, b) for a, b in zip(leaves[0], leaves[1]))
  assert not all(np.array_equal(a, b) for a, b in zip(leaves[0], leaves[2]))


@pytest.mark.parametrize("build, match", [
    (lambda: models.make_model("vit", in_channels=3), "encoder.*small_cnn.*resnet18.*resnet50"),
    (lambda: models.make_model("small_cnn", in_channels=0), "in_channels"),
    (lambda: models.make_model("small_cnn", in_channels=1, width=0), "width"),
    (lambda: models.make_model("small_cnn", in_channels=1, seed=-1), "seed"),
    (lambda: models.make_model("small_cnn", in_channels=1, projection_dim=0), "projection_dim"),
    (lambda: models.make_model("small_cnn", in_channels=1, projection_hidden=-3), "projection_hidden"),
    (lambda: resnet.ResNet((2, 2), "wide", rngs=nnx.Rngs(0)), "block"),
    (lambda: resnet.ResNet((), "basic", rngs=nnx.Rngs(0)), "stage_sizes"),
    (lambda: resnet.ResNet((2, 0), "basic", rngs=nnx.Rngs(0)), r"stage_sizes\[1\]"),
    (lambda: models.ProjectionHead(8, num_layers=0, rngs=nnx.Rngs(0)), "num_layers"),
    (lambda: models.ProjectionHead(8, hidden_features=0, rngs=nnx.Rngs(0)), "hidden_features"),
])
def test_bad_arguments_raise(build, match):
  with pytest.raises(ValueError, match=match):
    build()


def test_wrong_input_shape_raises(digits_model):
  with pytest.raises(ValueError, match="x must be NHWC"):
    digits_model(jnp.ones((2, 8, 8, 3)))
  with pytest.raises(ValueError, match="x must be NHWC"):
    digits_model.encode(jnp.ones((2, 8, 8)))


def test_conv_initializer_is_he_normal_fan_out():
  from prosampler_jax.models import _initializers  # pylint: disable=g-import-not-at-top
  kernel = np.asarray(_initializers.he_normal_fan_out(jax.random.key(0), (3, 3, 16, 64)))
  assert kernel.shape == (3, 3, 16, 64) and kernel.dtype == np.float32
  assert abs(kernel.std() - np.sqrt(2.0 / (3 * 3 * 64))) < 0.05 * np.sqrt(2.0 / (3 * 3 * 64))
  assert abs(kernel.mean()) < 0.01
