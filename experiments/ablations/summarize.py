"""Tables and plots of a sweep: mean ± std over seeds, and the papers' analyses as PNG figures.

  python -m experiments.ablations.summarize --sweep_dir=runs/ablations/offline_digits

Writes ``summary.md`` and ``summary.csv`` (one row per grid point: each column's mean, std and number of
seeds) and, for each numeric axis the sweep varies (M, α, K, B, t, quantile), ``<metric>_vs_<axis>.png``
for the sweep's metric, batch hardness (``mean_neg_cos``) and the false-negative rate: the mean over seeds
with a ±1 std band, one line per value of the other axes, uniform batches as a dashed reference. When
the sweep varies the sampler, ``samplers.png`` shows every sampler side by side, one bar each: a sampler
swept over other axes (ProSampler over M and α) at the base config's setting, named under its bar. The notebook reads tables through ``aggregate``, which writes
nothing, and shows the plots already written.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os

import numpy as np
from absl import app
from absl import flags
from absl import logging

from experiments.ablations import runner
from prosampler_jax import run_config

# Each task's headline metrics, the first plotted per epoch and taken as a sweep's default metric.
TASK_METRICS = {"simclr": ("knn_accuracy", "linear_accuracy"), "simcse": ("stsb_dev", "stsb", "average"),
                "graphcl": ("svm_acc",)}
STATS = ("mean_neg_cos", "false_negative_rate")  # batch hardness and wrong negatives
# Metrics stored as fractions in [0, 1]: a "point" is 0.01 of them. The STS metrics are already
# Spearman × 100, so one of their units is a point.
_FRACTION_METRICS = ("knn_accuracy", "linear_accuracy", "svm_acc")
# Paired differences this small are float rounding (one score summed in another order), not a win or loss.
TIE = 1e-9
# A sampler comparison's columns besides the task's metrics: what every task has (the loss gap, L^Global −
# L^Train of the last window, where the task has item pairs; the margin-dropped rate under a false-negative
# margin; a column no run has is left out of the table).
_COMPARISON_COMMON = ("mean_neg_cos", "false_negative_rate", "margin_dropped_rate", "loss_gap",
                      "min_bank_written", "bank_staleness", "wall_seconds")
# The last window's statistics a run's results hold (margin_dropped_rate only under a false-negative margin).
_WINDOW_STATS = (*STATS, "margin_dropped_rate", "loss_gap")
NUMERIC_AXES = ("M", "alpha", "K", "B", "t", "quantile")
_AXIS_LABELS = {"M": "candidates M", "alpha": "restart probability α", "K": "neighbours K",
                "B": "batch size B", "t": "refresh interval t (steps)", "quantile": "TBS quantile"}
# What a reader sees instead of the code's names.
SAMPLER_NAMES = {"uniform": "uniform", "proximity": "ProSampler", "knn": "kNN", "tail": "TBS",
                 "partition": "B3 partition", "cluster": "cluster batches", "fixed": "fixed batches"}
_SETTING_NAMES = {"alpha": "α", "quantile": "q"}
# What a swept None means, where it means something (M = None: every other item is a candidate).
_NONE_MEANS = {"M": "N"}
COLUMN_LABELS = {"knn_accuracy": "kNN accuracy", "linear_accuracy": "linear-probe accuracy",
                 "svm_acc": "SVM accuracy (%)", "stsb_dev": "STS-B dev (Spearman)", "stsb": "STS-B test (Spearman)",
                 "average": "STS average (Spearman)", "mean_neg_cos": "hardness: mean negative cosine",
                 "false_negative_rate": "false-negative rate (same-label pairs)",
                 "loss_gap": "loss gap L^Global − L^Train"}


# The settings that say which variant of a sampler ran (shown from the base config when not swept).
_SAMPLER_SETTINGS = {"proximity": ("M", "K", "alpha"), "tail": ("quantile",)}


def sampler_label(axes: dict, reference: dict | None = None) -> str:
  """"ProSampler (M=200, K=100, α=0.2)": the sampler's name, the other axes of its grid point, and the
  sampler's own settings it did not sweep, from ``reference`` (``reference_setting``) when given."""
  sampler = axes.get("sampler")
  settings = {k: (reference or {}).get(k) for k in _SAMPLER_SETTINGS.get(sampler, ())}
  settings.update({k: _NONE_MEANS.get(k) if v is None else v for k, v in axes.items() if k != "sampler"})
  others = ", ".join(f"{_SETTING_NAMES.get(k, k)}={v}" for k, v in settings.items() if v is not None)
  name = SAMPLER_NAMES.get(sampler, str(sampler))
  return f"{name} ({others})" if others else name


