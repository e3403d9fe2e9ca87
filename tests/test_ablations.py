"""Tests for the ablation sweep runner (runner.py), the summariser and the reproduction notebook: a real
tiny sweep of SimCLR on digits (8 runs), resumed, printed as cluster commands, summarised, and the
notebook executed headlessly on its results."""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil

import numpy as np
import pytest

import finished_sweeps
from experiments.ablations import runner
from experiments.ablations import summarize
from experiments.ablations import sweeps

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPEC = {
    "config": "experiments/configs/simclr_digits.py",
    "overrides": {"num_epochs": 2, "batch_size": 256, "model.width": 8, "model.projection_dim": 16,
                  "sampler.num_neighbors": 10, "eval.knn_k": 10, "eval.linear_epochs": 2,
                  "checkpoint_steps": 100},
    "grid": [{"sampler": ["uniform", "knn"]}, {"sampler": ["proximity"], "M": [20, 200]}],
    "seeds": [0, 1],
    "metric": "knn_accuracy",
    "paper": "a tiny test sweep",
}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
  parent = str(tmp_path_factory.mktemp("ablations"))
  cwd = os.getcwd()
  os.chdir(REPO)  # config paths are relative to the repository
  try:
    runner.run_sweep("tiny", SPEC, parent)
    yield os.path.join(parent, "tiny")
  finally:
    os.chdir(cwd)


def test_expand_and_names():
  points = runner.expand(SPEC["grid"], [0, 1])
  assert len(points) == 8 and points[0] == {"sampler": "uniform", "seed": 0}
  assert runner.run_name(points[-1]) == "sampler=proximity,M=200,seed=1"
  config = runner.make_config(runner.load_config(SPEC["config"]), SPEC["overrides"], points[-1])
  assert (config.sampler.num_candidates, config.seed, config.num_epochs) == (200, 1, 2)
  with pytest.raises(ValueError, match="axis or override 'sampler.bogus' is not a config key"):
    runner.make_config(config, {}, {"sampler.bogus": 1})
  assert set(sweeps.AXES) == {"sampler", "M", "alpha", "K", "B", "t", "loss", "quantile", "max_neighbors",
                              "margin", "seed"}
  twice = {"config": SPEC["config"], "grid": [{"sampler": ["proximity"], "M": [20]},
                                              {"sampler": ["proximity"], "M": [20], "alpha": [0.2]}],
           "seeds": [0]}
  with pytest.raises(ValueError, match="give the same config"):
    runner.run_sweep("twice", twice, str(os.path.join(REPO, "runs", "never")), print_commands=True)
  # An axis the point's sampler does not read makes "distinct" configs that train one model.
  inert = {"config": SPEC["config"], "grid": [{"sampler": ["tail"], "M": [20, 50]}], "seeds": [0]}
  with pytest.raises(ValueError, match=r"'sampler=tail,M=20,seed=0' and 'sampler=tail,M=50,seed=0' train the "
                                       r"same model: they differ only in sampler.num_candidates, which "
                                       r"sampler 'tail' does not read"):
    runner.run_sweep("inert", inert, str(os.path.join(REPO, "runs", "never")), print_commands=True)


def test_every_ready_made_sweep_builds_valid_configs():
  from prosampler_jax import run_config  # pylint: disable=g-import-not-at-top
  for name, spec in sweeps.SWEEPS.items():
    base = runner.load_config(os.path.join(REPO, spec["config"]))
    points = runner.expand(spec["grid"], spec["seeds"])
    configs = [runner.make_config(base, spec.get("overrides", {}), point) for point in points]
    for config in configs:
      run_config.validate(config)
    runner.check_distinct(points, configs)  # no run twice under two names


