"""Tests for the optimisers: which parameters take weight decay / LARS adaptation, and config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from experiments.configs import default
from prosampler_jax import optim


def config_with(**optimizer):
  config = default.get_config()
  config.optimizer.update(optimizer)
  return config


def params_and_zero_grads():
  """A conv kernel, a dense kernel and bias, and a BatchNorm scale/bias — as NNX splits them."""
  model = nnx.Sequential(nnx.Conv(2, 3, (3, 3), rngs=nnx.Rngs(0)), nnx.BatchNorm(3, rngs=nnx.Rngs(0)),
                         nnx.Linear(3, 4, rngs=nnx.Rngs(1)))
  _, params, _ = nnx.split(model, nnx.Param, ...)
  params = jax.tree.map(lambda p: p + 1.0, params)  # BatchNorm starts at scale 1, bias 0: make all ≠ 0
  return params, jax.tree.map(jnp.zeros_like, params)


def leaves_by_name(tree):
  return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def test_decay_mask_selects_kernels_only():
  params, _ = params_and_zero_grads()
  mask = leaves_by_name(optim.decay_mask(params))
  assert {k for k, v in mask.items() if v} == {k for k in mask if "kernel" in k}
  assert any("scale" in k for k in mask) and any("bias" in k for k in mask)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_weight_decay_moves_kernels_and_never_biases_or_norm_scales(name):
  """With zero gradients only weight decay acts: kernels shrink, biases and BN parameters stay put."""
  params, zeros = params_and_zero_grads()
  tx = optim.make_optimizer(config_with(name=name, weight_decay=0.1, learning_rate=0.1), 10)
  updates, _ = tx.update(zeros, tx.init(params), params)
  for key, update in leaves_by_name(updates).items():
    moved = float(jnp.abs(update).max())
    if "kernel" in key:
      assert moved > 0, key
    else:
      assert moved == 0, key


def test_lars_adapts_kernels_by_trust_ratio_and_leaves_biases_plain_sgd():
  params, _ = params_and_zero_grads()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  tx = optim.make_optimizer(config_with(name="lars", weight_decay=0.0, learning_rate=1.0, momentum=0.0), 10)
  updates = leaves_by_name(tx.update(grads, tx.init(params), params)[0])
  param_leaves = leaves_by_name(params)
  for key, update in updates.items():
    if "kernel" in key:  # trust ratio 0.001 · ‖w‖ / ‖g‖ scales the step
      ratio = 0.001 * jnp.linalg.norm(param_leaves[key]) / jnp.linalg.norm(jnp.full_like(update, 0.5))
      np.testing.assert_allclose(update, -0.5 * ratio, rtol=1e-5)
    else:
      np.testing.assert_allclose(update, -0.5, rtol=1e-6)


def test_cosine_schedule_warms_up_then_decays_to_zero():
  lr = optim.learning_rate_schedule(config_with(schedule="cosine", warmup_steps=10, learning_rate=1.0), 100)
  assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(1.0) and float(lr(100)) == pytest.approx(0)
  assert float(optim.learning_rate_schedule(config_with(), 100)(50)) == pytest.approx(1e-3)


@pytest.mark.parametrize("key, value", [("name", "adagrad"), ("schedule", "linear"), ("learning_rate", -1.0),
                                        ("learning_rate", 0.0), ("weight_decay", -0.1), ("momentum", 1.0),
                                        ("warmup_steps", -1)])
def test_bad_values_name_the_config_key(key, value):
  with pytest.raises(ValueError, match=f"config.optimizer.{key}"):
    optim.make_optimizer(config_with(**{key: value}), 10)
