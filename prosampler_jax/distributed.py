"""Multi-process start: when a run is launched as several processes, connect them with ``jax.distributed``.

Where the settings come from, first match wins:

1. flags ``--coordinator_address=HOST:PORT --num_processes=P --process_id=I`` (all three);
2. environment ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` (all three);
3. a cluster launcher JAX detects by itself — SLURM (``SLURM_NTASKS`` > 1), Open MPI
   (``OMPI_COMM_WORLD_SIZE`` > 1), Cloud TPU pods — then ``jax.distributed.initialize()`` without arguments;
4. otherwise one process: nothing to initialise.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import jax
from absl import logging

_ENV_KEYS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_CLUSTER_SIZES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


@dataclasses.dataclass(frozen=True)
class Settings:
  """How to call ``jax.distributed.initialize``: explicit values, or auto-detection (all None)."""
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  source: str = "cluster"


def resolve(coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None, environ: Mapping[str, str] | None = None) -> Settings | None:
  """The settings to start ``jax.distributed`` with, or None for a single process (see module doc)."""
  environ = os.environ if environ is None else environ
  flags_given = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in flags_given):
    return _explicit(flags_given, ("--coordinator_address", "--num_processes", "--process_id"), "flags")
  env_given = tuple(environ.get(k) for k in _ENV_KEYS)
  if any(v is not None for v in env_given):
    return _explicit(env_given, _ENV_KEYS, "environment")
  for key in _CLUSTER_SIZES:
    if key in environ:
      try:
        size = int(environ[key])
      except ValueError:
        raise ValueError(f"{key}={environ[key]!r} is not an integer; allowed: a process count.") from None
      if size > 1:
        return Settings(source=key)
  return None


def _explicit(values, names, source: str) -> Settings:
  missing = [n for n, v in zip(names, values) if v is None or v == ""]
  if missing:
    raise ValueError(f"multi-process start needs all of {', '.join(names)}; missing {', '.join(missing)} "
                     f"(from {source}).")
  address, count, index = values
  try:
    count, index = int(count), int(index)
  except (TypeError, ValueError):
    raise ValueError(f"{names[1]}={count!r} and {names[2]}={index!r} must be integers.") from None
  if count < 1 or not 0 <= index < count:
    raise ValueError(f"{names[1]}={count} and {names[2]}={index}: allowed {names[1]} >= 1 and "
                     f"0 <= {names[2]} < {names[1]}.")
  if ":" not in str(address):
    raise ValueError(f"{names[0]}={address!r} must be HOST:PORT of process 0.")
  return Settings(str(address), count, index, source)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
  """Starts ``jax.distributed`` when the run is multi-process; returns whether it did.

  Must run before anything touches a JAX device.
  """
  settings = resolve(coordinator_address, num_processes, process_id)
  if settings is None:
    return False
  logging.info("Starting jax.distributed (%s): %s", settings.source, settings)
  # CPU processes need a collectives backend to talk to each other (GPUs and TPUs bring their own).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=settings.coordinator_address,
                             num_processes=settings.num_processes, process_id=settings.process_id)
  return True