def test_one_directory_per_run_and_a_rerun_skips_finished_runs(sweep_dir, monkeypatch):
  names = json.load(open(os.path.join(sweep_dir, "sweep.json")))["runs"]
  assert len(names) == 8
  for name in names:
    result = json.load(open(os.path.join(sweep_dir, name, "results.json")))
    point = dict(item.split("=") for item in name.split(","))
    assert result["sampler"] == point["sampler"] and result["config"]["seed"] == int(point["seed"])
    if "M" in point:
      assert result["config"]["sampler"]["num_candidates"] == int(point["M"])
    assert os.path.getsize(os.path.join(sweep_dir, name, "train.log")) > 0  # INFO lines went there
  from prosampler_jax import train  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: pytest.fail("reran a finished run"))
  runner.run_sweep("tiny", SPEC, os.path.dirname(sweep_dir))


def test_a_changed_config_goes_to_the_loop_and_a_preempted_run_stops_the_sweep(sweep_dir, monkeypatch,
                                                                                 tmp_path):
  # Results of another config are not "finished": the loop gets the run (and extends or refuses it).
  # A run stopped by SIGTERM stops the sweep: no further run starts in the grace period.
  from prosampler_jax import train  # pylint: disable=g-import-not-at-top
  calls = []

  def preempted(config, workdir):
    calls.append((os.path.basename(workdir), config.num_epochs))
    return {"steps": 3, "stopped_early": True, "stop_reason": "preempted"}

  monkeypatch.setattr(train, "train_and_evaluate", preempted)
  longer = {**SPEC, "overrides": {**SPEC["overrides"], "num_epochs": 3}}
  shutil.copytree(sweep_dir, tmp_path / "tiny")  # the new definition goes to a copy, not the shared sweep
  with pytest.raises(runner.Preempted, match="sampler=uniform,seed=0 stopped on SIGTERM"):
    runner.run_sweep("tiny", longer, str(tmp_path))
  assert calls == [("sampler=uniform,seed=0", 3)]
  # Under the new definition (3 epochs) the 2-epoch results are not its runs' results.
  with pytest.raises(ValueError, match="no finished runs"):
    summarize.aggregate(str(tmp_path / "tiny"))


def test_print_commands_lists_the_unfinished_runs_as_launch_lines(sweep_dir, capsys, tmp_path):
  parent = str(tmp_path)
  os.makedirs(os.path.join(parent, "tiny", "sampler=knn,seed=1"))
  for name in json.load(open(os.path.join(sweep_dir, "sweep.json")))["runs"]:
    if name != "sampler=proximity,M=200,seed=1":  # the others finished: their results, their config
      os.makedirs(os.path.join(parent, "tiny", name), exist_ok=True)
      shutil.copy(os.path.join(sweep_dir, name, "results.json"), os.path.join(parent, "tiny", name))
  runner.run_sweep("tiny", SPEC, parent, print_commands=True)
  (line,) = capsys.readouterr().out.strip().splitlines()
  args = shlex.split(line)
  assert args[1:3] == ["-m", "prosampler_jax.main"] and "--config=experiments/configs/simclr_digits.py" in args
  assert {"--config.sampler.name=proximity", "--config.sampler.num_candidates=200", "--config.seed=1",
          "--config.num_epochs=2"} <= set(args)
  assert f"--workdir={os.path.join(parent, 'tiny', 'sampler=proximity,M=200,seed=1')}" in args


