"""Input at ImageNet scale: host memory and images/s of the SimCLR pipeline, in memory vs random access.

Writes a synthetic ``imagenet2012`` (``data.synthetic_imagenet``: real tfds files, JPEGs of photo-like
size) in both formats, then for each reader (``data.READERS``), side by side in one run: the host memory the
source takes (resident set growth while loading it), the bytes per item it keeps, that figure
extrapolated to ImageNet-1k's 1,281,167 images (the resident-set growth is printed too; for the reader it
is within measurement noise), and the throughput of ``pretrain_dataset`` (two
224×224 SimCLR views per image, uint8, ImageNet augmentations) over ``--batches`` batches of a random
index array. Needs TensorFlow (the input pipeline is TensorFlow); runs on this CPU.

  python -m experiments.bench.input                          # 2,000 images, batches of 64
  python -m experiments.bench.input --images=10000 --side=500
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time

import numpy as np
from absl import app
from absl import flags
from absl import logging

_IMAGES = flags.DEFINE_integer("images", 2000, "Synthetic training images.")
_SIDE = flags.DEFINE_integer("side", 400, "Largest image side (sides drawn from [0.75·side, side]).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Items per batch.")
_BATCHES = flags.DEFINE_integer("batches", 12, "Batches timed per reader (after one warm-up batch).")
IMAGENET_1K = 1_281_167


def _resident_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _held_bytes(source) -> int:
  """Bytes the source keeps per dataset: its arrays (pixels or JPEG objects; ids and labels)."""
  total = source.labels.nbytes
  if isinstance(source.images, np.ndarray):
    total += source.images.nbytes + sum(sys.getsizeof(b) for b in source.images)
  else:  # a reader: its item → record id table
    total += source.images._ids.nbytes  # pylint: disable=protected-access
  return total


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  with tempfile.TemporaryDirectory(prefix="bench_input_") as root:
    print(json.dumps(measure(root), indent=2))


def measure(root: str) -> dict:
  """Writes the dataset under ``root`` and measures both readers."""
  dirs = {"memory": os.path.join(root, "tfrecord"), "random_access": os.path.join(root, "array_record")}
  sizes = (int(0.75 * _SIDE.value), _SIDE.value)
  # Labels of ImageNet-100's classes only, so both readers hold every image (the memory reader is
  # ImageNet-100's: it keeps the 100 classes; ImageNet-1k is random access only).
  from prosampler_jax import data  # pylint: disable=g-import-not-at-top  (TensorFlow: only when run)
  from prosampler_jax.data import synthetic_imagenet  # pylint: disable=g-import-not-at-top
  labels = synthetic_imagenet.label_ids(data.IMAGENET100_WNIDS)
  for reader, file_format in (("memory", "tfrecord"), ("random_access", "array_record")):
    synthetic_imagenet.write_imagenet_like(dirs[reader], num_train=_IMAGES.value, num_validation=8,
                                       sizes=sizes, labels=labels, file_format=file_format)
  report = {"images": _IMAGES.value, "side": list(sizes), "batch_size": _BATCH.value,
            "cpu_count": os.cpu_count(), "readers": {}}
  rng = np.random.default_rng(0)
  batches = np.stack([rng.choice(_IMAGES.value, _BATCH.value, replace=False)
                      for _ in range(_BATCHES.value + 1)]).astype(np.int32)
  augment = data.augment_config_for("imagenet1k")
  for reader in reversed(data.READERS):  # random access first: the memory reader's pages stay held
    gc.collect()
    before = _resident_bytes()
    start = time.perf_counter()
    source = data.load_image_source("imagenet1k" if reader == "random_access" else "imagenet100",
                                    "pretrain", data_dir=dirs[reader], reader=reader)
    load_seconds = time.perf_counter() - start
    growth = _resident_bytes() - before
    held_per_item = _held_bytes(source) / len(source)
    elements = data.pretrain_dataset(source, batches, seed=0, window=0, augment=augment).as_numpy_iterator()
    next(elements)  # warm-up: the pipeline's threads start
    start = time.perf_counter()
    count = sum(len(e["index"]) for e in elements)
    seconds = time.perf_counter() - start
    report["readers"][reader] = {
        "items": len(source), "load_seconds": round(load_seconds, 2),
        "jpeg_bytes_per_item": round(float(np.mean([len(b) for b in source.images[np.arange(50)]])), 1),
        "resident_growth_mib": round(growth / 2**20, 1),
        "host_bytes_per_item": round(held_per_item, 1),
        "host_gib_at_imagenet_1k": round(held_per_item * IMAGENET_1K / 2**30, 2),
        "images_per_second": round(count / seconds, 1)}
    del source, elements
  return report


if __name__ == "__main__":
  app.run(main)
