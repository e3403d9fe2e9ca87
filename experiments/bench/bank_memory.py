"""Embedding-bank memory per device at ImageNet-1k scale, for each storage dtype and layout.

For ``run_config.BANK_DTYPES`` × ``parallel.BANK_SHARDINGS`` it places a bank of N = 1,281,167 rows and
D = 256 columns (ImageNet-1k; SimCLR's bank is both 128-wide views) on the devices, as the trainer does,
and reports, side by side in one run, the bytes one device holds for the bank, and those the first device
holds for the sampler's float32 copy of it while a window is sampled (the feeder's snapshot, normalised:
what the graph and the walk read). Measured from the
arrays' shards. Prints one JSON object. On a CPU it simulates ``--host_devices`` devices.

  python -m experiments.bench.bank_memory                        # 8 simulated devices on this CPU
  python -m experiments.bench.bank_memory --n=105000 --dim=256   # STL-10
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags

_N = flags.DEFINE_integer("n", 1_281_167, "Bank rows N (ImageNet-1k's training images).")
_DIM = flags.DEFINE_integer("dim", 256, "Bank width D.")
_HOST_DEVICES = flags.DEFINE_integer("host_devices", 8, "Devices to simulate when JAX runs on the CPU.")


def _device_bytes(array) -> int:
  """Bytes of ``array`` held by the first device it lives on."""
  first = min(array.devices(), key=lambda d: d.id)
  return sum(shard.data.nbytes for shard in array.addressable_shards if shard.device == first)


def main(argv):
  del argv
  # Before JAX starts its backends: simulated devices only matter (and only apply) on the CPU.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={_HOST_DEVICES.value}")
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from prosampler_jax import parallel  # pylint: disable=g-import-not-at-top
  from prosampler_jax import run_config  # pylint: disable=g-import-not-at-top
  from prosampler_jax.normalize import l2_normalize  # pylint: disable=g-import-not-at-top

  mesh = parallel.make_data_mesh()
  n, d = _N.value, _DIM.value
  report = {"device": jax.devices()[0].device_kind, "num_devices": mesh.size, "n": n, "dim": d,
            "mib_per_device": {}}
  for dtype in run_config.BANK_DTYPES:
    for layout in parallel.BANK_SHARDINGS:
      sharding = parallel.bank_sharding(mesh, layout, d)
      bank = jax.jit(lambda: jnp.ones((n, d), dtype), out_shardings=sharding)()
      sampler_copy = l2_normalize(parallel.device_snapshot(bank))
      sampler_copy.block_until_ready()
      report["mib_per_device"][f"{dtype}/{layout}"] = {
          "bank": round(_device_bytes(bank) / 2**20, 1),
          "sampler_copy": round(_device_bytes(sampler_copy) / 2**20, 1)}
      bank.delete(), sampler_copy.delete()
  mib = report["mib_per_device"]
  report["bank_over_float32_replicated"] = {
      key: round(value["bank"] / mib["float32/replicated"]["bank"], 4) for key, value in mib.items()}
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