def test_summary_tables_are_mean_and_std_over_seeds_and_the_plots_exist(sweep_dir):
  summary = summarize.summarize(sweep_dir)
  assert summary["metric"] == "knn_accuracy" and summary["finished_runs"] == 8
  knn = [json.load(open(os.path.join(sweep_dir, f"sampler=proximity,M=20,seed={s}", "results.json")))
         ["knn_accuracy"] for s in (0, 1)]
  (row,) = [r for r in summary["rows"] if r["axes"] == {"sampler": "proximity", "M": 20}]
  assert row["seeds"] == 2
  np.testing.assert_allclose(row["knn_accuracy"][:2], (np.mean(knn), np.std(knn, ddof=1)), rtol=1e-12)
  assert f"| proximity | 20 | 2 | {np.mean(knn):.4f} ± {np.std(knn, ddof=1):.4f} |" in summary["markdown"]
  with open(os.path.join(sweep_dir, "summary.csv")) as f:
    table = list(csv.DictReader(f))
  assert len(table) == 4 and {"sampler", "M", "seeds", "knn_accuracy_mean", "mean_neg_cos_std"} <= set(table[0])
  names = {os.path.basename(p) for p in summary["plots"]}
  assert names == {"knn_accuracy_vs_M.png", "mean_neg_cos_vs_M.png", "false_negative_rate_vs_M.png",
                   "samplers.png", "hardness.png"}
  assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in summary["plots"])
  # Harder batches with more candidates: the summary carries the statistic the plot shows.
  hardness = {r["axes"].get("M"): r["mean_neg_cos"][0] for r in summary["rows"]
              if r["axes"].get("sampler") == "proximity"}
  assert hardness[200] > hardness[20]
  # Every other point paired with uniform batches by seed, in the summary file too.
  paired = {tuple(r["axes"].items()): r for r in summary["paired"]}
  assert set(paired) == {(("sampler", "knn"),), (("sampler", "proximity"), ("M", 20)),
                         (("sampler", "proximity"), ("M", 200))}
  uniform = [json.load(open(os.path.join(sweep_dir, f"sampler=uniform,seed={s}", "results.json")))
             ["knn_accuracy"] for s in (0, 1)]
  np.testing.assert_allclose(paired[(("sampler", "proximity"), ("M", 20))]["differences"],
                             np.subtract(knn, uniform), atol=1e-12)
  assert "Paired by seed against uniform batches" in open(os.path.join(sweep_dir, "summary.md")).read()


def test_the_notebook_runs_top_to_bottom_on_the_results_and_renders_as_html(sweep_dir, tmp_path):
  """What ./run.sh notebook does (experiments/notebooks/render.py), on a tiny sweep."""
  import nbformat  # pylint: disable=g-import-not-at-top
  from experiments.notebooks import render  # pylint: disable=g-import-not-at-top
  summarize.summarize(sweep_dir)  # the documented order: sweep, summarize (tables, plots), notebook
  written = {name: os.path.getmtime(os.path.join(sweep_dir, name))
             for name in os.listdir(sweep_dir) if name.startswith("summary") or name.endswith(".png")}
  # Beside it, a graph comparison and two follow-up sweeps: ProSampler with the false-negative margin, and
  # ProSampler with another restart probability.
  follow_up = finished_sweeps.margin_follow_up(os.path.dirname(sweep_dir))
  follow_up += (finished_sweeps.alpha_follow_up(os.path.dirname(sweep_dir)),)
  try:
    html, executed = render.render(os.path.dirname(sweep_dir), str(tmp_path / "out" / "reproduce.html"))
  finally:
    for path in follow_up:
      shutil.rmtree(path)
  notebook = nbformat.read(executed, as_version=4)
  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  text = json.dumps([o.get("data", {}).get("text/markdown", o.get("text", "")) for o in outputs],
                    ensure_ascii=False)
  assert "4 sweep(s)" in text and "### tiny (8/8 runs)" in text and "| proximity | 200 | 2 |" in text
  assert "#### margin, paired with comparison" in text
  assert ("ProSampler (margin=0.95) vs ProSampler without the margin: +0.67 points" in text
          and "ProSampler (margin=0.95) vs uniform batches: +1.67 points" in text)
  # The paper's NCI1 gain (+1.06) against the comparison's three seeds (differences +1, +3, −1 points).
  assert ("inside our interval, but ours includes 0: consistent, not confirmed. These seeds would find a true "
          "gain of that size 9% of the time." in text)
  assert "#### alpha, paired with comparison" in text
  assert ("ProSampler (α=0.05) vs ProSampler as the comparison ran it: +1.00 points" in text
          and "ProSampler (α=0.05) vs uniform batches: +2.00 points" in text)
  assert sum("image/png" in o.get("data", {}) for o in outputs) == 5
  # Ours first: our tables and plots come before the papers' numbers.
  headings = [c.source.splitlines()[0] for c in notebook.cells if c.cell_type == "markdown"]
  assert headings.index("## Our plots") < headings.index("## Beside the papers' numbers")
  page = open(html, encoding="utf-8").read()
  assert "### tiny" not in page and "tiny (8/8 runs)" in page and "data:image/png;base64" in page
  # The notebook reads; it rewrites none of the sweep's tables or plots.
  assert {name: os.path.getmtime(os.path.join(sweep_dir, name)) for name in written} == written


