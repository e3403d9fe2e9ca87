"""Same config, same seed, same number of steps — one run per sampler, then a table and a plot.

``./run.sh`` runs this on digits (uniform vs ProSampler). Elsewhere, for example:

  python -m experiments.compare_samplers --config=experiments/configs/simclr_cifar10.py \
      --workdir=runs/cifar10 --samplers=uniform,proximity,knn,tail
  python -m experiments.compare_samplers --config=experiments/configs/simcse_minilm_stsb.py \
      --workdir=runs/simcse --samplers=uniform,proximity,tail --seeds=0,1,2
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_mutag.py \
      --workdir=runs/graphcl_mutag --samplers=uniform,proximity --seeds=0,1,2

Each run lands in WORKDIR/<sampler>/ (WORKDIR/<sampler>/seed_<s>/ with several seeds: results.json,
checkpoints, TensorBoard events; rerunning resumes). The table (mean ± std over seeds) goes to stdout
and WORKDIR/comparison.json, the kNN plot (image tasks) to WORKDIR/knn_accuracy.png.
"""

import json
import os

import numpy as np

from absl import app
from absl import flags
from ml_collections import config_flags

from prosampler_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/simclr_digits.py", "Base training configuration file.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/digits", "Parent directory of the per-sampler runs.")
_SAMPLERS = flags.DEFINE_list("samplers", ["uniform", "proximity"], "Samplers to compare.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds; the table shows mean ± std over them.")

# The task's headline metrics, then what every task has.
METRICS = {"simclr": ("knn_accuracy", "linear_accuracy"), "simcse": ("stsb_dev", "stsb", "average"),
           "graphcl": ("svm_acc", "svm_acc_std")}
COMMON = ("mean_neg_cos", "false_negative_rate", "min_bank_written", "bank_staleness", "wall_seconds")


def summarize(name: str, result: dict, columns: tuple[str, ...]) -> dict:
  """One run's row: final metrics, the last refresh's batch statistics, and the bank's freshness over
  every refresh after warm-up (the smallest written fraction, the mean staleness in steps)."""
  refreshes = [h for h in result["history"] if h.get("event") == "refresh"]
  row = {"sampler": name, **{c: result.get(c, result["batch_stats"].get(c)) for c in columns}}
  row["min_bank_written"] = min((h["bank_written_fraction"] for h in refreshes), default=None)
  row["bank_staleness"] = (sum(h["bank_staleness_steps"] for h in refreshes) / len(refreshes)
                           if refreshes else None)
  return row


def aggregate(rows: list[dict], columns: tuple[str, ...]) -> dict:
  """Mean and sample std (over seeds) of each column of one sampler's rows; None where a run lacks it."""
  out = {"sampler": rows[0]["sampler"], "seeds": len(rows)}
  for column in columns:
    values = [r[column] for r in rows]
    if any(v is None for v in values):
      out[column] = None
    else:
      out[column] = {"mean": float(np.mean(values)),
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
  return out


def format_table(rows: list[dict], columns: tuple[str, ...]) -> str:
  """A fixed-width text table: mean ± std per column."""
  cell = lambda v: "-" if v is None else (f"{v['mean']:.4f} ± {v['std']:.4f}" if v["std"] else
                                          f"{v['mean']:.4f}")
  lines = ["  ".join(f"{c:>19}" for c in ("sampler",) + columns)]
  for row in rows:
    lines.append("  ".join(f"{c:>19}" for c in [row["sampler"]] + [cell(row[c]) for c in columns]))
  return "\n".join(lines)


def plot_knn(results: dict[str, dict], path: str) -> None:
  """kNN accuracy per epoch, one line per sampler."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, result in results.items():
    history = [h for h in result["history"] if "knn_accuracy" in h]
    ax.plot([h["epoch"] for h in history], [h["knn_accuracy"] for h in history], label=name)
  ax.set_xlabel("epoch")
  ax.set_ylabel("weighted kNN accuracy")
  ax.set_title(f"SimCLR on {next(iter(results.values()))['dataset']}")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  base = _CONFIG.value
  seeds = [int(seed) for seed in _SEEDS.value]
  columns = METRICS.get(base.task, ()) + COMMON
  results, rows = {}, []
  for name in _SAMPLERS.value:
    per_seed = []
    for seed in seeds:
      config = base.copy_and_resolve_references()
      config.sampler.name, config.seed = name, seed
      workdir = os.path.join(_WORKDIR.value, name, *([f"seed_{seed}"] if len(seeds) > 1 else []))
      result = train.train_and_evaluate(config, workdir)
      results.setdefault(name, result)  # the first seed's run for the plot
      per_seed.append(summarize(name, result, columns))
    rows.append(aggregate(per_seed, columns))
  print(format_table(rows, columns))
  with open(os.path.join(_WORKDIR.value, "comparison.json"), "w") as f:
    json.dump(rows, f, indent=2)
  if base.task == "simclr":
    plot_knn(results, os.path.join(_WORKDIR.value, "knn_accuracy.png"))
  print(f"\nresults: {_WORKDIR.value}/<sampler>/results.json"
        + (f", plot: {_WORKDIR.value}/knn_accuracy.png" if base.task == "simclr" else ""))


if __name__ == "__main__":
  app.run(main)
