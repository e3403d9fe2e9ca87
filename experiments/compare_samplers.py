"""Same config, same seed, same number of steps — one run per sampler, then a table and a plot.

``./run.sh`` runs this on digits (uniform vs ProSampler). Elsewhere, for example:

  python -m experiments.compare_samplers --config=experiments/configs/simclr_cifar10.py \
      --workdir=runs/cifar10 --samplers=uniform,proximity,knn,tail

Each run lands in WORKDIR/<sampler>/ (results.json, checkpoints, TensorBoard events; rerunning resumes);
the table goes to stdout and WORKDIR/comparison.json, the plot to WORKDIR/knn_accuracy.png.
"""

import json
import os

from absl import app
from absl import flags
from ml_collections import config_flags

from prosampler_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/simclr_digits.py", "Base training configuration file.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", "runs/digits", "Parent directory of the per-sampler runs.")
_SAMPLERS = flags.DEFINE_list("samplers", ["uniform", "proximity"], "Samplers to compare.")

COLUMNS = ("sampler", "knn_accuracy", "linear_accuracy", "mean_neg_cos", "false_negative_rate",
           "min_bank_written", "bank_staleness", "wall_seconds")


def summarize(name: str, result: dict) -> dict:
  """One table row: final accuracies, the last refresh's batch statistics, and the bank's freshness
  over every refresh after warm-up (the smallest written fraction, the mean staleness in steps)."""
  refreshes = [h for h in result["history"] if h.get("event") == "refresh"]
  row = {"sampler": name, **{c: result.get(c, result["batch_stats"].get(c)) for c in COLUMNS[1:]}}
  row["min_bank_written"] = min((h["bank_written_fraction"] for h in refreshes), default=None)
  row["bank_staleness"] = (sum(h["bank_staleness_steps"] for h in refreshes) / len(refreshes)
                           if refreshes else None)
  return row


def format_table(rows: list[dict]) -> str:
  """A fixed-width text table of the comparison."""
  lines = ["  ".join(f"{c:>19}" for c in COLUMNS)]
  for row in rows:
    cells = [row[c] if isinstance(row[c], str) else f"{row[c]:.4f}" if row[c] is not None else "-"
             for c in COLUMNS]
    lines.append("  ".join(f"{c:>19}" for c in cells))
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
  results = {}
  for name in _SAMPLERS.value:
    config = _CONFIG.value.copy_and_resolve_references()
    config.sampler.name = name
    results[name] = train.train_and_evaluate(config, os.path.join(_WORKDIR.value, name))
  rows = [summarize(name, r) for name, r in results.items()]
  table = format_table(rows)
  print(table)
  with open(os.path.join(_WORKDIR.value, "comparison.json"), "w") as f:
    json.dump(rows, f, indent=2)
  plot_knn(results, os.path.join(_WORKDIR.value, "knn_accuracy.png"))
  print(f"\nresults: {_WORKDIR.value}/<sampler>/results.json, plot: {_WORKDIR.value}/knn_accuracy.png")


if __name__ == "__main__":
  app.run(main)
