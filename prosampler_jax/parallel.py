"""Data parallelism on one 1-D device mesh ``('data',)``: params replicated, batches split over devices.

The model runs in JAX's global view under ``jax.jit`` (so BatchNorm statistics cover the global batch);
the contrastive loss runs under ``jax.shard_map`` and all-gathers its negatives (DESIGN §2).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_data_mesh(devices=None) -> Mesh:
  """A mesh over all (or the given) devices with one automatic ``'data'`` axis."""
  devices = list(jax.devices() if devices is None else devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of an array held whole on every device (params, optimizer state, the bank)."""
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding of an array split along its leading (batch) axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_global_batch(name: str, batch_size: int, mesh: Mesh) -> int:
  """Per-device batch size; a global batch (named ``name``) must split evenly over devices and processes."""
  num_devices = mesh.size
  if batch_size % num_devices or batch_size % jax.process_count():
    raise ValueError(
        f"{name}={batch_size} must be divisible by the number of devices ({num_devices}) "
        f"and processes ({jax.process_count()}); allowed: multiples of {num_devices}.")
  return batch_size // num_devices


def interleave_views(view1: np.ndarray, view2: np.ndarray, num_local_devices: int) -> np.ndarray:
  """Stacks two host views so each device's shard holds ``[its view1 rows; its view2 rows]``.

  One forward pass over ``2B`` items then needs no resharding: the loss splits each local block in two.
  """
  local = view1.shape[0] // num_local_devices
  v1 = view1.reshape(num_local_devices, 1, local, *view1.shape[1:])
  v2 = view2.reshape(num_local_devices, 1, local, *view2.shape[1:])
  return np.concatenate([v1, v2], axis=1).reshape(2 * view1.shape[0], *view1.shape[1:])


def to_global(local: np.ndarray, mesh: Mesh) -> jax.Array:
  """This process's slice of a batch → one global array sharded over ``'data'``."""
  return jax.make_array_from_process_local_data(data_sharded(mesh), local)


def paired_loss_and_rows(loss_fn: Callable, mesh: Mesh) -> Callable:
  """Wraps a SimCLR-family loss for interleaved projections ``[2B, P]`` sharded over ``'data'``.

  Returns ``f(z) -> (loss, bank_rows)``: the loss over the global batch (negatives all-gathered by
  ``loss_fn(..., axis_name='data')``) and, per item, the bank row normalise(concat(z1, z2)) ``[B, 2P]``.
  """

  def local(z):
    z1, z2 = jnp.split(z, 2)
    loss = loss_fn(z1, z2, axis_name=DATA_AXIS)
    rows = jnp.concatenate([_normalize(z1), _normalize(z2)], axis=-1)
    return loss, _normalize(rows)

  return jax.shard_map(local, mesh=mesh, in_specs=P(DATA_AXIS), out_specs=(P(), P(DATA_AXIS)))


def _normalize(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))
