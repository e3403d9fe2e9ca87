"""What every two-view task shares: the bank row of a pair of views, and the view Tail Batch Sampling
gets of it (the pair (x, y), whose similarity it symmetrises); the other samplers see the whole row."""

from __future__ import annotations

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

  The feeder hands over its one-device snapshot of the bank, so the halves are cut on that device.
  """
  if sampler_name == "tail":
    half = bank.shape[1] // 2
    return bank[:, :half], bank[:, half:]
  return bank
