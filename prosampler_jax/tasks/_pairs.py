"""What every two-view task shares: the bank row of a pair of views, and the view Tail Batch Sampling
gets of it (the pair (x, y), whose similarity it symmetrises); the other samplers see the whole row."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from prosampler_jax.normalize import l2_normalize


def pair_rows(z1: jax.Array, z2: jax.Array) -> jax.Array:
  """Bank rows ``[B, 2D]`` float32: the unit views side by side, scaled to a unit row, so a row's
  cosine to another is the mean of the two views' cosines."""
  rows = l2_normalize(jnp.concatenate([l2_normalize(z1), l2_normalize(z2)], axis=-1))
  return rows.astype(jnp.float32)


def pair_sampler_view(bank, sampler_name: str):
  """``(first half, second half)`` of each row for the "tail" sampler, else the bank itself.

  A ``jax.Array`` bank is cut where it lives and each half keeps the bank's layout (a bank split over
  the devices stays split, instead of being gathered whole onto each by the slice).
  """
  if sampler_name != "tail":
    return bank
  half = bank.shape[1] // 2
  if not isinstance(bank, jax.Array):
    return bank[:, :half], bank[:, half:]
  sharding = bank.sharding
  try:
    sharding.shard_shape((bank.shape[0], half))
  except ValueError:  # the halves cannot keep the layout: let the compiler choose
    sharding = None
  return _halves(bank, half=half, out_sharding=sharding)


@functools.partial(jax.jit, static_argnames=("half", "out_sharding"))
def _halves(bank: jax.Array, *, half: int, out_sharding) -> tuple[jax.Array, jax.Array]:
  first, second = bank[:, :half], bank[:, half:]
  if out_sharding is not None:
    first, second = (jax.lax.with_sharding_constraint(x, out_sharding) for x in (first, second))
  return first, second
