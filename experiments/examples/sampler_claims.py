"""The papers' qualitative claims about batch samplers, checked on saved pair embeddings without training.

  python -m experiments.examples.embed_sentence_pairs --dataset=stsb --out=runs/pairs/stsb
  python -m experiments.examples.sampler_claims --pairs_dir=runs/pairs/stsb

Runs ``python -m prosampler_jax.plan compare`` (in process) on ``x.npy``, ``y.npy`` and ``labels.npy``
of ``--pairs_dir``: once over every sampler with its defaults, then ProSampler over a grid of M
(``--candidates``) and of α (``--restart_probs``). Writes each comparison under ``pairs_dir/claims/``
and prints one Markdown table per claim with its verdict:

1. ProSampler's hardness and false-negative rate rise with M (ProSampler, Fig. 4–5) and with α.
2. The kNN sampler has the highest false-negative rate of all samplers (ProSampler's motivation).
3. Tail Batch Sampling has the smallest loss gap among the samplers that cover the epoch (TBS).

"Rise" is checked as a positive Spearman correlation between the grid value and the figure, and a last
grid point above the first.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
import numpy as np
from scipy import stats

from prosampler_jax import plan_compare

FIGURES = ("mean_neg_cos", "false_negative_rate", "margin_dropped_rate", "loss_gap")


def define_flags() -> None:
  """The command line's flags (defined when run as a script, so importing this module defines none)."""
  flags.DEFINE_string("pairs_dir", None, "Folder with x.npy, y.npy, labels.npy.")
  flags.DEFINE_integer("batch_size", 64, "Batch size B.")
  flags.DEFINE_integer("epochs", 2, "Epochs per sampler (figures are their means).")
  flags.DEFINE_float("temperature", 0.05, "The loss gap's temperature (SimCSE's).")
  flags.DEFINE_float("margin", 0.95, "m of the relative-margin rule (sentence-transformers' "
                     "relative_margin 0.05).")
  flags.DEFINE_list("candidates", ["100", "300", "1000", "3000"], "ProSampler's M grid.")
  flags.DEFINE_list("restart_probs", ["0.1", "0.3", "0.5", "0.7"], "ProSampler's α grid.")
  flags.DEFINE_integer("seed", 0, "Seed of every sampler.")


def run_compare(pairs_dir: str, out: str, extra: list[str]) -> list[dict]:
  """One ``plan compare`` run with the command line's settings; its rows (the JSON it wrote)."""
  f = flags.FLAGS
  argv = [f"--embeddings={pairs_dir}/x.npy", f"--pairs={pairs_dir}/y.npy",
          f"--labels={pairs_dir}/labels.npy", f"--batch-size={f.batch_size}", f"--epochs={f.epochs}",
          f"--temperature={f.temperature}", f"--false-negative-margin={f.margin}", f"--seed={f.seed}",
          f"--out={out}", *extra]
  if plan_compare.main(argv) != 0:
    raise SystemExit(f"plan compare failed: {' '.join(argv)}")
  with open(os.path.join(out, "compare.json")) as f:
    return json.load(f)["rows"]


def rises(values: list[float], figures: list[float]) -> bool:
  """A positive rank correlation and a last point above the first."""
  return bool(stats.spearmanr(values, figures)[0] > 0 and figures[-1] > figures[0])


def grid_table(name: str, values: list, rows: list[dict]) -> tuple[str, dict[str, bool]]:
  """Markdown of ProSampler's figures along one grid, and whether each figure rises along it."""
  lines = [f"| {name} | " + " | ".join(FIGURES) + " |", "|---:|" + "---:|" * len(FIGURES)]
  lines += [f"| {v} | " + " | ".join(f"{r[k]:.4f}" for k in FIGURES) + " |" for v, r in zip(values, rows)]
  verdicts = {k: rises([float(v) for v in values], [r[k] for r in rows]) for k in FIGURES[:3]}
  return "\n".join(lines), verdicts


def main(argv):
  del argv
  pairs_dir = flags.FLAGS.pairs_dir
  if not pairs_dir or not os.path.isfile(os.path.join(pairs_dir, "x.npy")):
    raise app.UsageError(f"--pairs_dir={pairs_dir!r} holds no x.npy; write one with "
                         "experiments.examples.embed_sentence_pairs.")
  out = os.path.join(pairs_dir, "claims")
  every = {r["sampler"]: r for r in run_compare(pairs_dir, os.path.join(out, "all"), [])}
  n = len(np.load(os.path.join(pairs_dir, "labels.npy")))
  candidates = [min(int(m), n - 1) for m in flags.FLAGS.candidates]
  restart_probs = flags.FLAGS.restart_probs
  by_m = [run_compare(pairs_dir, os.path.join(out, f"M{m}"),
                      ["--samplers=proximity", f"--proximity.num_candidates={m}"])[0] for m in candidates]
  by_alpha = [run_compare(pairs_dir, os.path.join(out, f"alpha{a}"),
                          ["--samplers=proximity", f"--proximity.restart_prob={a}"])[0]
              for a in restart_probs]

  m_table, m_verdicts = grid_table("M", candidates, by_m)
  a_table, a_verdicts = grid_table("α", restart_probs, by_alpha)
  fn_order = sorted(every, key=lambda s: -every[s]["false_negative_rate"])
  covering = {s: r for s, r in every.items() if r["coverage"] >= 0.95}
  gap_order = sorted(covering, key=lambda s: covering[s]["loss_gap"])
  report = {
      "rises_with_M": m_verdicts, "rises_with_alpha": a_verdicts,
      "knn_highest_false_negative_rate": fn_order[0] == "knn",
      "false_negative_order": fn_order,
      "tail_smallest_gap_among_covering": bool(gap_order and gap_order[0] == "tail"),
      "loss_gap_order_among_covering": gap_order,
  }
  print(f"\n## ProSampler along M (α default)\n\n{m_table}\n\nrises: {m_verdicts}")
  print(f"\n## ProSampler along α (M default)\n\n{a_table}\n\nrises: {a_verdicts}")
  print("\n## Every sampler\n")
  with open(os.path.join(out, "all", "compare.md")) as f:
    print(f.read())
  print(json.dumps(report, indent=2))
  with open(os.path.join(out, "claims.json"), "w") as f:
    json.dump({**report, "by_M": dict(zip(map(str, candidates), by_m)),
               "by_alpha": dict(zip(restart_probs, by_alpha)), "every": every}, f, indent=2)


if __name__ == "__main__":
  define_flags()
  app.run(main)
