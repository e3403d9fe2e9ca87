"""Is the sampler off the critical path? Step time of the one training loop with uniform vs ProSampler
batches, and the sampler's share of an epoch, on synthetic images (no input pipeline, no TensorFlow).

Same model, loss, optimiser, seed and steps for every sampler; the data are random uint8 images
(``SyntheticImageTask``) so the figure is the loop's, not an input pipeline's. ProSampler
refreshes every ``--refresh_steps`` steps (the paper's t = 100) after one uniform warm-up epoch; each
window is sampled in the feeder's worker thread ``min(lookahead, t // 8)`` steps ahead. Reported, side by
side in one run (best of ``--repeats`` interleaved runs per sampler):

- ``step_ms``: training time per step over the epochs after warm-up (compilation, evaluation and
  checkpoint writes excluded), and ``ratio_proximity_over_uniform`` (goal ≤ 1.02 on an accelerator);
- ``sampler_seconds_per_window`` (graph + walk + batch statistics, timed in the worker) and
  ``sampler_share_of_epoch``: the sampler's time per epoch over the epoch's training time.

Prints one JSON object.

  python -m experiments.bench.train_step                                   # small CNN, this CPU
  python -m experiments.bench.train_step --config=experiments/configs/simclr_stl10.py \
      --n=105000 --image_size=96                                           # STL-10 sized, accelerator
"""

from __future__ import annotations

import json
import tempfile

import jax
import numpy as np
from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags

from experiments.bench.synthetic_task import SyntheticImageTask
from prosampler_jax import feeder
from prosampler_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/simclr_digits.py", "Model, loss, optimiser and sampler settings.",
    lock_config=True)
_N = flags.DEFINE_integer("n", 12_800, "Synthetic items N.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 16, "Synthetic image side (pixels).")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Epochs per run; the first is the uniform warm-up.")
_REFRESH = flags.DEFINE_integer("refresh_steps", 100, "Steps per sampler window (ProSampler's t).")
_SAMPLERS = flags.DEFINE_list("samplers", ["uniform", "proximity"], "Samplers to time, in order.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Runs per sampler (interleaved); the best is reported.")


def run_once(sampler: str) -> dict:
  """One run: per-step time after warm-up and the sampler's time per window and per epoch."""
  config = _CONFIG.value.copy_and_resolve_references()
  config.sampler.name = sampler
  config.num_epochs = _EPOCHS.value
  config.sampler.warmup_epochs = 1
  config.sampler.refresh_steps = _REFRESH.value
  config.eval_every_epochs = 0
  config.checkpoint_steps = 10**9
  config.log_every_steps = 10**9
  task = SyntheticImageTask(config, num_examples=_N.value, image_size=_IMAGE_SIZE.value,
                                      seed=config.seed)
  with tempfile.TemporaryDirectory() as workdir:
    results = train.train_and_evaluate(config, workdir, task=task)
  steps_per_epoch = _N.value // config.batch_size
  epochs = [h for h in results["history"] if h["event"] == "epoch" and h["epoch"] > 1]
  epoch_seconds = float(np.median([h["train_seconds"] for h in epochs]))
  windows = [h["sampler_seconds"] for h in results["history"] if h["event"] == "refresh"]
  per_epoch = sum(windows) / max(1, _EPOCHS.value - 1)
  return {"step_ms": 1000.0 * epoch_seconds / steps_per_epoch,
          "sampler_seconds_per_window": float(np.median(windows)) if windows else 0.0,
          "sampler_share_of_epoch": per_epoch / epoch_seconds}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # the JSON is the output; library INFO lines would bury it
  best: dict[str, dict] = {}
  for _ in range(_REPEATS.value):
    for name in _SAMPLERS.value:
      result = run_once(name)
      if name not in best or result["step_ms"] < best[name]["step_ms"]:
        best[name] = result
  config = _CONFIG.value
  report = {
      "device": str(jax.devices()[0].device_kind), "num_devices": jax.device_count(),
      "encoder": config.model.encoder, "cifar_stem": config.model.cifar_stem,
      "model_dtype": config.model.dtype, "n": _N.value, "image_size": _IMAGE_SIZE.value,
      "batch_size": config.batch_size, "steps_per_epoch": _N.value // config.batch_size,
      "refresh_steps": _REFRESH.value,
      "lookahead_steps": feeder.effective_lookahead(config.sampler.lookahead_steps, _REFRESH.value),
      "num_neighbors": config.sampler.num_neighbors, "num_candidates": config.sampler.num_candidates,
      "runs": best,
  }
  if "uniform" in best and "proximity" in best:
    report["ratio_proximity_over_uniform"] = best["proximity"]["step_ms"] / best["uniform"]["step_ms"]
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
