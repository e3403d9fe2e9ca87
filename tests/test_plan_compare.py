"""Tests for ``python -m prosampler_jax.plan compare``: every sampler on the same saved embeddings, run
as a real command (real files, real exit codes). The figures are checked against
``diagnostics.batch_stats`` on a replay of each sampler (a pure function of seed, epoch and embeddings),
and the four outputs against each other."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import batch_plan
from prosampler_jax import diagnostics
from prosampler_jax import plan_compare
from prosampler_jax import samplers
from prosampler_jax.normalize import pair_rows

N, D, B = 250, 8, 16  # N mod B = 10 items left out of each epoch: coverage (N // B · B) / N = 0.96
SEED = 3
PROXIMITY = {"num_candidates": 40, "num_neighbors": 10}
FULL = ["uniform", "knn", "tail", "proximity"]
# The table's columns, written out here (not read from plan_compare.py) so a swapped or renamed column fails.
COLUMNS = [("sampler", "Sampler"), ("mean_neg_cos", "Mean negative cosine"),
           ("max_neg_cos", "Max negative cosine"), ("false_negative_rate", "False-negative rate"),
           ("margin_dropped_rate", "Margin-dropped rate"), ("loss_gap", "Loss gap"),
           ("coverage", "Coverage"), ("seconds_per_epoch", "Seconds per epoch")]
NUMBERS = [key for key, _ in COLUMNS[1:]]


def _data():
  """Six clusters in D = 8; each item's pair is itself plus a little noise; labels are the clusters."""
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(6, D))
  labels = rng.integers(0, 6, N)
  x = (centres[labels] + 0.3 * rng.normal(size=(N, D))).astype(np.float32)
  y = (x + 0.05 * rng.normal(size=(N, D))).astype(np.float32)
  return x, y, labels


