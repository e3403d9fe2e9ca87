"""Tests for the package's one L2 normaliser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax.normalize import l2_normalize


@pytest.mark.parametrize("as_jax", [False, True])
def test_unit_rows_zero_rows_stay_zero_and_the_array_type_is_kept(as_jax):
  x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0], [-2.0, 0.0]], np.float32)
  out = l2_normalize(jnp.asarray(x) if as_jax else x)
  assert isinstance(out, jax.Array) if as_jax else isinstance(out, np.ndarray)
  assert out.dtype == np.float32
  np.testing.assert_allclose(np.asarray(out), [[0.6, 0.8], [0, 0], [1, 0], [-1, 0]], atol=1e-7)


@pytest.mark.parametrize("as_jax", [False, True])
@pytest.mark.parametrize("magnitude", [1e25, 1e19, 1e-19, 1e-30])
def test_rows_whose_squared_norm_leaves_float32_still_come_out_unit(as_jax, magnitude):
  x = np.array([[3.0, 4.0], [1.0, 1.0]], np.float32) * np.float32(magnitude)
  out = np.asarray(l2_normalize(jnp.asarray(x) if as_jax else x))
  np.testing.assert_allclose(out, [[0.6, 0.8], [2**-0.5, 2**-0.5]], rtol=1e-6)


def test_ordinary_rows_are_exactly_x_times_rsqrt_of_the_sum_of_squares():
  x = np.random.default_rng(0).normal(size=(64, 33)).astype(np.float32)
  plain = x * jax.lax.rsqrt(jnp.sum(jnp.asarray(x) ** 2, axis=-1, keepdims=True))
  np.testing.assert_array_equal(np.asarray(l2_normalize(jnp.asarray(x))), np.asarray(plain))
  np.testing.assert_allclose(l2_normalize(x), np.asarray(plain), rtol=1e-6)  # host: same up to rounding


def test_gradient_is_the_projection_onto_the_tangent_space():
  x = np.random.default_rng(1).normal(size=(5,)).astype(np.float32)
  v = np.random.default_rng(2).normal(size=(5,)).astype(np.float32)
  grad = jax.grad(lambda a: jnp.dot(l2_normalize(a[None])[0], v))(jnp.asarray(x))
  y = x / np.linalg.norm(x)
  np.testing.assert_allclose(grad, (v - y * (y @ v)) / np.linalg.norm(x), rtol=1e-5, atol=1e-6)
  huge = jax.grad(lambda a: jnp.dot(l2_normalize(a[None])[0], v))(jnp.asarray(x) * 1e20)
  assert np.isfinite(np.asarray(huge)).all()


def test_axis_argument_normalises_columns():
  x = np.array([[3.0, 0.0], [4.0, 2.0]], np.float32)
  np.testing.assert_allclose(l2_normalize(x, axis=0), [[0.6, 0.0], [0.8, 1.0]], atol=1e-7)


@pytest.mark.parametrize("scale", [1e19, 1e-19])
def test_graph_batch_stats_losses_and_samplers_see_the_same_directions_at_any_scale(scale):
  """B5 of the reliability audit: finite embeddings around 1e19 overflowed their norms to inf, became
  zero rows, and the graph, the batch statistics and the losses were silently wrong."""
  from prosampler_jax import diagnostics, graph, losses, samplers  # pylint: disable=g-import-not-at-top
  bank = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
  huge = (bank.astype(np.float64) * scale).astype(np.float32)
  assert np.isfinite(huge).all()
  for backend in ("candidates", "exact"):
    np.testing.assert_array_equal(
        graph.build_proximity_graph(huge, num_neighbors=5, num_candidates=199, backend=backend),
        graph.build_proximity_graph(bank, num_neighbors=5, num_candidates=199, backend=backend))
  batches = samplers.ProximitySampler(200, 20, num_neighbors=5, num_candidates=50).sample(1, bank)
  np.testing.assert_array_equal(
      samplers.ProximitySampler(200, 20, num_neighbors=5, num_candidates=50).sample(1, huge), batches)
  np.testing.assert_array_equal(samplers.TailSampler(200, 20).sample(1, huge),
                                samplers.TailSampler(200, 20).sample(1, bank))
  stats, stats_huge = diagnostics.batch_stats(batches, bank), diagnostics.batch_stats(batches, huge)
  for key in stats:
    np.testing.assert_allclose(stats_huge[key], stats[key], rtol=1e-5, atol=1e-6)
  for name in ("nt_xent", "dcl", "hcl", "info_nce"):
    fn = getattr(losses, name)
    np.testing.assert_allclose(fn(huge[:20], huge[20:40]), fn(bank[:20], bank[20:40]), rtol=1e-5)