def test_a_changed_override_the_loop_would_refuse_stops_the_sweep_before_sweep_json_changes(sweep_dir):
  before = open(os.path.join(sweep_dir, "sweep.json"), "rb").read()
  wider = {**SPEC, "overrides": {**SPEC["overrides"], "model.width": 16}}
  with pytest.raises(ValueError, match=r"8 run\(s\) under .* hold results of another config") as error:
    runner.run_sweep("tiny", wider, os.path.dirname(sweep_dir), print_commands=True)
  assert "sampler=uniform,seed=0: model.width 8 -> 16" in str(error.value)
  assert open(os.path.join(sweep_dir, "sweep.json"), "rb").read() == before


def test_summarize_counts_only_this_points_results_and_names_a_damaged_file(sweep_dir, tmp_path, caplog):
  copy = str(tmp_path / "tiny")
  shutil.copytree(sweep_dir, copy)
  other = os.path.join(copy, "sampler=knn,seed=1", "results.json")
  result = json.load(open(other))
  result["config"]["model"]["width"] = 99  # results of another config under this point's name
  json.dump(result, open(other, "w"))
  damaged = os.path.join(copy, "sampler=uniform,seed=1", "results.json")
  with open(damaged, "wb") as f:
    f.write(b'{"task": "simclr", \xff')
  with caplog.at_level("WARNING"):
    summary = summarize.aggregate(copy)
  assert summary["finished_runs"] == 6 and summary["total_runs"] == 8
  assert {r["name"] for r in summary["runs"]}.isdisjoint({"sampler=knn,seed=1", "sampler=uniform,seed=1"})
  assert damaged in caplog.text and "is damaged" in caplog.text
  assert ("sampler=knn,seed=1: skipped, its results.json was written under another config "
          "(model.width: 99 → 8)") in caplog.text
  # The runner agrees: both runs are unfinished (the damaged one is not fatal there either).
  config = runner.make_config(runner.load_config(os.path.join(REPO, SPEC["config"])), SPEC["overrides"],
                              {"sampler": "uniform", "seed": 1})
  assert not runner.same_config(runner.read_results(os.path.dirname(damaged)), config.to_dict())


def test_samplers_png_has_one_point_per_sampler_with_a_swept_sampler_at_its_reference_setting():
  """offline_digits swept ProSampler over M and α only: it had no bar. Now every sampler has a point,
  labelled for a reader (ProSampler, α), not with the code's names."""
  row = lambda axes, mean: {"axes": axes, "seeds": 3, "knn_accuracy": (mean, 0.01, 3)}
  rows = [row({"sampler": "uniform"}, 0.90), row({"sampler": "knn"}, 0.80),
          row({"sampler": "proximity", "M": 50, "alpha": 0.2}, 0.91),
          row({"sampler": "proximity", "M": 200, "alpha": 0.2}, 0.93),
          row({"sampler": "proximity", "M": 200, "alpha": 0.5}, 0.92),
          row({"sampler": "tail", "quantile": 0.9}, 0.89), row({"sampler": "tail", "quantile": 0.99}, 0.88)]
  chosen = summarize.sampler_rows(rows, "knn_accuracy", {"M": 200, "alpha": 0.2, "quantile": None})
  assert [(summarize.sampler_label(r["axes"]), r["knn_accuracy"][0]) for r in chosen] == [
      ("uniform", 0.90), ("kNN", 0.80), ("ProSampler (M=200, α=0.2)", 0.93),
      ("TBS (q=0.9)", 0.89)]  # no reference quantile: its first row, named
  # A sampler that was not swept is named with its own settings from the base config.
  assert summarize.sampler_label({"sampler": "proximity"}, {"M": 500, "K": 50, "alpha": 0.2, "B": 128}) == \
      "ProSampler (M=500, K=50, α=0.2)"
  assert summarize.sampler_label({"sampler": "tail"}, {"quantile": None}) == "TBS"
  # A swept M = None is the kNN graph (every other item a candidate), not a setting to leave out.
  assert summarize.sampler_label({"sampler": "proximity", "M": None}) == "ProSampler (M=N)"
  reference = summarize.reference_setting(sweeps.SWEEPS["offline_digits"])
  assert reference["M"] == 200 and reference["alpha"] == 0.2  # the spec's, over simclr_digits' M = 500
  assert summarize.reference_setting(SPEC)["M"] == 500  # no "reference": the base config's value


