"""Tests for the data-parallel helpers (4 simulated CPU devices, set in conftest)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import losses
from prosampler_jax import parallel


def test_shard_map_loss_and_rows_equals_the_global_loss():
  mesh = parallel.make_data_mesh()
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 16, 5)).astype(np.float32)

  def loss_and_rows(outputs, *, axis_name):
    a, b = outputs
    return losses.nt_xent(a, b, axis_name=axis_name), a + b

  fn = jax.jit(parallel.shard_map_loss_and_rows(loss_and_rows, mesh))
  loss, rows = fn(parallel.to_global((z1, z2), mesh))
  np.testing.assert_allclose(loss, losses.nt_xent(z1, z2), rtol=1e-5)
  np.testing.assert_allclose(rows, z1 + z2, atol=1e-6)
  assert rows.sharding.spec == parallel.data_sharded(mesh).spec


def test_local_rows_keep_values_paired_whatever_the_device_order():
  """A mesh whose device order is not the natural one: rows that travelled together stay together."""
  devices = jax.devices()
  mesh = parallel.make_data_mesh([devices[2], devices[0], devices[3], devices[1]])
  features = np.arange(16, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
  index = np.arange(16, dtype=np.int32)
  out_features, out_index = jax.jit(lambda f, i: (f * 2, i))(*parallel.to_global((features, index), mesh))
  local_features, local_index = parallel.local_rows(out_features), parallel.local_rows(out_index)
  np.testing.assert_array_equal(local_features[:, 0], 2 * local_index)
  np.testing.assert_array_equal(np.sort(local_index), index)
  assert parallel.gather_processes({"a": local_index})["a"] is local_index  # one process: identity


def test_to_global_and_to_host_round_trip_a_pytree():
  mesh = parallel.make_data_mesh()
  tree = {"x": np.arange(8, dtype=np.float32), "y": {"z": np.ones((8, 2), np.int32)}}
  glob = parallel.to_global(tree, mesh)
  assert glob["y"]["z"].sharding.spec == parallel.data_sharded(mesh).spec
  np.testing.assert_array_equal(parallel.to_host(glob["x"]), tree["x"])
  np.testing.assert_array_equal(parallel.to_host(jnp.asarray(glob["y"]["z"])), tree["y"]["z"])


def test_check_global_batch():
  mesh = parallel.make_data_mesh()
  assert parallel.check_global_batch("config.batch_size", 64, mesh) == 16
  with pytest.raises(ValueError, match="config.batch_size=66"):
    parallel.check_global_batch("config.batch_size", 66, mesh)


def test_device_snapshot_is_a_copy_on_one_device_for_any_layout():
  """The sampler's copy lives on one device (no program spans devices from its thread), whether the
  bank is replicated or split, and it survives the original being donated."""
  mesh = parallel.make_data_mesh()
  bank = np.random.default_rng(0).normal(size=(10, 8)).astype(np.float32)
  for layout in parallel.BANK_SHARDINGS:
    original = parallel.put(bank, parallel.bank_sharding(mesh, layout, 8))
    snapshot = parallel.device_snapshot(original)
    assert isinstance(snapshot, jax.Array) and snapshot.devices() == {jax.local_devices()[0]}
    original.delete()  # as the donating train step does: the copy must survive
    np.testing.assert_array_equal(np.asarray(snapshot), bank)


def test_bank_sharding_rejects_unknown_layouts_and_widths_that_do_not_split():
  mesh = parallel.make_data_mesh()
  with pytest.raises(ValueError, match="config.bank_sharding='rows'.*'replicated', 'data'"):
    parallel.bank_sharding(mesh, "rows", 8)
  with pytest.raises(ValueError, match="config.bank_sharding='data'.*10 columns over 4 devices"):
    parallel.bank_sharding(mesh, "data", 10)
  assert parallel.bank_sharding(mesh, "replicated", 10).is_fully_replicated
