"""Random access to a prepared tfds split in ArrayRecord format: items read by index, never all in memory.

ImageNet-1k's 1.28M JPEGs (~140 GB) do not fit in host memory, and the sampler, not the file order, decides
which items share a batch. ``RecordImages`` reads the encoded images of the requested item ids straight
from the split's ArrayRecord files (``tfds.data_source``), so each host reads only the rows of its own
columns of each batch, when the pipeline asks for them. It looks like the object array of encoded bytes an
in-memory ``ImageSource`` holds (``len``, ``shape``, ``ndim``, ``dtype``, ``images[ids]``), so the tf.data
pipelines need no second code path.

Labels are needed up front (the ImageNet-100 subset and the false-negative statistics): one pass reads
them from every record, in parallel, and caches them as ``.npy`` under ``cache_dir`` keyed by the files'
names and sizes, so later runs start at once.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

_LABEL_CHUNK = 2048  # records per read while collecting labels
_LABEL_THREADS = 8   # ArrayRecord reads release the GIL: a few threads keep a disk busy
# Where label caches go unless a caller says otherwise; $PROSAMPLER_JAX_CACHE overrides the home cache.
_HOME_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "prosampler_jax")
DEFAULT_CACHE_DIR = os.path.join(os.environ.get("PROSAMPLER_JAX_CACHE", _HOME_CACHE), "labels")


class RecordImages:
  """The encoded images of one tfds split (or a subset of its records), read by index on demand.

  ``images[ids]`` (ids: int array into ``[0, len)``) returns an object array of encoded bytes, in the
  order of ``ids``; item i is record ``record_ids[i]`` of the split.
  """

  dtype = np.dtype(object)
  ndim = 1

  def __init__(self, data_source, record_ids: np.ndarray | None = None, *, description: str = "",
               cache_key: str | None = None):
    self._source = data_source
    self._ids = (np.arange(len(data_source), dtype=np.int64) if record_ids is None
                 else np.asarray(record_ids, dtype=np.int64))
    self.description = description
    self._cache_key = cache_key  # None: labels are never cached

  @classmethod
  def open(cls, tfds_name: str, split: str, data_dir: str | None) -> RecordImages:
    """The split's records, images left encoded. Raises ``FileNotFoundError`` if the split is not
    prepared under ``data_dir`` and ``ValueError`` if it is prepared in a format without random access
    (tfds' default, TFRecord), saying how to convert it."""
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
      raise FileNotFoundError(f"tfds {tfds_name!r} is not prepared under {builder.data_dir}.")
    try:
      source = builder.as_data_source(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    except (NotImplementedError, ValueError) as e:
      raise ValueError(
          f"config.data_reader='random_access' reads tfds {tfds_name!r} by index from ArrayRecord "
          f"files, but {builder.data_dir} holds it as {builder.info.file_format.value}. Convert it once: "
          f"tfds convert_format --dataset_version_dir={builder.data_dir} --out_file_format=array_record "
          "(or prepare it with download_and_prepare(file_format='array_record')), or use "
          "config.data_reader='memory'.") from e
    return cls(source, description=f"{tfds_name}/{split} at {builder.data_dir}",
               cache_key=f"{tfds_name}-{split}-{_files_key(builder, split)}")

  def subset(self, items: np.ndarray) -> RecordImages:
    """The items ``items`` (ids into this object) as a new ``RecordImages`` over the same files."""
    return RecordImages(self._source, self._ids[np.asarray(items, dtype=np.int64)],
                        description=self.description, cache_key=self._cache_key)

  @property
  def shape(self) -> tuple[int]:
    return (len(self._ids),)

  def __len__(self) -> int:
    return len(self._ids)

  def __getitem__(self, ids) -> np.ndarray:
    records = self._source.__getitems__(self._ids[np.asarray(ids)].tolist())
    out = np.empty(len(records), dtype=object)
    out[:] = [record["image"] for record in records]
    return out

  def labels(self, *, cache_dir: str | None = None, cache: bool = True) -> np.ndarray:
    """int64 ``[len]`` labels of these items: one parallel pass over the split's records, cached under
    ``cache_dir`` (None: ``DEFAULT_CACHE_DIR``, read at call time) unless ``cache`` is False. A cache that
    cannot be written (a read-only home) costs a warning, not the run."""
    cache_dir = cache_dir or DEFAULT_CACHE_DIR
    path = None if not cache or self._cache_key is None else os.path.join(
        cache_dir, f"{self._cache_key}.npy")
    if path and os.path.exists(path):
      return np.load(path)[self._ids]
    logging.info("Reading the labels of %d records of %s once (cached at %s).", len(self._source),
                 self.description, path)
    chunks = [range(s, min(s + _LABEL_CHUNK, len(self._source)))
              for s in range(0, len(self._source), _LABEL_CHUNK)]
    read = lambda ids: [record["label"] for record in self._source.__getitems__(list(ids))]
    with concurrent.futures.ThreadPoolExecutor(_LABEL_THREADS) as pool:
      every = np.asarray([label for part in pool.map(read, chunks) for label in part], np.int64)
    if path:
      try:  # written whole, then renamed: never a partial cache
        os.makedirs(cache_dir, exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp.npy"
        np.save(temporary, every)
        os.replace(temporary, path)
      except OSError as e:
        logging.warning("Could not cache the labels at %s (%s); set $PROSAMPLER_JAX_CACHE to a writable "
                        "directory to skip this pass next time.", path, e)
    return every[self._ids]


def _files_key(builder, split: str) -> str:
  """A name that changes when the split's files change (their paths and sizes)."""
  digest = hashlib.sha1()
  for instruction in builder.info.splits[split].file_instructions:
    path = os.fspath(instruction.filename)
    digest.update(f"{path}:{os.path.getsize(path) if os.path.exists(path) else -1};".encode())
  return digest.hexdigest()[:16]
