"""Host-built batches from the sampler's index array, with or without TensorFlow.

Text and graph inputs are built on the host by NumPy, a row of the index array at a time (``make_row``):
a row of token ids, or a row of padded graphs. ``pipeline.numpy_rows_dataset`` delivers them through
tf.data; :func:`numpy_rows` delivers the very same elements without TensorFlow, for machines that do not
have it (the GPU machine) or when ``config.data.loader="numpy"``; :func:`elements` picks one of the two
for every text and graph pipeline. Images keep tf.data: their augmentations are TensorFlow ops.

Why a thread pool rather than a loader library (Grain, torch's DataLoader): the work per row is one
NumPy gather or padding that releases the GIL for most of its time, rows are already batches (nothing to
collate), and order and content are fixed by the index array, so a pool of threads computing rows ahead
of the consumer, delivered in order, is all a loader would do here, without another dependency or the
processes and shared memory a multi-process loader needs.

Nothing here imports TensorFlow at import time (``elements`` does when asked for tf.data).
"""

from __future__ import annotations

import collections
import concurrent.futures
import importlib.util
import os
from collections.abc import Callable, Iterator

import numpy as np

from prosampler_jax import _checks

LOADERS = ("auto", "tf", "numpy")


def resolve_loader(loader: str, *, name: str = "config.data.loader") -> str:
  """``"tf"`` or ``"numpy"``: ``"auto"`` is tf.data where TensorFlow is installed, else NumPy."""
  _checks.check_choice(name, loader, LOADERS)
  if loader != "auto":
    return loader
  return "tf" if importlib.util.find_spec("tensorflow") is not None else "numpy"


def process_columns(batches, num_items: int, *, process_index: int, process_count: int,
                    start_batch: int) -> tuple[np.ndarray, np.ndarray]:
  """The checked index array (int32) and this process's columns of it.

  Process ``p`` of ``P`` takes columns ``[p·B/P, (p+1)·B/P)`` of every row; ``start_batch`` must be a
  row of ``batches`` (or its end). Every input pipeline that feeds from the sampler splits this way.
  """
  batches = _checks.check_indices("batches", batches, num_items, layout="[num_batches, batch_size >= 1]",
                                   min_shape=(0, 1))
  process_count = _checks.check_int("process_count", process_count, low=1)
  process_index = _checks.check_int("process_index", process_index, low=0, high=process_count - 1)
  num_batches, batch_size = batches.shape
  if batch_size % process_count:
    raise ValueError(f"batch size {batch_size} (batches.shape[1]) is not divisible by "
                     f"process_count={process_count}; allowed: a multiple of process_count.")
  _checks.check_int("start_batch", start_batch, low=0, high=num_batches)
  local = batch_size // process_count
  return batches, np.arange(process_index * local, (process_index + 1) * local, dtype=np.int64)


def checked_row(out: dict, signature: dict, local_size: int) -> dict[str, np.ndarray]:
  """``make_row``'s output cast to the signature's dtypes; a missing name or a wrong shape is an error
  naming it (what tf.data's ``ensure_shape`` checks on the other path)."""
  row = {}
  for name, (dtype, shape) in signature.items():
    if name not in out:
      raise ValueError(f"make_row returned no {name!r}; the signature names {sorted(signature)}.")
    value = np.asarray(out[name], dtype=dtype)
    wanted = (local_size, *shape)
    if value.ndim != len(wanted) or any(w is not None and w != v for w, v in zip(wanted, value.shape)):
      raise ValueError(f"make_row's {name!r} has shape {value.shape}; the signature allows {wanted} "
                       "(None: any size).")
    row[name] = value
  return row


def elements(loader: str, batches, num_items: int, make_row: Callable[[int, np.ndarray], dict],
             signature: dict, *, process_index: int = 0, process_count: int = 1,
             start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """The rows of ``make_row`` as NumPy elements through the chosen loader (``resolve_loader``): tf.data's
  ``pipeline.numpy_rows_dataset`` or :func:`numpy_rows`. Both yield the same elements in the same order;
  every text and graph pipeline picks its loader here."""
  if resolve_loader(loader, name="loader") == "tf":
    from prosampler_jax.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
    return pipeline.numpy_rows_dataset(batches, num_items, make_row, signature, process_index=process_index,
                                       process_count=process_count,
                                       start_batch=start_batch).as_numpy_iterator()
  return numpy_rows(batches, num_items, make_row, signature, process_index=process_index,
                    process_count=process_count, start_batch=start_batch)


def numpy_rows(batches, num_items: int, make_row: Callable[[int, np.ndarray], dict], signature: dict, *,
               process_index: int = 0, process_count: int = 1, start_batch: int = 0,
               workers: int | None = None, prefetch: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """The elements ``pipeline.numpy_rows_dataset(...).as_numpy_iterator()`` yields, without TensorFlow.

  One element per row of ``batches`` from row ``start_batch``, in order: ``make_row(row, index)``'s
  arrays cast to ``signature``'s dtypes, plus ``"index"`` (int32 ``[B_local]``, this process's columns).
  Rows are computed ahead by ``workers`` threads (default: the cores, at most 8), at most ``prefetch``
  rows ahead of the consumer (default ``2·workers``); building starts when this is called.
  """
  batches, columns = process_columns(batches, num_items, process_index=process_index,
                                     process_count=process_count, start_batch=start_batch)
  workers = _checks.check_int("workers", workers if workers is not None else min(8, os.cpu_count() or 1),
                              low=1)
  prefetch = _checks.check_int("prefetch", prefetch if prefetch is not None else 2 * workers, low=1)
  return _RowIterator(batches[start_batch:, columns], start_batch, make_row, signature, workers, prefetch)


class _RowIterator:
  """In-order delivery of rows computed ahead by a thread pool (see ``numpy_rows``)."""

  def __init__(self, index_rows: np.ndarray, first_row: int, make_row, signature: dict, workers: int,
               prefetch: int):
    self._index_rows, self._first_row = index_rows, first_row
    self._make_row, self._signature = make_row, signature
    self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                       thread_name_prefix="numpy_rows")
    self._pending: collections.deque = collections.deque()
    self._next_row = 0
    for _ in range(prefetch):
      self._submit()

  def _submit(self) -> None:
    if self._next_row < len(self._index_rows):
      self._pending.append(self._pool.submit(self._build, self._next_row))
      self._next_row += 1

  def _build(self, position: int) -> dict[str, np.ndarray]:
    index = self._index_rows[position]
    row = checked_row(self._make_row(self._first_row + position, index), self._signature, len(index))
    return {**row, "index": index}

  def __iter__(self) -> _RowIterator:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if not self._pending:
      self.close()
      raise StopIteration
    element = self._pending.popleft().result()  # a row's error surfaces here, at its place in order
    self._submit()
    return element

  def close(self) -> None:
    """Stops computing rows ahead (also when the iterator is dropped)."""
    self._pending.clear()
    self._pool.shutdown(wait=False, cancel_futures=True)

  def __del__(self):
    if hasattr(self, "_pool"):
      self.close()