def test_paired_rows_compare_each_sampler_with_uniform_on_the_seeds_both_ran():
  run = lambda sampler, seed, acc: {"point": {"sampler": sampler, "seed": seed}, "svm_acc": acc}
  runs = ([run("uniform", s, 0.80) for s in range(3)] + [run("uniform", 3, 0.70)]
          + [run("proximity", s, 0.80 + 0.01 * (s + 1)) for s in range(3)]  # seed 3 not run
          + [run("fixed", s, 0.79) for s in range(4)] + [run("tail", 0, 0.9)]
          + [run("cluster", s, 0.80) for s in range(3)] + [run("cluster", 3, 0.71)])
  rows = {r["axes"]["sampler"]: r for r in summarize.paired_rows(runs, "svm_acc", {"sampler": "uniform"})}
  assert set(rows) == {"proximity", "fixed", "tail", "cluster"}
  assert (rows["cluster"]["wins"], rows["cluster"]["losses"]) == (1, 0)  # ties are neither
  proximity = rows["proximity"]
  assert proximity["seeds"] == [0, 1, 2] and (proximity["wins"], proximity["losses"]) == (3, 0)
  np.testing.assert_allclose(proximity["differences"], [0.01, 0.02, 0.03], atol=1e-12)
  np.testing.assert_allclose((proximity["mean"], proximity["std"]), (0.02, 0.01), atol=1e-12)
  assert abs(proximity["p_value"] - 0.0742) < 1e-4  # t = 0.02 / (0.01 / √3) with 2 degrees of freedom
  fixed = rows["fixed"]  # paired on 4 seeds: seed 3's uniform run was the weak one
  np.testing.assert_allclose(fixed["differences"], [-0.01, -0.01, -0.01, 0.09], atol=1e-12)
  assert (fixed["wins"], fixed["losses"]) == (1, 3)
  assert rows["tail"]["p_value"] is None  # one seed: no test
  table = summarize.paired_markdown(list(rows.values()), "svm_acc", {"sampler": "uniform"})
  assert "| sampler=proximity | 3 | +0.0200 ± 0.0100 | +0.0100 +0.0200 +0.0300 | 3 / 0 | 0.074 |" in table
  assert summarize.paired_rows(runs[4:], "svm_acc", {"sampler": "uniform"}) == []  # no uniform runs


def test_the_detectable_difference_is_found_four_times_in_five():
  from scipy import stats  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for n in (2, 3, 5):
    # No true difference: the test's own 5% two-sided false alarms, both tails counted.
    assert summarize.detection_probability(0.0, 0.01, n) == pytest.approx(0.05, abs=1e-9)
    delta = summarize.detectable_difference(0.01, n)
    seeds = rng.normal(delta, 0.01, size=(40000, n))  # paired differences around a true delta
    t = seeds.mean(axis=1) / (seeds.std(axis=1, ddof=1) / np.sqrt(n))
    assert abs((np.abs(t) > stats.t.ppf(0.975, n - 1)).mean() - 0.8) < 0.01, n


