"""Training throughput with uniform vs proximity batches: same model, data, seed and steps, one process.

Prints one JSON object: steps/second and step time per sampler (measured after the first, compiling step;
the proximity run includes its graph builds and random walks, sampled in the background) and the ratio
proximity/uniform step time (target ≤ 1.05 where the look-ahead, ``refresh_steps // 8`` steps, covers the
sampler's time; digits' 11-step windows give a 1-step look-ahead, so there the loop waits at each window).

  python -m experiments.bench.train_step                       # digits, small CNN (CPU-sized)
  python -m experiments.bench.train_step --config=experiments/configs/simclr_cifar10.py \
      --config.num_epochs=2 --config.data_dir=...              # an accelerator-sized run
"""

import json
import tempfile

import jax
from absl import app
from absl import flags
from ml_collections import config_flags

from prosampler_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/simclr_digits.py", "Training configuration file.", lock_config=True)
_SAMPLERS = flags.DEFINE_list("samplers", ["uniform", "proximity"], "Samplers to time, in order.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Runs per sampler (interleaved); the best is reported.")


def main(argv):
  del argv
  best: dict[str, float] = {}
  for _ in range(_REPEATS.value):
    for name in _SAMPLERS.value:
      config = _CONFIG.value.copy_and_resolve_references()
      config.sampler.name = name
      config.eval_every_epochs = 0
      config.eval.linear_epochs = 1
      config.checkpoint_steps = 10**9
      with tempfile.TemporaryDirectory() as workdir:
        result = train.train_and_evaluate(config, workdir)
      best[name] = max(best.get(name, 0.0), result["train_steps_per_second"])
  report = {
      "device": str(jax.devices()[0].device_kind), "num_devices": jax.device_count(),
      "dataset": _CONFIG.value.dataset, "encoder": _CONFIG.value.model.encoder,
      "batch_size": _CONFIG.value.batch_size, "steps": result["steps"],
      "refresh_steps": _CONFIG.value.sampler.refresh_steps or "epoch",
      "steps_per_second": best,
      "step_ms": {name: 1000.0 / rate for name, rate in best.items()},
  }
  if "uniform" in best and "proximity" in best:
    report["ratio_proximity_over_uniform_step_time"] = best["uniform"] / best["proximity"]
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
