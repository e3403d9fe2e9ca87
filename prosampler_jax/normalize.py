"""The package's one L2 normaliser: unit rows for cosine similarity, on host (NumPy) or device (JAX).

Losses, the embedding bank, the proximity graph, Tail Batch Sampling, diagnostics and the kNN monitor all
compare items by cosine, so they all normalise the same way, with the same floor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NORM_FLOOR = 1e-12  # rows with ‖x‖ = 0 stay zero; every other finite row comes out with ‖x‖ = 1


def l2_normalize(x, *, axis: int = -1):
  """``x / ‖x‖`` along ``axis`` in float32; NumPy in → NumPy out, JAX (or traced) in → JAX out.

  Zero rows stay zero. Rows whose squared norm over- or underflows float32 (|x| ≳ 1e19 or ≲ 1e-19) are
  first divided by their largest |entry|, so they still come out with unit norm instead of 0 or a
  tiny vector; every other row is computed as ``x · rsqrt(Σx²)`` untouched by that rescaling, and the
  gradient is the exact gradient of ``x / ‖x‖``.
  """
  xp = np if isinstance(x, (np.ndarray, np.generic)) else jnp
  with np.errstate(over="ignore", under="ignore"):  # host: over/underflow is detected, then handled
    return _l2_normalize(xp, xp.asarray(x).astype(xp.float32), axis)


def _l2_normalize(xp, x, axis: int):
  squares = xp.sum(x * x, axis=axis, keepdims=True)
  unsafe = ~((squares >= NORM_FLOOR**2) & (squares < np.inf))
  peak = xp.max(xp.abs(x), axis=axis, keepdims=True)
  scale = xp.where(unsafe & (peak > 0), peak, 1.0).astype(xp.float32)
  if xp is jnp:
    scale = jax.lax.stop_gradient(scale)
  x = x / scale  # exactly x wherever the row was safe
  squares = xp.sum(x * x, axis=axis, keepdims=True)
  floored = xp.maximum(squares, np.float32(NORM_FLOOR**2))
  inv_norm = jax.lax.rsqrt(floored) if xp is jnp else (1.0 / np.sqrt(floored)).astype(np.float32)
  return x * inv_norm


@jax.jit
def normalized_rows(x: jax.Array, index: jax.Array) -> jax.Array:
  """``l2_normalize(x[index])`` as one jitted call on ``x``'s device: the samplers gather and normalise
  the items they order this way, so a fixed pool size compiles once."""
  return l2_normalize(x[index])


def pair_rows(z1: jax.Array, z2: jax.Array) -> jax.Array:
  """Bank rows ``[B, 2D]`` float32: the unit views side by side, scaled to a unit row, so a row's
  cosine to another is the mean of the two views' cosines."""
  rows = l2_normalize(jnp.concatenate([l2_normalize(z1), l2_normalize(z2)], axis=-1))
  return rows.astype(jnp.float32)