def column_label(column: str) -> str:
  return COLUMN_LABELS.get(column, column.replace("_", " "))


def load_runs(sweep_dir: str) -> tuple[dict, list[dict]]:
  """(the sweep's definition, one record per finished run: the point's axes + its figures)."""
  path = os.path.join(sweep_dir, "sweep.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: --sweep_dir must be a directory written by "
                            "experiments.ablations.sweep.")
  with open(path) as f:
    spec = json.load(f)
  runs = []
  configs = spec.get("configs")  # each run's config (sweep.json of older runners has none)
  for name, point in zip(spec["runs"], spec["points"]):  # the points as the runner wrote them
    result = runner.read_results(os.path.join(sweep_dir, name))  # a damaged file: reported, skipped
    if result is None:
      continue  # not finished (yet)
    if configs is not None and not runner.same_config(result, configs[name]):
      # Results of another config: not this point's (the runner reruns or refuses it).
      changed = _changed_keys(result.get("config") or {}, configs[name])
      logging.warning("%s: skipped, its results.json was written under another config (%s); rerun the "
                      "sweep to replace it", name, ", ".join(changed[:5]) or "unknown keys")
      continue
    stats = result.get("batch_stats") or {}
    figures = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    refreshes = [h for h in result.get("history", []) if h.get("event") == "refresh"]
    freshness = {  # over every refresh after warm-up: the smallest written share, the mean row age
        "min_bank_written": min((h["bank_written_fraction"] for h in refreshes), default=None),
        "bank_staleness": (float(np.mean([h["bank_staleness_steps"] for h in refreshes]))
                           if refreshes else None)}
    epochs = [h for h in result.get("history", []) if h.get("event") == "epoch"]
    runs.append({"name": name, "point": point, "task": result.get("task"),
                 "dataset": result.get("dataset"), "loss": result.get("loss"), **figures,
                 **{k: stats.get(k) for k in _WINDOW_STATS}, **freshness, "epochs": epochs})
  return spec, runs


def comparison_columns(task: str) -> tuple[str, ...]:
  """The columns of a sampler comparison's table (compare_samplers, the README's tables): the task's
  metrics, then batch hardness, false negatives, bank freshness and wall time."""
  return TASK_METRICS.get(task, ()) + _COMPARISON_COMMON


_MISSING = "<absent>"


def _differing_keys(saved: dict, config: dict) -> list[str]:
  """The dotted keys whose value differs between two configs (``to_dict()``), sorted."""
  saved, config = run_config.flatten(saved), run_config.flatten(config)
  return [k for k in sorted(set(saved) | set(config)) if saved.get(k, _MISSING) != config.get(k, _MISSING)]


def _changed_keys(saved: dict, config: dict) -> list[str]:
  """``key: saved → now`` for each dotted key whose value differs between two configs (``to_dict()``)."""
  flat_saved, flat_config = run_config.flatten(saved), run_config.flatten(config)
  return [f"{k}: {flat_saved.get(k, _MISSING)!r} → {flat_config.get(k, _MISSING)!r}"
          for k in _differing_keys(saved, config)]


def metric_of(spec: dict, runs: list[dict]) -> str:
  """The sweep's headline metric (its definition's, else the first of its task's metrics the runs have)."""
  if spec.get("metric"):
    return spec["metric"]
  for candidate in TASK_METRICS.get(runs[0]["task"], ()) if runs else ():
    if candidate in runs[0]:
      return candidate
  raise ValueError("the sweep names no metric and its runs have none of their task's.")


def mean_std(values) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof=1) over seeds; NaN for a single value (one seed says
  nothing about the spread: tables print it as "± –")."""
  return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def plus_minus(mean: float, std: float, spec: str = ".4f") -> str:
  """"mean ± std" in format ``spec`` ("+.4f" for signed differences); "mean ± –" when one seed left the
  spread undefined."""
  return f"{mean:{spec}} ± " + ("–" if np.isnan(std) else f"{std:{spec.lstrip('+')}}")


@contextlib.contextmanager
def figure(path: str, size: tuple[float, float]):
  """Axes of a new figure, written to ``path`` (PNG, headless) when the block ends."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=size)
  try:
    yield ax
    fig.tight_layout()
    fig.savefig(path, dpi=120)
  finally:
    plt.close(fig)


