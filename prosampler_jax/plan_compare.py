"""``python -m prosampler_jax.plan compare``: every sampler on a user's own embeddings, side by side.

  python -m prosampler_jax.plan compare --embeddings=emb.npy [--pairs=y.npy] [--labels=labels.npy] \
      --batch-size=256 [--samplers=uniform,proximity,…] [--epochs=1] [--seed=0] [--temperature=0.05] \
      [--false-negative-margin=m] [--loss-gap-anchors=A] [--out=plan_compare] \
      [--proximity.num_candidates=500 --tail.quantile=0.99 …]

Runs each sampler (default: all of ``samplers.SAMPLERS``, each with its defaults but for the
``--<sampler>.<option>=value`` flags; ``none`` sets an option that may be None) for ``--epochs``
epochs and writes ``compare.md``, ``compare.csv``, ``compare.json`` and ``compare.png`` to ``--out``:
per sampler the means over epochs of ``diagnostics.batch_stats`` (hardness; with labels the
false-negative rate; with pairs the loss gap at ``--temperature``, and with a margin the share of
negatives it drops) and the seconds one epoch's sampling takes. Timing excludes compilation: each
sampler first samples epoch 0 once, untimed, on a copy of itself. Prints the table and the paths; a
progress bar (one tick per sampler and epoch) goes to stderr. ``--pairs``: each item's positive; "tail"
orders the pair, the other samplers and the statistics read both views side by side (``batch_plan``'s
convention). Bad input exits with status 2 and one line naming the option and what it allows, before
any sampling.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import sys
import time

import jax
import numpy as np
from tqdm import tqdm

from prosampler_jax import _checks
from prosampler_jax import diagnostics
from prosampler_jax import samplers
from prosampler_jax.batch_plan import plan_bank
from prosampler_jax.samplers import sampler_input
from prosampler_jax.plan import _add, _add_inputs, _sampler_parameters, load_inputs

# The comparison's table: (machine name, heading). The JSON rows hold these and every other statistic.
COLUMNS = (("sampler", "Sampler"), ("mean_neg_cos", "Mean negative cosine"),
           ("max_neg_cos", "Max negative cosine"), ("false_negative_rate", "False-negative rate"),
           ("margin_dropped_rate", "Margin-dropped rate"), ("loss_gap", "Loss gap"),
           ("coverage", "Coverage"), ("seconds_per_epoch", "Seconds per epoch"))
DEFAULT_TEMPERATURE = 0.05
GAP_SCORES = 2**30  # the loss gap's default budget: exact up to N × slots ≈ 10⁹ similarities


class _Parser(argparse.ArgumentParser):
  """argparse whose errors are ``ValueError``s, so that they too are one ``error: …`` line."""

  def error(self, message):
    raise ValueError(message)


def parse_compare_args(argv: list[str]) -> tuple[argparse.Namespace, dict[str, dict]]:
  """The ``compare`` flags, checked, and each sampler's keyword arguments from its
  ``--<sampler>.<option>=value`` flags."""
  options = "\n".join(f"  {name}: {', '.join(_sampler_parameters(name)) or '-'}"
                      for name in samplers.SAMPLERS)
  parser = _Parser(prog="python -m prosampler_jax.plan compare", allow_abbrev=False,
                   formatter_class=argparse.RawDescriptionHelpFormatter,
                   description="Every sampler on the same embeddings: hardness, false negatives, loss "
                   "gap,\ncoverage and time, as a table, CSV, JSON and a plot.",
                   epilog="Per-sampler options, as --<sampler>.<option>=value (e.g. "
                   "--proximity.num_candidates=500;\nnone sets None where the sampler allows it):\n"
                   + options)
  _add_inputs(parser)
  _add(parser, "samplers",
       help=f"Comma-separated samplers (default all: {','.join(samplers.SAMPLERS)}).")
  _add(parser, "epochs", type=int, default=1, help="Epochs per sampler (default 1).")
  _add(parser, "temperature", type=float, help=f"The loss gap's t (needs --pairs; default "
       f"{DEFAULT_TEMPERATURE}).")
  _add(parser, "false_negative_margin", type=float, help="m of the relative-margin rule: adds the "
       "margin-dropped rate (needs --pairs).")
  _add(parser, "loss_gap_anchors", type=int, help="Slots the loss gap's global term scores (needs "
       f"--pairs; default every slot up to {GAP_SCORES:,} similarities).")
  _add(parser, "out", default="plan_compare", help="Output directory (default plan_compare).")
  args, extras = parser.parse_known_args(argv)
  args.samplers = _sampler_names(args.samplers)
  _checks.check_int("--epochs", args.epochs, low=1)
  _checks.check_int("--seed", args.seed, low=0, high=2**32 - 1)
  if args.pairs is None:
    given = [f for f in ("temperature", "false_negative_margin", "loss_gap_anchors")
             if getattr(args, f) is not None]
    if given:
      raise ValueError(f"--{given[0].replace('_', '-')} needs --pairs (each item's positive); allowed: "
                       "give --pairs, or leave it out.")
  else:
    args.temperature = _checks.check_float("--temperature", DEFAULT_TEMPERATURE if args.temperature
                                           is None else args.temperature, low=0.0, low_open=True)
  if args.false_negative_margin is not None:
    _checks.check_float("--false-negative-margin", args.false_negative_margin, low=0.0, low_open=True)
  if args.loss_gap_anchors is not None:
    _checks.check_int("--loss-gap-anchors", args.loss_gap_anchors, low=1)
  return args, _per_sampler_arguments(extras, args.samplers)


def _sampler_names(text: str | None) -> list[str]:
  """``--samplers`` as a list of table names (default: the whole table, in its order)."""
  if text is None:
    return list(samplers.SAMPLERS)
  names = [name.strip() for name in text.split(",")]
  allowed = ", ".join(samplers.SAMPLERS)
  for name in names:
    if name not in samplers.SAMPLERS:
      raise ValueError(f"--samplers={text!r}: {name!r} is not a sampler; allowed: a comma-separated "
                       f"list of {allowed}.")
  if len(set(names)) < len(names):
    raise ValueError(f"--samplers={text!r} names a sampler twice; allowed: each of {allowed} once.")
  return names


def _per_sampler_arguments(extras: list[str], names: list[str]) -> dict[str, dict]:
  """Each sampler's keyword arguments from the ``--<sampler>.<option>=value`` flags argparse left over,
  typed as the constructor's hints say."""
  arguments = {name: {} for name in names}
  for token in extras:
    flag, has_value, text = token.partition("=")
    name, dot, option = flag[2:].partition(".")
    if not flag.startswith("--") or not dot:
      raise ValueError(f"unrecognised argument {token!r}; allowed: the flags in --help and "
                       "--<sampler>.<option>=value.")
    if name not in names:
      raise ValueError(f"{flag}: {name!r} is not in this run; allowed: options of "
                       f"{', '.join(names)} (or add it to --samplers).")
    parameters = _sampler_parameters(name)
    if option not in parameters:
      allowed = ", ".join(f"--{name}.{o}" for o in parameters) or "none"
      raise ValueError(f"{flag}: {name} does not take {option!r}; allowed: {allowed}.")
    if not has_value:
      raise ValueError(f"{flag} has no value; allowed: {flag}=VALUE.")
    kind, optional, _ = parameters[option]
    if optional and text.lower() == "none":
      arguments[name][option] = None
      continue
    try:
      arguments[name][option] = kind(text)
    except ValueError:
      raise ValueError(f"{flag}={text!r}; allowed: a value of type {kind.__name__}"
                       f"{' or none' if optional else ''}.") from None
  return arguments