def test_ties_within_float_rounding_and_a_single_seed_are_not_read_as_more_than_they_are():
  runs = [{"point": {"sampler": s, "seed": seed}, "svm_acc": acc}
          for s, accs in (("uniform", (0.5, 0.25, 0.75)),
                          ("tail", (0.5000000000000001, 0.3, 0.8)),
                          ("cluster", (0.625, 0.375, 0.875)))  # exactly +0.125 on every seed
          for seed, acc in enumerate(accs)]
  runs += [{"point": {"sampler": "fixed", "seed": 0}, "svm_acc": 0.52}]
  rows = {r["axes"]["sampler"]: r for r in summarize.paired_rows(runs, "svm_acc", {"sampler": "uniform"})}
  # The same accuracy summed in another order (a difference of 1e-16) is a tie, not a loss.
  assert rows["tail"]["differences"][0] == 0.0 and (rows["tail"]["wins"], rows["tail"]["losses"]) == (2, 0)
  # Every seed moved by the same amount: no spread, p = 0 (as the verdict says: resolved).
  assert rows["cluster"]["p_value"] == 0.0
  (verdict,) = summarize.paired_conclusions([rows["cluster"]])
  assert "resolved: better than uniform batches" in verdict and "not resolved" not in verdict
  # One seed has no spread to show.
  assert np.isnan(rows["fixed"]["std"])
  table = summarize.paired_markdown([rows["fixed"]], "svm_acc", {"sampler": "uniform"})
  assert "| sampler=fixed | 1 | +0.0200 ± – |" in table
  assert "| uniform | 1 | 0.8000 ± – |" in summarize.markdown_table(
      summarize.summary_rows([{"point": {"sampler": "uniform", "seed": 0}, "svm_acc": 0.8}], ("svm_acc",)),
      ("svm_acc",))