def _setting(point: dict) -> dict:
  """A grid point without its seed: what the seeds of one setting share."""
  return {k: v for k, v in point.items() if k != "seed"}


def summary_rows(runs: list[dict], columns: tuple[str, ...]) -> list[dict]:
  """One row per grid point (seeds pooled): the axes, then ``column: (mean, std, n)`` per column, and
  ``values``: each column's per-seed values (what the plots show beside the mean)."""
  groups: dict[tuple, list[dict]] = {}
  for run in runs:
    key = tuple(_setting(run["point"]).items())
    groups.setdefault(key, []).append(run)
  rows = []
  for key, members in groups.items():
    row = {"axes": dict(key), "seeds": len(members), "values": {}}
    for column in columns:
      values = [m[column] for m in members if m.get(column) is not None]
      row[column] = (*mean_std(values), len(values)) if values else None
      row["values"][column] = values
    rows.append(row)
  return rows


def markdown_table(rows: list[dict], columns: tuple[str, ...]) -> str:
  """A Markdown table: axes, seeds, then mean ± std per column (a column no row has is left out: runs
  saved before a figure existed have nothing to show in it)."""
  axes = list(dict.fromkeys(k for row in rows for k in row["axes"]))
  columns = tuple(c for c in columns if any(row.get(c) is not None for row in rows))
  cell = lambda v: "–" if v is None else plus_minus(v[0], v[1])
  lines = ["| " + " | ".join(axes + ["seeds", *columns]) + " |",
           "|" + "---|" * (len(axes) + 1 + len(columns))]
  for row in rows:
    lines.append("| " + " | ".join([str(row["axes"].get(a, "")) for a in axes] + [str(row["seeds"])]
                                   + [cell(row[c]) for c in columns]) + " |")
  return "\n".join(lines)


def write_csv(rows: list[dict], columns: tuple[str, ...], path: str) -> None:
  axes = list(dict.fromkeys(k for row in rows for k in row["axes"]))
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(axes + ["seeds"] + [f"{c}_{s}" for c in columns for s in ("mean", "std")])
    for row in rows:
      writer.writerow([row["axes"].get(a, "") for a in axes] + [row["seeds"]] +
                      [x for c in columns for x in ((row[c][0], row[c][1]) if row[c] else ("", ""))])


def band(ax, x, mean, std, label: str, **line) -> None:
  """One curve of means with a light ±1 std band around it (per-epoch curves: too many points for error
  bars)."""
  x, mean, std = (np.asarray(v, float) for v in (x, mean, std))
  ax.plot(x, mean, label=label, **line)
  ax.fill_between(x, mean - std, mean + std, alpha=0.12)


def plot_axis(rows: list[dict], axis: str, column: str, path: str, title: str) -> bool:
  """``column`` against numeric ``axis``: mean ± std over seeds per point, one line per setting of the
  other axes; False if nothing to plot."""
  lines: dict[tuple, list[tuple[float, float, float]]] = {}
  baselines = []
  for row in rows:
    if row[column] is None:
      continue
    if axis in row["axes"]:
      rest = tuple((k, v) for k, v in row["axes"].items() if k != axis)
      lines.setdefault(rest, []).append((row["axes"][axis], *row[column][:2]))
    elif row["axes"].get("sampler") == "uniform":
      baselines.append(row[column])
  lines = {rest: points for rest, points in lines.items() if len(points) >= 2}  # a line, not a dot
  if not lines:
    return False
  with figure(path, (5.5, 3.8)) as ax:
    for rest, points in sorted(lines.items(), key=lambda item: str(item[0])):
      x, mean, std = zip(*sorted(points))
      ax.errorbar(x, mean, yerr=std, marker="o", capsize=4, label=sampler_label(dict(rest)) if rest
                  else column_label(column))
    for mean, std, _ in baselines:
      ax.axhline(mean, color="gray", linestyle="--", label=f"uniform ({plus_minus(mean, std, '.3f')})")
    if axis == "M" and max(v[0] for pts in lines.values() for v in pts) / max(
        1e-9, min(v[0] for pts in lines.values() for v in pts)) >= 20:
      ax.set_xscale("log")
    ax.set_xlabel(_AXIS_LABELS.get(axis, axis))
    ax.set_ylabel(column_label(column))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return True


