"""Tests for the two-view tasks' shared helpers: pair bank rows and the view Tail Batch Sampling gets."""

import jax
import jax.numpy as jnp
import numpy as np

from prosampler_jax.tasks import _pairs


def test_pair_rows_are_unit_rows_whose_cosine_is_the_mean_of_the_views_cosines():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 6, 5)).astype(np.float32)
  rows = np.asarray(_pairs.pair_rows(jnp.asarray(z1), jnp.asarray(z2)))
  np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
  unit = lambda z: z / np.linalg.norm(z, axis=1, keepdims=True)
  np.testing.assert_allclose(rows @ rows.T, (unit(z1) @ unit(z1).T + unit(z2) @ unit(z2).T) / 2,
                             atol=1e-6)


def test_tail_sees_the_halves_on_the_banks_device_other_samplers_the_bank():
  bank = np.random.default_rng(1).normal(size=(10, 16)).astype(np.float32)
  single = jax.device_put(bank, jax.devices()[2])  # the feeder's one-device snapshot stays put
  assert _pairs.pair_sampler_view(single, "proximity") is single
  first, second = _pairs.pair_sampler_view(single, "tail")
  np.testing.assert_array_equal(np.asarray(first), bank[:, :8])
  np.testing.assert_array_equal(np.asarray(second), bank[:, 8:])
  assert first.devices() == second.devices() == {jax.devices()[2]}
  host_first, host_second = _pairs.pair_sampler_view(bank, "tail")
  np.testing.assert_array_equal(host_first, bank[:, :8])
  np.testing.assert_array_equal(host_second, bank[:, 8:])
