"""Tests for the two-view tasks' shared helpers: pair bank rows and the view Tail Batch Sampling gets."""

import jax
import jax.numpy as jnp
import numpy as np

from prosampler_jax import normalize
from prosampler_jax import samplers
from prosampler_jax.tasks import _pairs


def test_pair_rows_are_unit_rows_whose_cosine_is_the_mean_of_the_views_cosines():
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(2, 6, 5)).astype(np.float32)
  rows = np.asarray(normalize.pair_rows(jnp.asarray(z1), jnp.asarray(z2)))
  np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-6)
  unit = lambda z: z / np.linalg.norm(z, axis=1, keepdims=True)
  np.testing.assert_allclose(rows @ rows.T, (unit(z1) @ unit(z1).T + unit(z2) @ unit(z2).T) / 2,
                             atol=1e-6)


def test_tail_sees_the_halves_on_the_banks_device_other_samplers_the_bank():
  """The task says what its pair is, the sampler whether it reads it; the halves are cut only for a
  sampler that reads pairs, and stay on the snapshot's device."""
  bank = np.random.default_rng(1).normal(size=(10, 16)).astype(np.float32)
  single = jax.device_put(bank, jax.devices()[2])  # the feeder's one-device snapshot stays put
  cut = []
  halves = lambda: cut.append(1) or _pairs.bank_halves(single)
  assert samplers.sampler_input(samplers.ProximitySampler(10, 2, num_neighbors=3, num_candidates=5), single, halves) is single and not cut
  assert samplers.sampler_input(samplers.UniformSampler(10, 2), single, halves) is None and not cut
  first, second = samplers.sampler_input(samplers.TailSampler(10, 2), single, halves)
  assert cut == [1]
  np.testing.assert_array_equal(np.asarray(first), bank[:, :8])
  np.testing.assert_array_equal(np.asarray(second), bank[:, 8:])
  assert first.devices() == second.devices() == {jax.devices()[2]}
  # A task whose rows are not pairs (SimCLR) hands over its bank: tail then reads the rows.
  assert samplers.sampler_input(samplers.TailSampler(10, 2), single, lambda: single) is single
  assert samplers.sampler_input(samplers.TailSampler(10, 2), single, None) is single
  assert [name for name, cls in samplers.SAMPLERS.items() if cls.reads_pairs] == ["tail"]

