"""The bank-memory benchmark's figures are the bytes JAX really allocates for each dtype and layout."""

import jax
import jax.numpy as jnp

from experiments.bench import bank_memory
from prosampler_jax import parallel


def test_reported_bytes_are_the_allocated_shards():
  mesh = parallel.make_data_mesh()
  n, d = 8192, 64 * mesh.size
  report = bank_memory.bank_report(mesh, n, d)["mib_per_device"]
  assert len(report) == 4
  for key, figures in report.items():
    dtype, layout = key.split("/")
    bank = jax.device_put(jnp.zeros((n, d), dtype), parallel.bank_sharding(mesh, layout, d))
    first = jax.devices()[0]
    allocated = sum(s.data.nbytes for s in bank.addressable_shards if s.device == first)
    assert figures["bank"] == round(allocated / 2**20, 1), key
    assert figures["sampler_copy"] == round(n * d * 4 / 2**20, 1)
  assert report["bfloat16/data"]["bank"] * 2 * mesh.size == report["float32/replicated"]["bank"]
