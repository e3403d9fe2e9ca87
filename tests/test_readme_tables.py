"""The README's result tables equal the committed results files (experiments/readme_tables.py): a number
typed into the README, or a results file updated without the README, fails here."""

from __future__ import annotations

import os
import shutil

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
