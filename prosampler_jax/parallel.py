"""Data parallelism on one 1-D device mesh ``('data',)``: params replicated, batches split over devices.

The model runs in JAX's global view under ``jax.jit`` (so BatchNorm statistics cover the global batch);
a task's contrastive loss runs under ``jax.shard_map`` and all-gathers its negatives (DESIGN §2, §3.6).
Host ↔ device helpers live here too, so no other module reasons about processes and shards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from prosampler_jax import _checks

DATA_AXIS = "data"
# How the embedding bank is laid out on the mesh: "replicated" (whole on every device) or "data" (its
# feature columns split over the 'data' axis: 1/num_devices of the bytes per device; columns, not rows,
# so any N works and the samplers' row gathers stay local to each device).
BANK_SHARDINGS = ("replicated", "data")


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


def bank_sharding(mesh: Mesh, layout: str, bank_dim: int) -> NamedSharding:
  """The sharding of the ``[N, bank_dim]`` bank for ``layout`` (one of ``BANK_SHARDINGS``)."""
  if _checks.check_choice("config.bank_sharding", layout, BANK_SHARDINGS) == "replicated":
    return replicated(mesh)
  if bank_dim % mesh.size:
    raise ValueError(f"config.bank_sharding='data' splits the bank's {bank_dim} columns over {mesh.size} "
                     f"devices; allowed: a bank width divisible by {mesh.size}, or 'replicated'.")
  return NamedSharding(mesh, P(None, DATA_AXIS))


def check_global_batch(name: str, batch_size: int, mesh: Mesh) -> int:
  """Per-device batch size; a global batch (named ``name``) must split evenly over devices and processes."""
  num_devices = mesh.size
  if batch_size % num_devices or batch_size % jax.process_count():
    raise ValueError(
        f"{name}={batch_size} must be divisible by the number of devices ({num_devices}) "
        f"and processes ({jax.process_count()}); allowed: multiples of {num_devices}.")
  return batch_size // num_devices


def to_global(local, mesh: Mesh):
  """This process's slice of a batch (an array or a pytree of arrays, leading axis = rows) → global
  arrays sharded over ``'data'``."""
  sharding = data_sharded(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local)


def replicate(tree, mesh: Mesh):
  """Host or single-device values (the same on every process) → arrays held whole on every device.

  Built shard by shard from this process's copy, so it also works when the mesh spans processes (where
  ``jax.device_put`` cannot reach the other hosts' devices). PRNG keys travel as their key data.
  """
  return jax.tree.map(functools.partial(put, sharding=replicated(mesh)), tree)


def put(x, sharding: NamedSharding) -> jax.Array:
  """A host or single-device value (the same on every process) → a global array with ``sharding``.

  Built shard by shard from this process's copy, so it also works across processes. PRNG keys travel as
  their key data.
  """
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.random.wrap_key_data(put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
  host = np.asarray(x)
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def device_snapshot(x: jax.Array) -> jax.Array:
  """A copy of ``x`` on this process's first device, made by device-to-device transfers.

  Why: the sampler reads the bank in a worker thread while the (donating) train step rewrites it. It
  should neither copy the bank to the host nor run programs across several devices from that thread: on
  GPUs, collectives issued by two threads can reach the devices in different orders and hang. So a
  replicated bank gives one replica's copy; a bank split over this process's devices is assembled on the
  first device (the split storage still saves memory everywhere else, and between windows); one split
  across processes is all-gathered through the host first (a collective: every process calls this at the
  same point of the loop, as the loop does).
  """
  device = jax.local_devices()[0]
  if x.is_fully_replicated:
    return x.addressable_data(0).copy()
  if x.is_fully_addressable:
    return jax.device_put(x, device, may_alias=False)
  return jax.device_put(to_host(x), device)


def to_host(x: jax.Array) -> np.ndarray:
  """A global array's full value on this host (gathered across processes when there are several)."""
  if x.is_fully_replicated:
    return np.asarray(x.addressable_data(0))
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def local_rows(x: jax.Array) -> np.ndarray:
  """The rows of a ``'data'``-sharded global array that live on this process (shard by shard).

  Two arrays with the same sharding give the same rows in the same order, so features and the labels
  or indices that travelled with them through one jitted call stay paired whatever the device order;
  callers that need an order sort by those indices.
  """
  return np.concatenate([np.asarray(shard.data) for shard in x.addressable_shards])


def gather_processes(tree):
  """Concatenates each leaf's per-process rows along axis 0, in process order (identity on one process)."""
  if jax.process_count() == 1:
    return tree
  return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def shard_map_loss_and_rows(loss_and_rows: Callable, mesh: Mesh) -> Callable:
  """Runs a task's ``loss_and_rows(outputs, axis_name=…)`` per shard of ``'data'``.

  Every leaf of ``outputs`` is split along its leading (batch) axis; the loss comes back replicated (the
  task all-gathers its negatives over ``axis_name``), the bank rows sharded like the batch.
  """
  local = functools.partial(loss_and_rows, axis_name=DATA_AXIS)
  return jax.shard_map(local, mesh=mesh, in_specs=P(DATA_AXIS), out_specs=(P(), P(DATA_AXIS)))
