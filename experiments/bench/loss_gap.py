"""What Tail Batch Sampling's loss gap costs to log, and how far the trainer's anchor subset is off.

Paired synthetic data (``synthetic.clustered_embeddings`` for x, y = x + noise), one JSON object:

- ``exact``: at ``--exact_n`` items, the exact gap of one window (``--window_batches`` batches of
  ``--batch_size``) for uniform and TBS batches: the gap, the train loss, seconds and seconds per
  million anchor × item scores.
- ``subset_error``: for anchor subsets of the sizes in ``--anchors``, the relative error of the subset
  estimate against the exact gap, over ``--repeats`` subsets (the fixed subset the trainer uses is one
  such draw): its mean absolute value and the 95th percentile; and the seconds the subset costs.
- ``budget``: at each N in ``--budget_sizes``, the trainer's anchor count (``diagnostics.gap_anchors``,
  ``REFRESH_GAP_SCORES`` scores per refresh) and the seconds it takes on this machine.

  python -m experiments.bench.loss_gap             # ~3 min on 2 CPU cores
"""

from __future__ import annotations

import json
import time

from absl import app
from absl import flags
import jax
import numpy as np

from experiments.bench import synthetic
from prosampler_jax import diagnostics
from prosampler_jax import samplers

def define_flags() -> None:
  """The command line's flags (defined when run as a script, so importing this module defines none)."""
  flags.DEFINE_integer("exact_n", 20_000, "Items N of the exact and subset sections.")
  flags.DEFINE_integer("batch_size", 256, "Batch size B.")
  flags.DEFINE_integer("window_batches", 8, "Batches in the scored window.")
  flags.DEFINE_list("anchors", ["64", "256", "1024"], "Anchor subset sizes to score.")
  flags.DEFINE_integer("repeats", 20, "Subsets drawn per size.")
  flags.DEFINE_list("budget_sizes", ["100000", "1000000"], "N for the budget section.")
  flags.DEFINE_integer("dim", 64, "Width D of each side of the pair.")
  flags.DEFINE_float("temperature", 0.05, "The loss's temperature t.")
  flags.DEFINE_integer("seed", 0, "Seed of the data, samplers and subsets.")


def paired(n: int, dim: int, seed: int) -> tuple[jax.Array, jax.Array]:
  """Clustered x and a noisy positive y = x + 0.3·noise, both on the default device."""
  x = synthetic.clustered_embeddings(n, seed, dim)
  y = x + 0.3 * np.random.default_rng(seed + 1).standard_normal(x.shape).astype(np.float32)
  return jax.device_put(x), jax.device_put(y)


def timed(fn, *args, **kwargs):
  start = time.perf_counter()
  out = fn(*args, **kwargs)
  return out, time.perf_counter() - start


def exact_and_subsets(n: int, batch_size: int, window_batches: int, anchors: list[int], repeats: int,
                      dim: int, temperature: float, seed: int) -> dict:
  """Exact window gaps for uniform and TBS batches, then subset estimates against them."""
  x, y = paired(n, dim, seed)
  bank = np.concatenate([np.asarray(x), np.asarray(y)], axis=1)
  out = {"n": n, "dim": dim, "batch_size": batch_size, "window_batches": window_batches,
         "temperature": temperature, "exact": {}, "subset_error": {}}
  slots = batch_size * window_batches
  diagnostics.loss_gap(np.arange(2 * batch_size).reshape(2, -1), x, y, temperature=temperature,
                       num_anchors=64)  # compile outside the timings
  for name in ("uniform", "tail"):
    sampler = samplers.make_sampler(name, n, batch_size, seed=seed)
    view = (x, y) if name == "tail" else bank
    batches = sampler.sample(0, view, num_batches=window_batches)
    exact, seconds = timed(diagnostics.loss_gap, batches, x, y, temperature=temperature)
    out["exact"][name] = {"loss_gap": exact["loss_gap"], "train_loss": exact["train_loss"],
                          "seconds": seconds, "seconds_per_million_scores": seconds / (slots * n / 1e6)}
    errors = {}
    for size in anchors:
      estimates, costs = [], []
      for repeat in range(repeats):
        estimate, cost = timed(diagnostics.loss_gap, batches, x, y, temperature=temperature,
                               num_anchors=size, seed=repeat)
        estimates.append(estimate["loss_gap"])
        costs.append(cost)
      relative = np.abs(np.asarray(estimates) / exact["loss_gap"] - 1.0)
      errors[str(size)] = {"mean_abs_relative_error": float(relative.mean()),
                           "p95_abs_relative_error": float(np.quantile(relative, 0.95)),
                           "seconds": float(np.median(costs))}
    out["subset_error"][name] = errors
  out["tail_over_uniform_gap"] = out["exact"]["tail"]["loss_gap"] / out["exact"]["uniform"]["loss_gap"]
  return out


def budget(sizes: list[int], batch_size: int, window_batches: int, dim: int, temperature: float,
           seed: int) -> list[dict]:
  """The trainer's subset at large N: how many anchors, and the seconds they take here."""
  rows = []
  for n in sizes:
    x, y = paired(n, dim, seed)
    batches = np.random.default_rng(seed).permutation(n)[:batch_size * window_batches].reshape(
        window_batches, batch_size)
    anchors = diagnostics.gap_anchors(n, batches.size)
    diagnostics.loss_gap(batches, x, y, temperature=temperature, num_anchors=anchors)  # compile
    result, seconds = timed(diagnostics.loss_gap, batches, x, y, temperature=temperature,
                            num_anchors=anchors)
    rows.append({"n": n, "anchors": result["loss_gap_anchors"], "seconds": seconds,
                 "scores": result["loss_gap_anchors"] * n})
    del x, y
  return rows


def main(argv):
  del argv
  f = flags.FLAGS
  report = {"device": jax.devices()[0].device_kind, "jax": jax.__version__,
            "refresh_gap_scores": diagnostics.REFRESH_GAP_SCORES}
  report.update(exact_and_subsets(f.exact_n, f.batch_size, f.window_batches,
                                  [int(a) for a in f.anchors], f.repeats, f.dim, f.temperature, f.seed))
  report["budget"] = budget([int(n) for n in f.budget_sizes], f.batch_size, f.window_batches, f.dim,
                            f.temperature, f.seed)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  define_flags()
  app.run(main)
