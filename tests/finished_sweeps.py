"""Finished sweeps written to disk as the runner leaves them (sweep.json with each run's config, one
results.json per run), for the code that only reads results: pairing and the README's tables."""

from __future__ import annotations

import json
import os

from experiments.ablations import runner


def graphcl_config(sampler: str, seed: int, margin: float | None = None, epochs: int = 20,
                   restart_prob: float = 0.2) -> dict:
  """The part of a GraphCL run's config that pairing compares."""
  return {"seed": seed, "num_epochs": epochs, "sampler": {"name": sampler, "restart_prob": restart_prob},
          "loss": {"name": "graphcl", "false_negative_margin": margin}}


def write_sweep(parent: str, name: str, runs: list[tuple[dict, dict, float]]) -> str:
  """``parent/name``: one finished run per ``(point, config, svm_acc)``; runs under a false-negative margin
  report the share of negatives it dropped."""
  sweep_dir = os.path.join(parent, name)
  spec = {"name": name, "config": "experiments/configs/graphcl_nci1.py", "metric": "svm_acc",
          "runs": [], "points": [], "configs": {}}
  for point, config, accuracy in runs:
    run = runner.run_name(point)
    spec["runs"].append(run)
    spec["points"].append(point)
    spec["configs"][run] = config
    os.makedirs(os.path.join(sweep_dir, run))
    with open(os.path.join(sweep_dir, run, "results.json"), "w") as f:
      stats = {"margin_dropped_rate": 0.07} if config["loss"]["false_negative_margin"] else {}
      json.dump({"config": config, "task": "graphcl", "dataset": "NCI1", "svm_acc": accuracy,
                 "batch_stats": stats}, f)
  with open(os.path.join(sweep_dir, "sweep.json"), "w") as f:
    json.dump(spec, f)
  return sweep_dir


def margin_follow_up(parent: str) -> tuple[str, str]:
  """A sampler comparison (uniform, ProSampler; seeds 0-2) and a follow-up sweep of ProSampler with the
  false-negative margin (seeds 0-3: seed 3 has nothing to pair with). Margin − uniform per seed:
  +0.02, +0.01, +0.02; margin − ProSampler: +0.01, −0.02, +0.03."""
  comparison = write_sweep(parent, "comparison", [
      ({"sampler": s, "seed": seed}, graphcl_config(s, seed), acc)
      for s, accs in (("uniform", (0.78, 0.77, 0.79)), ("proximity", (0.79, 0.80, 0.78)))
      for seed, acc in enumerate(accs)])
  margin = write_sweep(parent, "margin", [
      ({"sampler": "proximity", "margin": 0.95, "seed": seed}, graphcl_config("proximity", seed, 0.95), acc)
      for seed, acc in enumerate((0.80, 0.78, 0.81, 0.9))])
  return comparison, margin


def alpha_follow_up(parent: str) -> str:
  """Beside ``margin_follow_up``'s comparison: a follow-up sweep of ProSampler's restart probability
  (α = 0.05; seeds 0-2). α − uniform per seed: +0.03, +0.03, 0.00; α − ProSampler: +0.02, 0.00, +0.01."""
  return write_sweep(parent, "alpha", [
      ({"sampler": "proximity", "alpha": 0.05, "seed": seed},
       graphcl_config("proximity", seed, restart_prob=0.05), acc)
      for seed, acc in enumerate((0.81, 0.80, 0.79))])