def sampler_rows(rows: list[dict], column: str, reference: dict) -> list[dict]:
  """One row per sampler of the sweep, in grid order: its row whose only axis is the sampler; else its
  row at the reference setting (``reference``: the base config's value of each axis); else its first
  row. The figures label each with ``sampler_label``, so they say which setting stands for a sampler."""
  chosen: dict[str, tuple[int, dict]] = {}
  for row in rows:
    if "sampler" not in row["axes"] or row[column] is None:
      continue
    name = row["axes"]["sampler"]
    others = {k: v for k, v in row["axes"].items() if k != "sampler"}
    rank = 0 if not others else 1 if all(reference.get(k) == v for k, v in others.items()) else 2
    if name not in chosen or rank < chosen[name][0]:
      chosen[name] = (rank, row)
  return [row for _, row in chosen.values()]


def reference_setting(spec: dict) -> dict:
  """The setting that stands for a swept sampler in ``samplers.png``: the sweep's ``"reference"`` axes,
  over each numeric axis's value in its base config (with its overrides). Only the spec's reference when
  the config file is not where the sweep recorded it."""
  try:
    config = runner.make_config(runner.load_config(spec["config"]), spec.get("overrides", {}), {})
    flat = run_config.flatten(config)
    base = {axis: flat.get(runner.config_key(axis)) for axis in NUMERIC_AXES}
  except ValueError as error:
    logging.warning("samplers.png: no base-config reference (%s)", error)
    base = {}
  return {**base, **spec.get("reference", {})}


