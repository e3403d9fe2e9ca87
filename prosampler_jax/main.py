"""Launches one training run: ``python -m prosampler_jax.main --config=CONFIG.py --workdir=DIR``.

The config file is locked: ``--config.key=value`` overrides existing keys only, so a typo fails loudly.

Several processes (one per host, each seeing its local accelerators) run the same command with
``--coordinator_address=HOST:PORT --num_processes=P --process_id=I``, or with the environment variables
``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``, or under SLURM / Open MPI, which
JAX detects by itself (``prosampler_jax/distributed.py``).

The terminal shows a progress bar (loss, latest monitor metric) and warnings; every INFO line goes to
``WORKDIR/train.log``.

Exit status: 0 finished, 1 an error, 130 interrupted by Ctrl-C, 143 preempted by SIGTERM — in the last
two cases after saving the last finished step, so rerunning the same command resumes.
"""

import sys

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from prosampler_jax import checkpoint
from prosampler_jax import distributed
from prosampler_jax import lifecycle
from prosampler_jax import run_config
from prosampler_jax import run_log
from prosampler_jax import train

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and "
                               "results.json; rerunning with the same directory resumes.")
_CONFIG = config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                          lock_config=True)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "Multi-process runs: HOST:PORT of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-process runs: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-process runs: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def override_keys(argv: list[str]) -> list[str]:
  """The dotted config keys set on the command line (``--config.sampler.name=tail`` → sampler.name)."""
  prefix = f"--{_CONFIG.name}."
  return [arg[len(prefix):].split("=", 1)[0] for arg in argv if arg.startswith(prefix)]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    run_config.check_overrides_read(_CONFIG.value, override_keys(sys.argv))
  except ValueError as error:  # before anything starts: one line, the usage-error status
    print(f"error: {error}", file=sys.stderr, flush=True)
    return 2
  # Until the run's log file is open only warnings reach the terminal (JAX's backend probes log at INFO).
  logging.get_absl_handler().setLevel(logging.converter.ABSL_TO_STANDARD[logging.WARNING])
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  with run_log.to_file(_WORKDIR.value, process_index=jax.process_index()) as log_path:
    logging.info("JAX process %d/%d, local devices: %s", jax.process_index(), jax.process_count(),
                 jax.local_devices())
    print(f"Logging to {log_path} (warnings also here).", flush=True)
    try:
      results = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except KeyboardInterrupt as interrupt:
      logging.warning("Interrupted: %s", interrupt)
      return lifecycle.EXIT_INTERRUPTED
    except checkpoint.CheckpointError as error:  # its message says what happened and what to do
      logging.info("Stopped on a checkpoint error.", exc_info=True)  # the traceback: the log file only
      print(f"error: {error}", file=sys.stderr, flush=True)
      return 1
    table = run_log.final_table(results)
    logging.info("Final metrics:\n%s", table)
  print(table, flush=True)
  if results.get("stop_reason") == "preempted":
    return lifecycle.EXIT_PREEMPTED
  return 0


def run() -> None:
  """The ``prosampler-train`` console script: the same as ``python -m prosampler_jax.main``."""
  app.run(main)


if __name__ == "__main__":
  run()
