"""Tests for the data-parallel helpers (4 simulated CPU devices, set in conftest)."""

import jax
import numpy as np
import pytest

from prosampler_jax import losses
from prosampler_jax import parallel


def test_interleave_views_puts_each_devices_two_views_in_its_shard():
  view1 = np.arange(8)[:, None] * np.ones((1, 3))
  view2 = 100 + view1
  x = parallel.interleave_views(view1, view2, num_local_devices=4)
  shards = x.reshape(4, 4, 3)[:, :, 0]
  np.testing.assert_array_equal(shards, [[0, 1, 100, 101], [2, 3, 102, 103], [4, 5, 104, 105],
                                         [6, 7, 106, 107]])


def test_paired_loss_and_rows_equals_the_global_loss():
  mesh = parallel.make_data_mesh()
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 16, 5)).astype(np.float32)
  z = parallel.to_global(parallel.interleave_views(z1, z2, mesh.size), mesh)
  loss, rows = jax.jit(parallel.paired_loss_and_rows(losses.nt_xent, mesh))(z)
  np.testing.assert_allclose(loss, losses.nt_xent(z1, z2), rtol=1e-5)
  unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
  np.testing.assert_allclose(rows, unit(np.concatenate([unit(z1), unit(z2)], -1)), atol=1e-6)


def test_check_global_batch():
  mesh = parallel.make_data_mesh()
  assert parallel.check_global_batch("config.batch_size", 64, mesh) == 16
  with pytest.raises(ValueError, match="config.batch_size=66"):
    parallel.check_global_batch("config.batch_size", 66, mesh)
