"""Launches one training run: ``python -m prosampler_jax.main --config=CONFIG.py --workdir=DIR``.

The config file is locked: ``--config.key=value`` overrides existing keys only, so a typo fails loudly.
"""

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from prosampler_jax import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and "
                               "results.json; rerunning with the same directory resumes.")
_CONFIG = config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                          lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.info("JAX process %d/%d, local devices: %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
