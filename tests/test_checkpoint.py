"""Tests for orbax checkpoints of the train state plus host-side loop state."""

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from prosampler_jax import checkpoint


def _state(value: float):
  model = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.BatchNorm(4, rngs=nnx.Rngs(0)))
  _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return {"params": params, "batch_stats": stats, "bank": jnp.full((5, 2), value),
          "step": jnp.int32(value)}


def test_round_trip_keeps_every_item_and_only_the_last_k(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), max_to_keep=2)
  host = {"batches": np.arange(6, dtype=np.int32).reshape(2, 3), "empty": np.zeros((0, 3), np.int32),
          "sampler/covered": np.array([True, False, True])}
  for step in (1, 2, 3):
    ckpt.save(step, _state(float(step)), host, {"digest": f"d{step}", "window": [0, step]})
  assert ckpt.latest_step() == 3
  assert sorted(os.listdir(tmp_path)) == ["2", "3"]  # complete steps only: no temporary directories left
  state, restored_host, meta = ckpt.restore(3, checkpoint.abstract_like(_state(0.0)))
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(_state(3.0)), strict=True):
    np.testing.assert_array_equal(a, b)
  assert isinstance(state["params"], nnx.State)
  assert set(restored_host) == {"batches", "sampler/covered"}  # empty arrays are left out
  np.testing.assert_array_equal(restored_host["sampler/covered"], host["sampler/covered"])
  assert meta == {"digest": "d3", "window": [0, 3]}
