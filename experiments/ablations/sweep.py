"""Run an ablation sweep: every grid point × seed, one results directory per run, resumable.

  python -m experiments.ablations.sweep --sweep=offline_digits                  # here, sequentially
  python -m experiments.ablations.sweep --sweep=prosampler_cifar10_M --print_commands \
      --set=data_dir=/data/tfds                                                 # one line per launch
  python -m experiments.ablations.sweep --config=experiments/configs/simclr_digits.py \
      --name=my_sweep --axis=M=50,500 --axis=alpha=0.1,0.5 --seeds=0,1          # an ad-hoc grid

Runs land in ``WORKDIR/<sweep>/<axis=value,…,seed=s>/`` (results.json, checkpoints, ``train.log``). A
run whose results.json exists is skipped; an interrupted one resumes from its checkpoint. The sweep's
definition is written to ``WORKDIR/<sweep>/sweep.json`` for ``summarize.py``. Axes: the short names of
``sweeps.AXES`` (sampler, M, alpha, K, B, t, loss, quantile, max_neighbors, margin, seed) or any dotted
config key.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

from experiments.ablations import runner
from experiments.ablations import sweeps

_SWEEP = flags.DEFINE_string("sweep", None, f"A ready-made sweep: {', '.join(sweeps.SWEEPS)}.")
_CONFIG = flags.DEFINE_string("config", None, "Base config file of an ad-hoc sweep (with --axis).")
_NAME = flags.DEFINE_string("name", None, "Name (directory) of an ad-hoc sweep.")
_AXIS = flags.DEFINE_multi_string("axis", [], "NAME=v1,v2,…: one axis of an ad-hoc grid.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds (default: the sweep's).")
_SET = flags.DEFINE_multi_string("set", [], "KEY=VALUE: a config override for every run.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/ablations", "Parent directory of the sweeps.")
_PRINT = flags.DEFINE_bool("print_commands", False, "Print one launch command per unfinished run "
                           "(for a cluster) instead of running.")


def definition(argv_sweep: str | None) -> tuple[str, dict]:
  """(name, definition) from --sweep or from --config/--name/--axis."""
  if argv_sweep:
    if argv_sweep not in sweeps.SWEEPS:
      raise app.UsageError(f"--sweep={argv_sweep!r} is unknown; allowed: {', '.join(sweeps.SWEEPS)}.")
    spec = dict(sweeps.SWEEPS[argv_sweep])
    name = argv_sweep
  else:
    if not (_CONFIG.value and _NAME.value and _AXIS.value):
      raise app.UsageError("give --sweep=NAME, or --config, --name and at least one --axis.")
    axes = {}
    for item in _AXIS.value:
      axis, _, values = item.partition("=")
      if not values:
        raise app.UsageError(f"--axis={item!r}; allowed: NAME=v1,v2,…")
      axes[axis] = [runner.parse_value(v) for v in values.split(",")]
    spec = {"config": _CONFIG.value, "grid": [axes], "seeds": [0], "metric": None, "paper": ""}
    name = _NAME.value
  spec.setdefault("overrides", {})
  spec["overrides"] = {**spec["overrides"], **{k: runner.parse_value(v) for k, v in
                                               (s.split("=", 1) for s in _SET.value)}}
  if _SEEDS.value:
    spec["seeds"] = [int(s) for s in _SEEDS.value]
  return name, spec


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  name, spec = definition(_SWEEP.value)
  try:
    dirs = runner.run_sweep(name, spec, _WORKDIR.value, print_commands=_PRINT.value)
  except runner.Preempted as stop:
    from prosampler_jax import lifecycle  # pylint: disable=g-import-not-at-top  (loads JAX)
    print(stop, file=sys.stderr)
    return lifecycle.EXIT_PREEMPTED
  except ValueError as error:  # a refused point or config: its message names what and why
    print(f"error: {error}", file=sys.stderr)
    return 1
  if not _PRINT.value:
    print(f"{len(dirs)} runs under {os.path.join(_WORKDIR.value, name)}; tables and plots: "
          f"python -m experiments.ablations.summarize --sweep_dir={os.path.join(_WORKDIR.value, name)}")


if __name__ == "__main__":
  app.run(main)
