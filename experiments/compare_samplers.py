"""Same config, same steps, every sampler over several seeds: a mean ± std table and a plot with bands.

``./run.sh`` runs this on digits (every sampler, seeds 0, 1, 2). Elsewhere:

  python -m experiments.compare_samplers --config=experiments/configs/simclr_cifar10.py \
      --workdir=runs/cifar10 --samplers=uniform,proximity,knn,tail
  python -m experiments.compare_samplers --config=experiments/configs/simcse_minilm_stsb.py \
      --workdir=runs/simcse --samplers=uniform,proximity,tail
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_mutag.py \
      --workdir=runs/graphcl_mutag --samplers=uniform,proximity

It is a sweep over the sampler (``experiments/ablations``): each run lands in
``WORKDIR/sampler=<name>,seed=<s>/`` (results.json, checkpoints, TensorBoard events, ``train.log`` with
every INFO line); rerunning skips finished runs and resumes interrupted ones. The terminal shows one
progress bar per run and the table, which also goes to ``WORKDIR/summary.md`` / ``.csv``; the task's
monitor metric per epoch (mean over seeds, ±1 std band) goes to ``WORKDIR/<metric>.png``.
"""

import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments.ablations import runner
from experiments.ablations import summarize
from prosampler_jax import lifecycle

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/simclr_digits.py", "Base training configuration file.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/digits", "Parent directory of the runs.")
_SAMPLERS = flags.DEFINE_list("samplers", ["uniform", "proximity", "tail"], "Samplers to compare.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; the table shows mean ± std over them.")


def plot_monitor(runs: list[dict], metric: str, path: str, title: str) -> bool:
  """``metric`` per epoch, one line per sampler: the mean over seeds with a ±1 std band."""
  curves: dict[str, dict[int, list[float]]] = {}
  for run in runs:
    for record in run["epochs"]:
      if metric in record:
        curves.setdefault(run["point"]["sampler"], {}).setdefault(record["epoch"], []).append(
            record[metric])
  if not curves:
    return False
  with summarize.figure(path, (6, 4)) as ax:
    for name, per_epoch in curves.items():
      epochs = sorted(per_epoch)
      mean, std = zip(*(summarize.mean_std(per_epoch[e]) for e in epochs))
      summarize.band(ax, epochs, mean, std, f"{summarize.sampler_label({'sampler': name})} "
                     f"(n={max(len(v) for v in per_epoch.values())})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(summarize.column_label(metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
  return True


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  base = _CONFIG.value
  metrics = summarize.TASK_METRICS.get(base.task, ())
  config_flag = flags.FLAGS["config"]
  spec = {"config": config_flags.get_config_filename(config_flag),
          # The command line's --config.key=value overrides, so sweep.json records the whole setup.
          "overrides": dict(config_flags.get_override_values(config_flag)),
          "grid": [{"sampler": _SAMPLERS.value}],
          "seeds": [int(seed) for seed in _SEEDS.value], "metric": metrics[0] if metrics else None,
          "paper": f"samplers compared on {base.dataset}"}
  parent, name = os.path.split(os.path.normpath(_WORKDIR.value))
  try:
    runner.run_sweep(name, spec, parent or ".", base=base)
  except runner.Preempted as stop:
    print(stop, file=sys.stderr)
    return lifecycle.EXIT_PREEMPTED
  except ValueError as error:  # a refused point or config: its message names what and why
    print(f"error: {error}", file=sys.stderr)
    return 1
  # The table (also summary.md / .csv) and the sweep's plots.
  summary = summarize.summarize(_WORKDIR.value, columns=summarize.comparison_columns(base.task))
  runs = summary["runs"]
  print(summary["markdown"])
  if summary["paired_markdown"]:
    print(f"\nPaired by seed against uniform batches:\n\n{summary['paired_markdown']}")
  plot = os.path.join(_WORKDIR.value, f"{summary['metric']}.png")
  drawn = plot_monitor(runs, summary["metric"], plot, f"{base.task} on {base.dataset}: "
                       f"{summary['metric']} (mean ± std over {len(spec['seeds'])} seeds)")
  print(f"\nruns: {_WORKDIR.value}/sampler=…,seed=…/ (results.json, train.log)"
        + (f"; plot: {plot}" if drawn else ""))


if __name__ == "__main__":
  app.run(main)