def _check_out_dir(path: str) -> None:
  """``--out`` is a directory we may write, or can be made under one (nothing is created here)."""
  if not path or (os.path.exists(path) and not os.path.isdir(path)):
    raise ValueError(f"--out={path!r} is {'empty' if not path else 'an existing file'}; allowed: a "
                     "directory (made if missing).")
  parent = os.path.abspath(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
    raise ValueError(f"--out={path!r}: {parent} is not a writable directory; allowed: a directory "
                     "we can write (made if missing).")


def _make_samplers(args: argparse.Namespace, arguments: dict[str, dict], n: int
                   ) -> dict[str, samplers.BatchSampler]:
  """Every sampler of the run, built before any sampling so a bad option stops the run first."""
  _checks.check_int("--batch-size", args.batch_size, low=2, high=n)
  made = {}
  for name in args.samplers:
    try:
      made[name] = samplers.make_sampler(name, n, args.batch_size, seed=args.seed, **arguments[name])
    except ValueError as e:
      raise ValueError(f"--{name}.{e}") from None  # the sampler's messages start with the option
  return made


def _measure(sampler: samplers.BatchSampler, view, bank, labels, stats_options: dict, epochs: int,
             progress: tqdm) -> dict:
  """The sampler's per-epoch ``batch_stats`` averaged over ``epochs``, and its seconds per epoch: the
  mean of the timed ``sample`` calls, after one untimed call on a copy (compilation, caches)."""
  start = time.perf_counter()
  copy.deepcopy(sampler).sample(0, view)
  warmup = time.perf_counter() - start
  seconds, stats = [], []
  for epoch in range(epochs):
    start = time.perf_counter()
    batches = sampler.sample(epoch, view)  # a NumPy array: the work is done when it returns
    seconds.append(time.perf_counter() - start)
    stats.append(diagnostics.batch_stats(batches, bank, labels, **stats_options))
    progress.update()
  mean = {k: float(np.mean([s[k] for s in stats])) if isinstance(v, float) else v
          for k, v in stats[0].items()}
  return {**mean, "seconds_per_epoch": float(np.mean(seconds)), "warmup_seconds": warmup}


def _settings(args: argparse.Namespace, shape: tuple[int, int], paired: bool) -> dict:
  """The run's settings, as the JSON records them and the caption reads them."""
  n, d = shape
  anchors = args.loss_gap_anchors
  if paired and anchors is None:  # exact (None) when every slot fits the budget
    anchors = diagnostics.gap_anchors(n, n // args.batch_size * args.batch_size, scores=GAP_SCORES)
  return {"embeddings": args.embeddings, "pairs": args.pairs, "labels": args.labels, "n": n, "d": d,
          "batch_size": args.batch_size, "epochs": args.epochs, "seed": args.seed,
          "temperature": args.temperature, "false_negative_margin": args.false_negative_margin,
          "loss_gap_anchors": anchors, "samplers": args.samplers, "backend": jax.default_backend(),
          "timing": "seconds per epoch of sample() only, mean over epochs, after an untimed warm-up "
                    "epoch on a copy of the sampler (compilation excluded)"}


def compare(args: argparse.Namespace, arguments: dict[str, dict]) -> tuple[dict, list[dict]]:
  """Runs every sampler of ``args.samplers`` and returns the run's settings and one row per sampler
  (every column of the table, None where it does not apply, and the sampler's arguments)."""
  _check_out_dir(args.out)
  embeddings, pairs, labels = load_inputs(args)
  made = _make_samplers(args, arguments, len(embeddings))
  settings = _settings(args, embeddings.shape, pairs is not None)
  os.makedirs(args.out, exist_ok=True)
  bank, pair = plan_bank(embeddings if pairs is None else (embeddings, pairs))
  stats_options = {} if pair is None else {
      "pairs": pair, "temperature": args.temperature, "seed": args.seed,
      "false_negative_margin": args.false_negative_margin,
      "loss_gap_anchors": settings["loss_gap_anchors"]}
  rows = []
  with tqdm(total=len(made) * args.epochs, file=sys.stderr, unit="epoch") as progress:
    for name, sampler in made.items():
      progress.set_description(name)
      defaults = {option: default for option, (_, _, default) in _sampler_parameters(name).items()}
      row = {**dict.fromkeys(key for key, _ in COLUMNS), "sampler": name,
             "arguments": {**defaults, **arguments[name]}}
      row.update(_measure(sampler, sampler_input(sampler, bank, pair), bank, labels, stats_options, args.epochs,
                          progress))
      rows.append(row)
  return settings, rows


def caption(settings: dict) -> str:
  """One line: what was compared and why a column may be blank."""
  blank = [why for why, absent in (
      ("false-negative rate (no --labels)", settings["labels"] is None),
      ("margin-dropped rate (no --false-negative-margin)", settings["false_negative_margin"] is None),
      ("loss gap (no --pairs: it needs each item's positive)", settings["pairs"] is None)) if absent]
  anchors = settings["loss_gap_anchors"]
  gap = ("" if settings["pairs"] is None else
         f", temperature {settings['temperature']:g}, loss gap over "
         + ("every slot" if anchors is None else f"{anchors} random slots"))
  return (f"Samplers on {settings['embeddings']}: N = {settings['n']}, D = {settings['d']}, "
          f"B = {settings['batch_size']}, {settings['epochs']} epoch(s), seed {settings['seed']}{gap}. "
          f"Figures are means over epochs; {settings['timing']}, on {settings['backend']}."
          + (f" Blank: {'; '.join(blank)}." if blank else ""))


def markdown(settings: dict, rows: list[dict]) -> str:
  """The table with its caption line."""
  def cell(key, value):
    if value is None:
      return ""
    if key == "sampler":
      return value
    return f"{value:.4g}" if key == "seconds_per_epoch" else f"{value:.4f}"
  lines = [caption(settings), "", "| " + " | ".join(h for _, h in COLUMNS) + " |",
           "|" + "|".join(":---" if k == "sampler" else "---:" for k, _ in COLUMNS) + "|"]
  lines += ["| " + " | ".join(cell(k, row[k]) for k, _ in COLUMNS) + " |" for row in rows]
  return "\n".join(lines) + "\n"


def plot(path: str, settings: dict, rows: list[dict]):
  """Hardness (x) against false-negative rate, or without labels the hardest negative (y), one point
  per sampler coloured by its loss gap. Both axes include 0, so distances are not magnified. Returns the
  matplotlib ``Figure`` (saved to ``path``)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  y_key, y_label = (("false_negative_rate", "False-negative rate (in-batch pairs sharing a label)")
                    if settings["labels"] is not None else
                    ("max_neg_cos", "Hardest negative (max negative cosine)"))
  x, y = [r["mean_neg_cos"] for r in rows], [r[y_key] for r in rows]
  figure = Figure(figsize=(7, 5), layout="constrained")
  renderer = FigureCanvasAgg(figure).get_renderer()
  axes = figure.subplots()
  if settings["pairs"] is None:
    axes.scatter(x, y, s=70, color="tab:blue")
  else:
    points = axes.scatter(x, y, c=[r["loss_gap"] for r in rows], cmap="viridis", s=70,
                          edgecolors="black")
    figure.colorbar(points, ax=axes, label="Loss gap (global − in-batch InfoNCE; small: hard batches)")
  axes.margins(0.1)
  for get, set_limits in ((axes.get_xlim, axes.set_xlim), (axes.get_ylim, axes.set_ylim)):
    low, high = get()
    set_limits(min(low, 0.0), max(high, 0.0))
  axes.set_xlabel("Hardness (mean negative cosine within a batch)")
  axes.set_ylabel(y_label)
  axes.set_title(f"Samplers on {os.path.basename(settings['embeddings'])}: N = {settings['n']}, "
                 f"B = {settings['batch_size']}, {settings['epochs']} epoch(s)", fontsize=10)
  axes.grid(alpha=0.3)
  figure.draw(renderer)  # lays the figure out, so the labels below can be placed where they fit
  figure.set_layout_engine("none")
  texts = [r["sampler"] if r["loss_gap"] is None else f"{r['sampler']} (gap {r['loss_gap']:.3g})"
           for r in rows]
  _annotate(axes, renderer, x, y, texts)
  figure.savefig(path, dpi=150)
  return figure


def _annotate(axes, renderer, x, y, texts) -> None:
  """Labels each point at the first corner around it where the label stays inside the axes and clear of
  the points and the labels placed before (the last corner when none is clear)."""
  from matplotlib.transforms import Bbox  # pylint: disable=g-import-not-at-top
  frame = axes.get_window_extent(renderer)
  radius = 4.5 * axes.figure.dpi / 72  # a marker's half width in pixels (s=70: 8.4 points wide)
  taken = [Bbox.from_extents(u - radius, v - radius, u + radius, v + radius)
           for u, v in axes.transData.transform(np.column_stack([x, y]))]
  corners = ((6, 6), (6, -6), (-6, 6), (-6, -6))
  for point, text in zip(zip(x, y), texts):
    for dx, dy in corners:
      label = axes.annotate(text, point, xytext=(dx, dy), textcoords="offset points", fontsize=9,
                            ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top")
      box = label.get_window_extent(renderer)
      inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
      if (inside and not any(box.overlaps(other) for other in taken)) or (dx, dy) == corners[-1]:
        break
      label.remove()
    taken.append(box)


def write(out: str, settings: dict, rows: list[dict]) -> tuple[str, list[str]]:
  """Writes compare.md, .csv, .json and .png under ``out``; returns the Markdown and the paths."""
  paths = [os.path.join(out, f"compare.{ext}") for ext in ("md", "csv", "json", "png")]
  table = markdown(settings, rows)
  with open(paths[0], "w") as f:
    f.write(table)
  with open(paths[1], "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow([key for key, _ in COLUMNS])
    writer.writerows([["" if row[k] is None else row[k] for k, _ in COLUMNS] for row in rows])
  with open(paths[2], "w") as f:
    json.dump({"settings": settings, "rows": rows}, f, indent=2)
  plot(paths[3], settings, rows)
  return table, paths


def main(argv: list[str]) -> int:
  """The ``compare`` subcommand: 0 on success, 2 (and one ``error:`` line) on bad input."""
  try:
    args, arguments = parse_compare_args(argv)
    settings, rows = compare(args, arguments)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  table, paths = write(args.out, settings, rows)
  print(table)
  print("wrote " + ", ".join(paths))
  return 0