def test_paired_conclusions_say_what_the_seeds_resolve_and_what_they_cannot():
  row = lambda sampler, diffs, metric="svm_acc": {
      "axes": {"sampler": sampler}, "metric": metric, "seeds": list(range(len(diffs))),
      "differences": diffs, "mean": float(np.mean(diffs)),
      "std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0,
      "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs)}
  clear, unclear, single = summarize.paired_conclusions(
      [row("proximity", [0.010, 0.012, 0.011, 0.009, 0.013]), row("tail", [0.01, -0.02, 0.015, -0.01, 0.0]),
       row("cluster", [0.02])])
  # mean 1.10 points, std 0.158: half-width t(0.975, 4) · 0.158 / √5 = 2.776 · 0.0707 = 0.196
  assert clear == ("ProSampler vs uniform batches: +1.10 points, 95% interval [+0.90, +1.30] over 5 paired "
                   "seeds (better on 5, worse on 0); resolved: better than uniform batches.")
  assert unclear.startswith("TBS vs uniform batches: -0.10 points") and "not resolved" in unclear
  assert "(better on 2, worse on 2)" in unclear and "only a mean beyond ±1.78 points would be" in unclear
  # std 1.432 points: a true difference of 1.35 × 1.78 = 2.41 points shows 4 times in 5 (noncentral t).
  assert "find a true difference 4 times in 5 only from ±2.41 points" in unclear
  assert single == "cluster batches vs uniform batches: +2.00 points on 1 seed; one seed cannot resolve anything."
  # STS Spearman is stored × 100 already: its differences are points as they are.
  (sts,) = summarize.paired_conclusions([row("proximity", [1.0, 1.2, 1.1, 0.9, 1.3], metric="stsb_dev")])
  assert sts.startswith("ProSampler vs uniform batches: +1.10 points, 95% interval [+0.90, +1.30]")
  (same,) = summarize.paired_conclusions([row("fixed", [0.0, 0.0, 0.0])])  # one epoch: the same batches
  assert same == ("fixed batches vs uniform batches: identical on all 3 paired seeds (the runs trained on the "
                  "same batches).")


def test_a_column_no_run_has_is_left_out_of_the_markdown_table():
  rows = [{"axes": {"sampler": "uniform"}, "seeds": 2, "acc": (0.9, 0.01, 2), "loss_gap": None},
          {"axes": {"sampler": "tail"}, "seeds": 2, "acc": (0.8, 0.02, 2), "loss_gap": (1.5, 0.1, 2)}]
  assert summarize.markdown_table(rows, ("acc", "loss_gap")).splitlines()[2:] == [
      "| uniform | 2 | 0.9000 ± 0.0100 | – |", "| tail | 2 | 0.8000 ± 0.0200 | 1.5000 ± 0.1000 |"]
  assert summarize.markdown_table(rows[:1], ("acc", "loss_gap")).splitlines()[0] == "| sampler | seeds | acc |"


def test_results_written_before_a_key_existed_still_count_as_finished_at_its_neutral_value():
  from prosampler_jax import run_config  # pylint: disable=g-import-not-at-top
  config = runner.load_config(os.path.join(REPO, "experiments", "configs", "graphcl_mutag.py") + ":paper")
  saved = config.to_dict()
  del saved["data"], saved["augment"]["subgraph"], saved["graph"]["self_loops"]  # keys added later
  assert {"data.loader", "augment.subgraph", "graph.self_loops"} <= set(run_config.ADDED_KEYS)
  assert runner.same_config({"config": saved}, config.to_dict())
  config.augment.subgraph = "start_neighbours"  # not the neutral value: another run
  assert not runner.same_config({"config": saved}, config.to_dict())
  assert not runner.same_config({"config": None}, config.to_dict()) and not runner.same_config(None, {})



def test_a_follow_up_sweep_pairs_with_another_sweeps_uniform_runs_only_where_nothing_else_differs(tmp_path):
  comparison, margin = finished_sweeps.margin_follow_up(str(tmp_path))
  (row,) = summarize.paired_with(margin, comparison, {"sampler": "uniform"})
  assert row["axes"] == {"sampler": "proximity", "margin": 0.95} and row["seeds"] == [0, 1, 2]
  np.testing.assert_allclose(row["differences"], [0.02, 0.01, 0.02], atol=1e-12)
  (row,) = summarize.paired_with(margin, comparison, {"sampler": "proximity"})  # the margin's own effect
  np.testing.assert_allclose(row["differences"], [0.01, -0.02, 0.03], atol=1e-12)
  assert summarize.paired_with(margin, comparison, {"sampler": "tail"}) == []
  # The comparison table shows the share of negatives the margin dropped where a run has one.
  columns = summarize.comparison_columns("graphcl")
  assert "| margin_dropped_rate |" in summarize.aggregate(margin, columns)["markdown"]
  assert "margin_dropped_rate" not in summarize.aggregate(comparison, columns)["markdown"]
  longer = finished_sweeps.write_sweep(str(tmp_path), "longer", [
      ({"sampler": "proximity", "margin": 0.95, "seed": 1},
       finished_sweeps.graphcl_config("proximity", 1, 0.95, epochs=40), 0.8)])
  with pytest.raises(ValueError, match=r"differ in num_epochs besides their axes"):
    summarize.paired_with(longer, comparison, {"sampler": "uniform"})
  # A key the reference point sweeps may differ too: it is one of the two points' axes.
  epochs_axis = finished_sweeps.write_sweep(str(tmp_path), "epochs_axis", [
      ({"sampler": "uniform", "num_epochs": 40, "seed": 0},
       finished_sweeps.graphcl_config("uniform", 0, epochs=40), 0.7)])
  (row,) = summarize.paired_with(margin, epochs_axis, {"sampler": "uniform", "num_epochs": 40})
  np.testing.assert_allclose(row["differences"], [0.1], atol=1e-12)