def plot_samplers(rows: list[dict], column: str, path: str, title: str, reference: dict) -> bool:
  """Every sampler's ``column`` (``sampler_rows``): its mean ± std over seeds as a point with error
  bars, each seed as a dot beside it, uniform's mean as a dashed line. The axis spans the seeds' values,
  so the spread is visible and a difference inside it does not look like a gap."""
  chosen = sampler_rows(rows, column, reference)
  if len(chosen) < 2:
    return False
  with figure(path, (max(5.5, 1.6 * len(chosen)), 4.2)) as ax:
    for x, row in enumerate(chosen):
      mean, std, n = row[column]
      ax.errorbar([x], [mean], yerr=[std], fmt="o", color="tab:blue", capsize=5, markersize=7)
      seeds = row.get("values", {}).get(column, [])
      ax.plot(np.full(len(seeds), x + 0.15), seeds, ".", color="tab:gray", alpha=0.8)
      if row["axes"].get("sampler") == "uniform":
        ax.axhline(mean, color="tab:gray", linestyle="--", linewidth=1, label=f"uniform mean ({mean:.4g})")
    ax.set_xticks(range(len(chosen)), [sampler_label(r["axes"], reference).replace(" (", "\n(")
                                       for r in chosen],
                  fontsize=8)
    ax.set_xlim(-0.5, len(chosen) - 0.5)
    ax.set_ylabel(column_label(column))
    seeds = max(r[column][2] for r in chosen)
    ax.set_title(f"{title}\nmean ± std over {seeds} seeds (points); each seed (dots)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  return True


def plot_hardness(rows: list[dict], path: str, title: str, reference: dict) -> bool:
  """What the samplers change: each sampler's batch hardness (mean negative cosine) against its
  false-negative rate (same-label in-batch pairs), mean ± std over seeds on both axes."""
  chosen = [r for r in sampler_rows(rows, STATS[0], reference) if r.get(STATS[1]) is not None]
  if len(chosen) < 2:
    return False
  with figure(path, (6, 4.4)) as ax:
    for row in chosen:
      (x, dx, _), (y, dy, _) = row[STATS[0]], row[STATS[1]]
      ax.errorbar([x], [y], xerr=[dx], yerr=[dy], fmt="o", capsize=4,
                  label=sampler_label(row["axes"], reference))
    ax.set_xlabel(column_label(STATS[0]))
    ax.set_ylabel(column_label(STATS[1]))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return True


def paired_rows(runs: list[dict], metric: str, reference: dict) -> list[dict]:
  """Each grid point against ``reference`` (a point's axes, e.g. ``{"sampler": "uniform"}``) on the seeds
  both ran: the per-seed differences of ``metric``, their mean and sample std, wins / losses, and a
  two-sided paired t-test's p-value (None below 2 seeds or when every difference is the same).

  Same seed, same initial weights and warm-up batches: where the seed itself moves the metric, pairing
  cancels that share of the spread; where the runs part ways once their batches differ, it does not
  (``paired_conclusions`` says what the seeds resolve either way)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top  (only this table needs it)
  groups: dict[tuple, dict[int, float]] = {}
  for run in runs:
    if run.get(metric) is not None:
      key = tuple(_setting(run["point"]).items())
      groups.setdefault(key, {})[run["point"].get("seed", 0)] = run[metric]
  base = groups.get(tuple(reference.items()))
  if base is None:
    return []
  rows = []
  for key, values in groups.items():
    if key == tuple(reference.items()):
      continue
    seeds = sorted(set(values) & set(base))
    diffs = np.array([values[s] - base[s] for s in seeds])
    if not len(diffs):
      continue
    diffs[np.abs(diffs) <= TIE] = 0.0  # the same score summed in another order is a tie, not a loss
    mean, std = mean_std(diffs)
    if len(diffs) < 2 or not diffs.any():
      p = None
    elif std == 0:  # every seed moved by the same amount: no spread left to explain it
      p = 0.0
    else:
      p = float(stats.ttest_rel([values[s] for s in seeds], [base[s] for s in seeds]).pvalue)
    rows.append({"axes": dict(key), "metric": metric, "seeds": seeds, "differences": diffs.tolist(),
                 "mean": mean, "std": std,
                 "wins": int((diffs > 0).sum()), "losses": int((diffs < 0).sum()), "p_value": p})
  return rows


def paired_with(sweep_dir: str, reference_dir: str, reference: dict, metric: str | None = None
                ) -> list[dict]:
  """``paired_rows`` of every point of ``sweep_dir`` against the ``reference`` point of another sweep,
  ``reference_dir``: a follow-up sweep (ProSampler with the false-negative margin, say) paired by seed
  with the uniform batches a sampler comparison already ran, without running them again.

  Pairs only comparable runs: a point's config may differ from the reference run's of the same seed in
  the two points' axes alone (a ValueError names any other key, e.g. another ``data_dir`` or epoch
  count). ``metric``: default, ``sweep_dir``'s.
  """
  return _paired_with(load_runs(sweep_dir), load_runs(reference_dir), reference, metric, sweep_dir,
                      reference_dir)


def _paired_with(sweep: tuple[dict, list[dict]], reference_sweep: tuple[dict, list[dict]], reference: dict,
                 metric: str | None, sweep_dir: str, reference_dir: str) -> list[dict]:
  """``paired_with`` on sweeps already loaded (``load_runs``); the directories only name them in errors."""
  (spec, runs), (reference_spec, reference_runs) = sweep, reference_sweep
  if not runs:
    return []
  if spec.get("configs") is None or reference_spec.get("configs") is None:
    raise ValueError("these sweeps' sweep.json files hold no per-run configs (written by an older runner): "
                     "rerun the sweeps to record them, then pair them.")
  reference_runs = [r for r in reference_runs if _setting(r["point"]) == reference]
  reference_configs = {r["point"].get("seed", 0): reference_spec["configs"][r["name"]] for r in reference_runs}
  for run in runs:
    seed = run["point"].get("seed", 0)
    if seed not in reference_configs:
      continue
    axes = {runner.config_key(a) for a in (*run["point"], *reference)}
    other = [k for k in _differing_keys(reference_configs[seed], spec["configs"][run["name"]])
             if k not in axes]
    if other:
      raise ValueError(f"{run['name']} of {sweep_dir} and the {reference} run of seed {seed} in "
                       f"{reference_dir} differ in {', '.join(other[:5])} besides their axes; allowed: "
                       "runs that differ only in the points' axes.")
  metric = metric or metric_of(spec, runs)
  runs = [r for r in runs if _setting(r["point"]) != reference]
  return paired_rows(runs + reference_runs, metric, reference)


def follow_up(sweep_dir: str, reference_dir: str) -> tuple[str, list[tuple[dict, list[dict]]]]:
  """A follow-up sweep against a sampler comparison: ``(metric, [(reference, paired_with rows)])``, first
  against the comparison's uniform batches, then against each of the follow-up's samplers as the
  comparison ran it (ProSampler with the margin vs ProSampler without: the follow-up axis's own effect).
  References the comparison did not run are left out. Each sweep is read once."""
  sweep, reference_sweep = load_runs(sweep_dir), load_runs(reference_dir)
  spec, runs = sweep
  metric = metric_of(spec, runs) if runs else ""
  samplers = sorted({r["point"]["sampler"] for r in runs if "sampler" in r["point"]} - {"uniform"})
  tables = []
  for reference in ({"sampler": "uniform"}, *({"sampler": s} for s in samplers)):
    rows = _paired_with(sweep, reference_sweep, reference, metric, sweep_dir, reference_dir)
    if rows:
      tables.append((reference, rows))
  return metric, tables


def paired_markdown(rows: list[dict], metric: str, reference: dict) -> str:
  """``paired_rows`` as a Markdown table."""
  against = ", ".join(f"{k}={v}" for k, v in reference.items())
  lines = [f"| point | seeds | Δ {metric} vs {against} (mean ± std) | per seed | wins / losses | paired t p |",
           "|---|---|---|---|---|---|"]
  for row in rows:
    point = ", ".join(f"{k}={v}" for k, v in row["axes"].items())
    per_seed = " ".join(f"{d:+.4f}" for d in row["differences"])
    p = "–" if row["p_value"] is None else f"{row['p_value']:.3f}"
    difference = plus_minus(row["mean"], row["std"], "+.4f")
    lines.append(f"| {point} | {len(row['seeds'])} | {difference} | {per_seed} | "
                 f"{row['wins']} / {row['losses']} | {p} |")
  return "\n".join(lines)


def points_per_unit(metric: str | None) -> float:
  """100 for a metric stored as a fraction (accuracies), 1 for one already in points (STS Spearman × 100)."""
  return 100.0 if metric in _FRACTION_METRICS else 1.0


def detection_probability(difference: float, std: float, n: int) -> float:
  """How often a two-sided paired t-test at 5% on ``n`` seeds finds a true mean ``difference`` when the
  seeds' differences spread by ``std`` (its power, from the noncentral t)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  df, critical = n - 1, float(stats.t.ppf(0.975, n - 1))
  shift = abs(difference) * np.sqrt(n) / std
  # The far lower tail is negligible, and scipy's noncentral t returns NaN for it at large shifts.
  return float(stats.nct.sf(critical, df, shift) + np.nan_to_num(stats.nct.cdf(-critical, df, shift)))


def detectable_difference(std: float, n: int, power: float = 0.8) -> float:
  """The true mean difference a two-sided paired t-test at 5% finds with probability ``power`` on ``n``
  seeds whose differences spread by ``std``: 1.3–1.4× the 95% interval's half-width for 3–10 seeds,
  since a true difference equal to the half-width is found only about half the time."""
  from scipy import optimize  # pylint: disable=g-import-not-at-top
  # Solved in standard errors (the noncentrality), below 20 from n = 2 on.
  shift = optimize.brentq(lambda shift: detection_probability(shift / np.sqrt(n), 1.0, n) - power, 0.0, 30.0)
  return float(shift * std / np.sqrt(n))


def paired_conclusions(rows: list[dict], reference: str = "uniform batches") -> list[str]:
  """One plain sentence per ``paired_rows`` row: the mean difference in points (``points_per_unit`` of the
  row's metric), its 95% confidence interval from the paired seeds (Student t), wins / losses, and
  whether the seeds resolve it (the interval excludes 0); when not, the difference they would find 4
  times in 5 (``detectable_difference``) — so a report says what its seeds can and cannot tell apart.
  Each comparison is tested on its own (no correction for the several a sweep makes)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  lines = []
  for row in rows:
    name = sampler_label(row["axes"])
    scale = points_per_unit(row.get("metric"))
    n, mean = len(row["seeds"]), scale * row["mean"]
    if n < 2:
      lines.append(f"{name} vs {reference}: {mean:+.2f} points on 1 seed; one seed cannot resolve anything.")
      continue
    if not any(row["differences"]):
      lines.append(f"{name} vs {reference}: identical on all {n} paired seeds (the runs trained on the same "
                   "batches).")
      continue
    half = float(stats.t.ppf(0.975, n - 1)) * scale * row["std"] / np.sqrt(n)
    if abs(mean) > half:
      verdict = f"resolved: {'better' if mean > 0 else 'worse'} than {reference}"
    else:
      detectable = scale * detectable_difference(row["std"], n)
      verdict = (f"not resolved: only a mean beyond ±{half:.2f} points would be, and these seeds find a "
                 f"true difference 4 times in 5 only from ±{detectable:.2f} points")
    lines.append(f"{name} vs {reference}: {mean:+.2f} points, 95% interval [{mean - half:+.2f}, "
                 f"{mean + half:+.2f}] over {n} paired seeds (better on {row['wins']}, worse on {row['losses']}); "
                 f"{verdict}.")
  return lines


def aggregate(sweep_dir: str, columns: tuple[str, ...] | None = None) -> dict:
  """The sweep's tables, computed without writing anything: ``{"spec", "runs", "metric", "columns",
  "rows", "markdown", "finished_runs", "total_runs"}`` (``runs`` as ``load_runs`` gives them).

  ``columns``: the table's columns (default: the sweep's metric, then ``STATS``); ``rows`` always hold
  the metric and ``STATS`` too (what the plots show). When the sweep ran uniform batches beside other
  points, ``"paired"`` holds ``paired_rows`` against them and ``"paired_markdown"`` its table (else
  ``[]`` and ``""``).
  """
  spec, runs = load_runs(sweep_dir)
  if not runs:
    raise ValueError(f"no finished runs under {sweep_dir}; run experiments.ablations.sweep first.")
  metric = metric_of(spec, runs)
  plotted = (metric, *STATS)
  columns = tuple(dict.fromkeys(columns or plotted))
  rows = summary_rows(runs, tuple(dict.fromkeys(columns + plotted)))
  uniform = {"sampler": "uniform"}
  paired = paired_rows(runs, metric, uniform)
  return {"spec": spec, "runs": runs, "metric": metric, "columns": columns, "rows": rows,
          "markdown": markdown_table(rows, columns), "finished_runs": len(runs),
          "total_runs": len(spec["runs"]), "paired": paired,
          "paired_markdown": paired_markdown(paired, metric, uniform) if paired else ""}


def summarize(sweep_dir: str, columns: tuple[str, ...] | None = None) -> dict:
  """Writes ``aggregate``'s tables (summary.md, summary.csv) and the plots into ``sweep_dir``; returns
  ``aggregate``'s dict plus ``"plots"`` (the paths written)."""
  summary = aggregate(sweep_dir, columns)
  spec, metric, rows = summary["spec"], summary["metric"], summary["rows"]
  with open(os.path.join(sweep_dir, "summary.md"), "w") as f:
    f.write(f"# {spec['name']}\n\n{spec.get('paper', '')}\n\n{summary['markdown']}\n")
    if summary["paired_markdown"]:
      f.write(f"\nPaired by seed against uniform batches:\n\n{summary['paired_markdown']}\n")
  write_csv(rows, summary["columns"], os.path.join(sweep_dir, "summary.csv"))
  varied = [a for a in NUMERIC_AXES if any(a in r["axes"] for r in rows)]
  plots = []
  for axis in varied:
    for column in (metric, *STATS):
      path = os.path.join(sweep_dir, f"{column}_vs_{axis}.png")
      if plot_axis(rows, axis, column, path, f"{spec['name']}: {column} vs {axis}"):
        plots.append(path)
  if any("sampler" in r["axes"] for r in rows):
    reference = reference_setting(spec)
    path = os.path.join(sweep_dir, "samplers.png")
    if plot_samplers(rows, metric, path, f"{spec['name']}: {column_label(metric)} per sampler", reference):
      plots.append(path)
    path = os.path.join(sweep_dir, "hardness.png")
    if plot_hardness(rows, path, f"{spec['name']}: how hard and how wrong each sampler's batches are",
                     reference):
      plots.append(path)
  return {**summary, "plots": plots}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  sweep_dir = flags.FLAGS.sweep_dir
  if not sweep_dir:
    raise app.UsageError("--sweep_dir is required (a directory written by experiments.ablations.sweep).")
  summary = summarize(sweep_dir)
  print(summary["markdown"])
  print(f"\n{summary['finished_runs']}/{summary['total_runs']} runs finished; "
        f"{len(summary['plots'])} plots and summary.md/.csv in {sweep_dir}")


if __name__ == "__main__":
  # Defined here, not at import: compare_samplers and the notebook import this module as a library.
  flags.DEFINE_string("sweep_dir", None, "A sweep's directory (holds sweep.json).")
  app.run(main)