def _cli(cwd, *args):
  return subprocess.run([sys.executable, "-m", "prosampler_jax.plan", "compare", *args],
                        capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp("compare")
  x, y, labels = _data()
  arrays = {"emb": x, "pairs": y, "labels": labels, "short": x[:10], "short_labels": labels[:10],
            "empty": x[:0], "ints": np.ones((N, D), np.int64),
            "nan": np.where(np.arange(N)[:, None] == 7, np.nan, x)}
  for name, array in arrays.items():
    np.save(path / f"{name}.npy", array)
  np.savez(path / "emb.npz", x=x)
  (path / "notes.txt").write_text("not an array\n")
  return path


@pytest.fixture(scope="module")
def full_run(workdir):
  """uniform, knn, tail and proximity for two epochs with labels, pairs and a margin."""
  done = _cli(workdir, "--embeddings=emb.npy", "--pairs=pairs.npy", "--labels=labels.npy",
              f"--batch-size={B}", f"--samplers={','.join(FULL)}", "--epochs=2", f"--seed={SEED}",
              "--false-negative-margin=0.9", "--out=full/run",
              *(f"--proximity.{k}={v}" for k, v in PROXIMITY.items()))
  assert done.returncode == 0, done.stderr
  return done, json.loads((workdir / "full/run/compare.json").read_text())


def _markdown_rows(text: str) -> list[list[str]]:
  """The cells of a Markdown table's rows, header first, separator dropped."""
  rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
  return [[cell.strip() for cell in row] for i, row in enumerate(rows) if i != 1]


def test_writes_four_files_with_one_row_per_requested_sampler(workdir, full_run):
  done, report = full_run
  out = workdir / "full/run"  # made, parents too
  paths = [out / f"compare.{ext}" for ext in ("md", "csv", "json", "png")]
  assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
  assert [r["sampler"] for r in report["rows"]] == FULL
  assert all(math.isfinite(r[key]) for r in report["rows"] for key in NUMBERS)
  settings = report["settings"]
  assert (settings["n"], settings["d"], settings["batch_size"], settings["epochs"], settings["seed"],
          settings["temperature"], settings["false_negative_margin"], settings["loss_gap_anchors"]) == (
              N, D, B, 2, SEED, 0.05, 0.9, None)  # None: exact, every slot
  from matplotlib import image as mpimg  # pylint: disable=g-import-not-at-top
  image = mpimg.imread(paths[3])
  assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
  # stdout: the table, then the paths; stderr: a progress bar ticking per (sampler, epoch).
  assert (out / "compare.md").read_text().strip() in done.stdout
  assert all(f"full/run/compare.{ext}" in done.stdout for ext in ("md", "csv", "json", "png"))
  assert "8/8" in done.stderr and all(f"{name}:" in done.stderr for name in FULL)


def test_csv_and_markdown_agree_with_json(workdir, full_run):
  _, report = full_run
  with open(workdir / "full/run/compare.csv", newline="") as f:
    table = list(csv.reader(f))
  assert table[0] == [key for key, _ in COLUMNS]
  for line, row in zip(table[1:], report["rows"], strict=True):
    assert line[0] == row["sampler"]
    assert [float(cell) for cell in line[1:]] == [row[key] for key in NUMBERS]  # exact: same floats

  text = (workdir / "full/run/compare.md").read_text()
  caption = text.splitlines()[0]
  for part in (f"N = {N}", f"D = {D}", f"B = {B}", "2 epoch(s)", f"seed {SEED}", "temperature 0.05",
               "compilation excluded"):
    assert part in caption
  assert "Blank" not in caption  # labels, pairs and margin given: every column filled
  header, *rows = _markdown_rows(text)
  assert header == [heading for _, heading in COLUMNS]
  for cells, row in zip(rows, report["rows"], strict=True):
    assert cells[0] == row["sampler"]
    for key, cell in zip(NUMBERS, cells[1:]):
      assert float(cell) == pytest.approx(row[key], rel=1e-3, abs=5e-5), key


def test_figures_are_batch_stats_of_a_replay_of_each_sampler(full_run):
  """Each row is the mean over epochs of batch_stats on the batches the sampler draws from the same
  seed and arguments, given what batch_plan gives it ("tail" the pair, the others the paired bank)."""
  _, report = full_run
  x, y, labels = _data()
  bank = pair_rows(jnp.asarray(x), jnp.asarray(y))
  for row in report["rows"]:
    name = row["sampler"]
    sampler = samplers.make_sampler(name, N, B, seed=SEED, **(PROXIMITY if name == "proximity" else {}))
    plans, _ = batch_plan.batch_plan(sampler, (x, y), epochs=2)
    stats = [diagnostics.batch_stats(p, bank, labels, pairs=(x, y), temperature=0.05,
                                     false_negative_margin=0.9, seed=SEED) for p in plans]
    for key in NUMBERS[:-1]:  # all but the seconds
      assert row[key] == pytest.approx(np.mean([s[key] for s in stats]), rel=1e-5), (name, key)
    assert row["seconds_per_epoch"] > 0 and row["warmup_seconds"] > 0
  # The untimed warm-up took the compilation: far slower than a timed epoch of a JAX sampler.
  rows = {r["sampler"]: r for r in report["rows"]}
  for name in ("tail", "proximity"):
    assert rows[name]["seconds_per_epoch"] < rows[name]["warmup_seconds"], name


def test_figures_rank_the_samplers_as_expected_on_clustered_data(full_run):
  _, report = full_run
  rows = {r["sampler"]: r for r in report["rows"]}
  assert rows["knn"]["false_negative_rate"] > rows["uniform"]["false_negative_rate"] + 0.3
  assert rows["knn"]["mean_neg_cos"] > rows["uniform"]["mean_neg_cos"] + 0.3
  assert rows["uniform"]["loss_gap"] > rows["tail"]["loss_gap"] + 0.3  # harder batches, smaller gap
  assert rows["uniform"]["coverage"] == (N // B * B) / N
  assert rows["knn"]["margin_dropped_rate"] > rows["uniform"]["margin_dropped_rate"]


def test_per_sampler_options_reach_their_sampler_and_all_samplers_run_by_default(workdir):
  """Two runs differing in proximity's M and tail's q: the rows record them and their figures differ,
  uniform's do not. Without --samplers every sampler runs, in the table's order; without --pairs and
  --labels their columns are blank and the caption says why."""
  reports = {}
  runs = ((12, "0.5", []), (120, "none", ["--samplers=uniform,proximity,tail"]))
  for candidates, quantile, only in runs:
    out = f"options_{candidates}"
    done = _cli(workdir, "--embeddings=emb.npy", f"--batch-size={B}", f"--out={out}", *only,
                f"--proximity.num_candidates={candidates}", "--proximity.num_neighbors=10",
                f"--tail.quantile={quantile}")
    assert done.returncode == 0, done.stderr
    reports[candidates] = {r["sampler"]: r for r in
                           json.loads((workdir / out / "compare.json").read_text())["rows"]}
  small, large = reports[12], reports[120]
  assert list(small) == list(samplers.SAMPLERS)
  assert small["proximity"]["arguments"] == {**large["proximity"]["arguments"], "num_candidates": 12}
  assert large["proximity"]["arguments"]["num_candidates"] == 120
  assert large["proximity"]["arguments"]["restart_prob"] == 0.2  # the sampler's default, recorded
  assert (small["tail"]["arguments"]["quantile"], large["tail"]["arguments"]["quantile"]) == (0.5, None)
  for name in ("proximity", "tail"):
    assert small[name]["mean_neg_cos"] != large[name]["mean_neg_cos"], name
  assert list(large) == ["uniform", "proximity", "tail"]
  assert small["uniform"]["mean_neg_cos"] == large["uniform"]["mean_neg_cos"]

  assert all(r["loss_gap"] is None and r["false_negative_rate"] is None for r in small.values())
  text = (workdir / "options_12/compare.md").read_text()
  assert "loss gap (no --pairs" in text.splitlines()[0]
  assert "false-negative rate (no --labels)" in text.splitlines()[0]
  assert all(cells[3] == cells[5] == "" for cells in _markdown_rows(text)[1:])
  with open(workdir / "options_12/compare.csv", newline="") as f:
    assert all(line[3] == line[5] == "" for line in list(csv.reader(f))[1:])


def test_plot_shows_hardness_against_false_negatives_coloured_by_loss_gap(tmp_path, full_run):
  _, report = full_run
  rows = report["rows"]
  figure = plan_compare.plot(str(tmp_path / "plot.png"), report["settings"], rows)
  axes, colorbar = figure.axes  # the colour bar: the loss gap
  assert "loss gap" in colorbar.get_ylabel().lower()
  assert "mean negative cosine" in axes.get_xlabel() and "False-negative rate" in axes.get_ylabel()
  assert "_" not in axes.get_xlabel() + axes.get_ylabel() + colorbar.get_ylabel()
  points = axes.collections[0]
  np.testing.assert_allclose(points.get_offsets(), [[r["mean_neg_cos"], r["false_negative_rate"]]
                                                    for r in rows])
  np.testing.assert_allclose(points.get_array(), [r["loss_gap"] for r in rows])
  assert axes.get_xlim()[0] <= 0 and axes.get_ylim()[0] <= 0  # no axis cut to magnify differences
  texts = [t.get_text() for t in axes.texts]
  assert texts == [f"{r['sampler']} (gap {r['loss_gap']:.3g})" for r in rows]
  renderer = figure.canvas.get_renderer()
  boxes = [t.get_window_extent(renderer) for t in axes.texts]
  frame = axes.get_window_extent(renderer)
  assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1) for b in boxes)
  assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
  # Without labels and pairs: the hardest negative on y, plain points, names only.
  bare = {**report["settings"], "labels": None, "pairs": None}
  blank = [{**r, "false_negative_rate": None, "loss_gap": None} for r in rows]
  figure = plan_compare.plot(str(tmp_path / "bare.png"), bare, blank)
  assert len(figure.axes) == 1 and "max negative cosine" in figure.axes[0].get_ylabel()
  np.testing.assert_allclose(figure.axes[0].collections[0].get_offsets(),
                             [[r["mean_neg_cos"], r["max_neg_cos"]] for r in rows])
  assert [t.get_text() for t in figure.axes[0].texts] == FULL


