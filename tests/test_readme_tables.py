"""The README's result tables equal the committed results files (experiments/readme_tables.py): a number
typed into the README, or a results file updated without the README, fails here."""

from __future__ import annotations

import os
import shutil

import finished_sweeps
from experiments import readme_tables


def test_the_readmes_tables_are_the_committed_results():
  with open(os.path.join(readme_tables.REPO, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  named = [path for path, _ in readme_tables.blocks(readme)]
  assert {"experiments/results/digits.md", "experiments/results/graphcl_mutag.md"} <= set(named)
  assert readme_tables.stale(readme) == []


def test_a_typed_number_or_a_stale_table_is_named_and_write_restores_the_files_table(tmp_path):
  os.makedirs(tmp_path / "experiments" / "results")
  shutil.copy(os.path.join(readme_tables.REPO, "experiments", "results", "digits.md"),
              tmp_path / "experiments" / "results" / "digits.md")
  table = (tmp_path / "experiments" / "results" / "digits.md").read_text()
  readme = f"intro\n<!-- table: experiments/results/digits.md -->\n{table}<!-- end table -->\nafter\n"
  assert readme_tables.stale(readme, str(tmp_path)) == []
  typed = readme.replace("0.9130 ± 0.0185", "0.9230 ± 0.0185")
  assert typed != readme
  assert readme_tables.stale(typed, str(tmp_path)) == [
      "experiments/results/digits.md: the README's table differs from the file"]
  assert readme_tables.write(typed, str(tmp_path)) == readme
  missing = readme.replace("digits.md", "cifar10.md")
  assert readme_tables.stale(missing, str(tmp_path)) == ["experiments/results/cifar10.md: no such file"]


def test_the_demonstrations_tables_come_from_plan_compare_and_the_claims_grids(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  claims = tmp_path / "pairs" / "toy" / "claims"
  os.makedirs(claims / "all")
  (claims / "all" / "compare.md").write_text(
      "Samplers on toy: N = 10.\n\n| Sampler | Loss gap | Seconds per epoch |\n|:---|---:|---:|\n"
      "| uniform | 2.4724 | 0.0002 |\n| tail | 1.4342 | 0.64 |\n")
  row = lambda h: {"mean_neg_cos": h, "false_negative_rate": h / 10, "margin_dropped_rate": h / 5,
                   "loss_gap": 2 - h}
  (claims / "claims.json").write_text(json.dumps({"by_M": {"100": row(0.1), "300": row(0.2)}}))
  # The machine-dependent seconds are dropped; everything else is the tool's own table.
  assert readme_tables.source_table("pairs_toy", str(tmp_path)) == (
      "| Sampler | Loss gap |\n| :--- | ---: |\n| uniform | 2.4724 |\n| tail | 1.4342 |")
  grid = readme_tables.source_table("pairs_toy_M", str(tmp_path)).splitlines()
  assert grid[0] == "| M | mean_neg_cos | false_negative_rate | margin_dropped_rate | loss_gap |"
  assert grid[2:] == ["| 100 | 0.1000 | 0.0100 | 0.0200 | 1.9000 |", "| 300 | 0.2000 | 0.0200 | 0.0400 | 1.8000 |"]
  assert readme_tables.source_table("pairs_other", str(tmp_path)) is None


def test_a_paired_table_comes_from_the_same_sweep(tmp_path, monkeypatch):
  from experiments.ablations import summarize  # pylint: disable=g-import-not-at-top
  os.makedirs(tmp_path / "graphcl_toy")
  (tmp_path / "graphcl_toy" / "sweep.json").write_text("{}")
  monkeypatch.setattr(summarize, "load_runs", lambda path: ({}, [{"task": "graphcl"}]))
  summaries = {True: {"markdown": "| all |", "paired_markdown": "| paired |"},
               False: {"markdown": "| all |", "paired_markdown": ""}}
  with_uniform = True
  monkeypatch.setattr(summarize, "aggregate", lambda path, columns: summaries[with_uniform])
  assert readme_tables.source_table("graphcl_toy", str(tmp_path)) == "| all |"
  assert readme_tables.source_table("graphcl_toy_paired", str(tmp_path)) == "| paired |"
  with_uniform = False  # no uniform runs: nothing to pair with
  assert readme_tables.source_table("graphcl_toy_paired", str(tmp_path)) is None
  assert readme_tables.source_table("graphcl_other_paired", str(tmp_path)) is None


def test_a_follow_up_table_pairs_with_the_comparisons_uniform_and_same_sampler_runs(tmp_path):
  finished_sweeps.margin_follow_up(str(tmp_path))
  table = readme_tables.source_table("margin_vs_comparison", str(tmp_path))
  against_uniform, against_prosampler = table.split("\n\n")
  assert "Δ svm_acc vs sampler=uniform" in against_uniform
  assert "| sampler=proximity, margin=0.95 | 3 | +0.0167 ± 0.0058 | +0.0200 +0.0100 +0.0200 | 3 / 0 |" in (
      against_uniform)
  assert "Δ svm_acc vs sampler=proximity" in against_prosampler
  assert "| +0.0100 -0.0200 +0.0300 | 2 / 1 |" in against_prosampler
  assert readme_tables.source_table("margin_vs_absent", str(tmp_path)) is None
  # A sweep that started but finished nothing has no table yet, alone or paired.
  os.makedirs(tmp_path / "started")
  shutil.copy(tmp_path / "margin" / "sweep.json", tmp_path / "started" / "sweep.json")
  assert readme_tables.source_table("started", str(tmp_path)) is None
  assert readme_tables.source_table("started_vs_comparison", str(tmp_path)) is None
