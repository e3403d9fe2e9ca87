"""The README's result tables come from runs, not from typing: each sits between markers

  <!-- table: experiments/results/NAME.md -->
  …
  <!-- end table -->

and must equal the committed file, which holds the table the comparison printed (``summarize``'s
Markdown with ``summarize.comparison_columns``).

  python -m experiments.readme_tables            # check: exit 1 naming every table that differs
  python -m experiments.readme_tables --collect  # runs/<NAME>/ → experiments/results/NAME.md
  python -m experiments.readme_tables --write    # experiments/results/*.md → the README's blocks

After ``./run.sh`` (or a graph comparison), ``--collect`` then ``--write`` puts the new numbers in the
README; a test runs the check, so a hand-edited number or a stale table fails CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join("experiments", "results")
_BLOCK = re.compile(r"(<!-- table: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def blocks(readme: str) -> list[tuple[str, str]]:
  """``(results file, the README's table)`` for every marked block, in order."""
  return [(m["path"], m["body"]) for m in _BLOCK.finditer(readme)]


def stale(readme: str, root: str = REPO) -> list[str]:
  """The blocks whose table differs from their results file (or whose file is missing)."""
  problems = []
  for path, body in blocks(readme):
    full = os.path.join(root, path)
    if not os.path.isfile(full):
      problems.append(f"{path}: no such file")
    elif open(full, encoding="utf-8").read() != body:
      problems.append(f"{path}: the README's table differs from the file")
  return problems


def write(readme: str, root: str = REPO) -> str:
  """The README with every block replaced by its results file."""
  return _BLOCK.sub(lambda m: m.group(1) + open(os.path.join(root, m["path"]), encoding="utf-8").read()
                    + m.group(4), readme)


def collect(runs: str, root: str = REPO) -> list[str]:
  """Writes ``experiments/results/NAME.md`` for every results file the README names whose source under
  ``runs`` exists (``source_table``). Returns the files written."""
  written = []
  with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
    names = [os.path.splitext(os.path.basename(path))[0] for path, _ in blocks(f.read())]
  for name in names:
    table = source_table(name, runs)
    if table is None:
      continue
    path = os.path.join(root, RESULTS, f"{name}.md")
    with open(path, "w", encoding="utf-8") as f:
      f.write(table + "\n")
    written.append(path)
  return written


def source_table(name: str, runs: str) -> str | None:
  """The table behind results file NAME, or None when its run is not under ``runs`` or has not finished:

  - ``pairs_<set>``: the sampler comparison of ``experiments.examples.sampler_claims`` on that set
    (``runs/pairs/<set>/claims/all/compare.md``) without its seconds, which measure the machine's load;
  - ``pairs_<set>_M`` / ``pairs_<set>_alpha``: ProSampler along that grid (from ``claims.json``);
  - ``<sweep>_paired``: the sweep ``runs/<sweep>``'s points paired with uniform batches by seed
    (``summarize.paired_rows``);
  - ``<follow-up>_vs_<comparison>``: a follow-up sweep's points paired by seed with another sweep's
    uniform batches and its run of the same sampler (``summarize.follow_up``), one table each;
  - anything else: the sweep ``runs/NAME``'s comparison table (``summarize.comparison_columns``).
  """
  if name.startswith("pairs_"):
    dataset, _, grid = name[len("pairs_"):].partition("_")
    claims = os.path.join(runs, "pairs", dataset, "claims")
    if grid:
      path = os.path.join(claims, "claims.json")
      if not os.path.isfile(path):
        return None
      from experiments.examples import sampler_claims  # pylint: disable=g-import-not-at-top
      with open(path, encoding="utf-8") as f:
        points = json.load(f)[f"by_{grid}"]
      return sampler_claims.grid_table("α" if grid == "alpha" else grid, list(points),
                                       list(points.values()))[0]
    path = os.path.join(claims, "all", "compare.md")
    if not os.path.isfile(path):
      return None
    with open(path, encoding="utf-8") as f:
      return _without_column([line for line in f.read().splitlines() if line.startswith("|")],
                             "Seconds per epoch")
  from experiments.ablations import summarize  # pylint: disable=g-import-not-at-top
  if "_vs_" in name:
    dirs = [os.path.join(runs, part) for part in name.split("_vs_", 1)]
    if not all(os.path.isfile(os.path.join(d, "sweep.json")) for d in dirs):
      return None
    metric, tables = summarize.follow_up(*dirs)
    return "\n\n".join(summarize.paired_markdown(rows, metric, reference)
                        for reference, rows in tables) or None
  paired = name.endswith("_paired")
  sweep_dir = os.path.join(runs, name.removesuffix("_paired"))
  if not os.path.isfile(os.path.join(sweep_dir, "sweep.json")):
    return None
  _, sweep_runs = summarize.load_runs(sweep_dir)
  if not sweep_runs:
    return None  # started, nothing finished yet
  summary = summarize.aggregate(sweep_dir, summarize.comparison_columns(sweep_runs[0]["task"]))
  return (summary["paired_markdown"] or None) if paired else summary["markdown"]


def _without_column(lines: list[str], column: str) -> str:
  """A Markdown table (its lines) without the named column."""
  cells = [line.strip().strip("|").split("|") for line in lines]
  drop = [c.strip() for c in cells[0]].index(column)
  return "\n".join("| " + " | ".join(c.strip() for i, c in enumerate(row) if i != drop) + " |"
                   for row in cells)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m experiments.readme_tables",
                                   description=__doc__.split("\n", maxsplit=1)[0])
  parser.add_argument("--collect", action="store_true", help="Write experiments/results from runs/.")
  parser.add_argument("--write", action="store_true", help="Write the README's tables from the files.")
  parser.add_argument("--runs", default=os.path.join(REPO, "runs"), help="Where the sweeps are.")
  args = parser.parse_args(argv)
  readme_path = os.path.join(REPO, "README.md")
  if args.collect:
    for path in collect(args.runs):
      print(f"wrote {os.path.relpath(path, REPO)}")
    if not args.write:
      return 0
  with open(readme_path, encoding="utf-8") as f:
    readme = f.read()
  if args.write:
    with open(readme_path, "w", encoding="utf-8") as f:
      f.write(write(readme))
    print("README.md: tables written from experiments/results")
    return 0
  problems = stale(readme)
  for problem in problems:
    print(f"error: {problem}", file=sys.stderr)
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