# Bad input: the flags that differ from a good run, and (a part of) the one error line it must give.
BAD_INPUT = [
    (["--embeddings=missing.npy"], "--embeddings='missing.npy': no such file"),
    (["--embeddings=notes.txt"], "--embeddings='notes.txt' is not a readable .npy array"),
    (["--embeddings=emb.npz"], "--embeddings='emb.npz' is a .npz archive (arrays: x); allowed: one"),
    (["--embeddings=labels.npy"], f"--embeddings='labels.npy' has shape ({N},); allowed: rank 2"),
    (["--embeddings=empty.npy"], "--embeddings must have N >= 2 rows"),
    (["--embeddings=ints.npy"], "--embeddings must have a floating dtype"),
    (["--embeddings=nan.npy"], "--embeddings has 1 non-finite row(s) (first: [7])"),
    (["--labels=emb.npy"], f"--labels='emb.npy' has shape ({N}, {D}); allowed: rank 1"),
    (["--pairs=short.npy"], f"--pairs has shape (10, {D}); allowed: the shape of --embeddings"),
    (["--labels=short_labels.npy"], f"--labels has shape (10,); allowed: ({N},)"),
    (["--batch-size=1"], f"--batch-size=1 is out of range; allowed: [2, {N}]"),
    ([f"--batch-size={N + 1}"], f"--batch-size={N + 1} is out of range; allowed: [2, {N}]"),
    (["--epochs=0"], "--epochs=0 is out of range"),
    (["--samplers=uniform,bogus"], "'bogus' is not a sampler; allowed: a comma-separated list of "
     + ", ".join(samplers.SAMPLERS)),
    (["--samplers=knn,knn"], "--samplers='knn,knn' names a sampler twice"),
    (["--proximity.restart_prob=2"], "--proximity.restart_prob=2 is out of range; allowed: [0, 1]"),
    (["--proximity.num_candidates=many"],
     "--proximity.num_candidates='many'; allowed: a value of type int or none"),
    (["--tail.num_candidates=5"], "--tail.num_candidates: tail does not take 'num_candidates'; allowed: "
     "--tail.quantile, --tail.max_neighbors, --tail.graph"),
    (["--tail.seed=5"], "--tail.seed: tail does not take 'seed'"),
    (["--samplers=uniform", "--proximity.num_candidates=40"],
     "--proximity.num_candidates: 'proximity' is not in this run; allowed: options of uniform"),
    (["--bogus=1"], "unrecognised argument '--bogus=1'"),
    (["--pairs=pairs.npy", "--temperature=0"], "--temperature=0 is out of range; allowed: (0, inf"),
    (["--pairs=pairs.npy", "--loss-gap-anchors=0"], "--loss-gap-anchors=0 is out of range"),
    (["--false-negative-margin=0.5"], "--false-negative-margin needs --pairs"),
    (["--temperature=0.1"], "--temperature needs --pairs"),
    (["--out=emb.npy"], "--out='emb.npy' is an existing file; allowed: a directory"),
    (["--out=emb.npy/sub"], ("--out='emb.npy/sub': ", "emb.npy is not a writable directory")),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(args) for args, _ in BAD_INPUT])
def test_bad_input_is_one_clear_error_with_status_2(workdir, args, message):
  defaults = {"--embeddings": "emb.npy", "--batch-size": str(B), "--out": "never"}
  given = dict(a.split("=", 1) for a in args)
  done = _cli(workdir, *(f"{k}={v}" for k, v in {**defaults, **given}.items()))
  lines = done.stderr.strip().splitlines()
  assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
  parts = (message,) if isinstance(message, str) else message
  assert all(part in lines[0] for part in parts), lines[0]
  assert not (workdir / "never").exists()  # nothing was written: the error came first
