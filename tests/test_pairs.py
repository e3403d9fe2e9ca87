"""Tests for the two-view tasks' shared helpers: pair bank rows and the view Tail Batch Sampling gets."""

import jax
import jax.numpy as jnp
import numpy as np

from prosampler_jax import parallel
from prosampler_jax.tasks import _pairs


def test_pair_rows_are_unit_rows_whose_cosine_is_the_mean_of_the_views_cosines():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 6, 5)).astype(np.float32)
  rows = np.asarray(_pairs.pair_rows(jnp.asarray(z1), jnp.asarray(z2)))
  np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
  unit = lambda z: z / np.linalg.norm(z, axis=1, keepdims=True)
  np.testing.assert_allclose(rows @ rows.T, (unit(z1) @ unit(z1).T + unit(z2) @ unit(z2).T) / 2,
                             atol=1e-6)


def test_tail_sees_the_halves_in_the_banks_layout_other_samplers_the_bank():
  mesh = parallel.make_data_mesh()
  bank = np.random.default_rng(1).normal(size=(10, 16)).astype(np.float32)
  for layout in parallel.BANK_SHARDINGS:
    device_bank = parallel.put(bank, parallel.bank_sharding(mesh, layout, 16))
    assert _pairs.pair_sampler_view(device_bank, "proximity") is device_bank
    first, second = _pairs.pair_sampler_view(device_bank, "tail")
    np.testing.assert_array_equal(np.asarray(first), bank[:, :8])
    np.testing.assert_array_equal(np.asarray(second), bank[:, 8:])
    assert first.sharding == second.sharding == device_bank.sharding  # a split bank is not gathered
  host_first, host_second = _pairs.pair_sampler_view(bank, "tail")
  np.testing.assert_array_equal(host_second, bank[:, 8:])
  single = jax.device_put(bank, jax.devices()[2])  # the feeder's one-device snapshot stays put
  assert _pairs.pair_sampler_view(single, "tail")[0].devices() == {jax.devices()[2]}
