"""Text and graph rows through tf.data vs the NumPy loader (``config.data.loader``), side by side.

Both loaders deliver the same elements (tests/test_without_tensorflow.py); what differs is their cost per
refresh window, since the trainer builds one pipeline per window: the time from the call to the first
element (what a window waits for before its first step) and to the window's last element. Rows: GraphCL
on NCI1 (``--tu_dir``; else MUTAG from the grakel wheel), padded and keyed as in training, and SimCSE's
token-id rows (synthetic ids of the same shape: the gather is all the loader does). Median over
``--windows`` windows. Prints one JSON object.

  python -m experiments.bench.row_loaders --tu_dir=DATA_DIR/tu
"""

from __future__ import annotations

import json
import time

import numpy as np


def time_windows(make_window, windows: int) -> dict:
  """Median seconds from the call to the first element and to the last, over ``windows`` windows."""
  first, whole = [], []
  for window in range(windows):
    start = time.perf_counter()
    elements = make_window(window)
    next(elements)
    first.append(time.perf_counter() - start)
    for _ in elements:
      pass
    whole.append(time.perf_counter() - start)
  return {"first_element_ms": 1000 * float(np.median(first)), "window_ms": 1000 * float(np.median(whole))}


def compare(make_window_for, windows: int) -> dict:
  """Both loaders, interleaved (tf, numpy, tf, numpy) so a busy moment does not hit one only."""
  runs = {"tf": [], "numpy": []}
  for _ in range(2):
    for loader in runs:
      runs[loader].append(time_windows(make_window_for(loader), windows))
  best = {loader: {k: min(r[k] for r in results) for k in results[0]} for loader, results in runs.items()}
  return {**best, "window_speedup_numpy_over_tf": best["tf"]["window_ms"] / best["numpy"]["window_ms"],
          "first_element_speedup_numpy_over_tf":
              best["tf"]["first_element_ms"] / best["numpy"]["first_element_ms"]}


def graph_rows(tu_dir: str | None, rows: int, batch_size: int, windows: int) -> dict:
  from prosampler_jax.data import graphs  # pylint: disable=g-import-not-at-top
  name, folder = ("NCI1", tu_dir) if tu_dir else ("MUTAG", graphs.grakel_mutag_dir())
  dataset = graphs.with_self_loops(graphs.load_tu_dataset(name, folder))
  buckets = graphs.SizeBuckets.for_dataset(dataset)
  rows = min(rows, len(dataset) // batch_size)
  batches = np.random.default_rng(0).permutation(len(dataset))[:rows * batch_size].reshape(rows, -1)
  make = lambda loader: lambda window: graphs.pretrain_elements(
      dataset, batches, buckets=buckets, seed=0, window=window, loader=loader)
  return {"dataset": name, "rows": rows, "batch_size": batch_size, **compare(make, windows)}


def text_rows(num_items: int, rows: int, batch_size: int, max_len: int, windows: int) -> dict:
  from prosampler_jax.data import text  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  arrays = {"anchor/input_ids": rng.integers(0, 30_000, (num_items, max_len), dtype=np.int32),
            "anchor/attention_mask": np.ones((num_items, max_len), np.int32)}
  batches = rng.permutation(num_items)[:rows * batch_size].reshape(rows, -1)
  make = lambda loader: lambda window: iter(text.rows(arrays, batches, loader=loader))
  return {"num_items": num_items, "rows": rows, "batch_size": batch_size, "max_len": max_len,
          **compare(make, windows)}


def run(*, tu_dir: str | None, small: bool) -> dict:
  windows = 2 if small else 5
  return {"graphs": graph_rows(tu_dir, rows=4 if small else 32, batch_size=32 if small else 128,
                               windows=windows),
          "text": text_rows(2_000 if small else 100_000, rows=4 if small else 100,
                            batch_size=64 if small else 512, max_len=32, windows=windows)}


def define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("tu_dir", None, "A folder holding NCI1/ (default: MUTAG from the grakel wheel).")
  flags.DEFINE_bool("small", False, "A few rows only (the tests).")


def main(argv):
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  print(json.dumps(run(tu_dir=flags.FLAGS.tu_dir, small=flags.FLAGS.small), indent=2))


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
