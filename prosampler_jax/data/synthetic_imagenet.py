"""A real tfds ``imagenet2012`` dataset (ArrayRecord or TFRecord files) written from synthetic JPEGs.

The real imagenet2012 builder needs the ImageNet tar files; this subclass keeps its features (image,
label, file_name), label names and metadata and generates the images instead, so ``tfds.data_source`` and
``tfds.builder("imagenet2012", data_dir=…)`` read the result exactly as they read a prepared ImageNet. For
tests and the input benchmark, offline. It leans on tfds' own imagenet2012 builder module (its metadata
directory), which a tfds release may move: then only this helper needs updating.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.datasets.imagenet2012 import imagenet2012_dataset_builder as imagenet


def write_imagenet_like(data_dir: str, *, num_train: int, num_validation: int,
                        sizes: tuple[int, int] = (40, 64), labels=None, seed: int = 0,
                        file_format: str = "array_record") -> None:
  """Prepares ``imagenet2012`` under ``data_dir`` with ``num_train`` / ``num_validation`` JPEGs, stored
  as ``file_format`` ("array_record": random access; "tfrecord": tfds' default, sequential only). The
  same arguments give the same records in the same order in either format.

  Image sides are drawn from ``sizes`` (inclusive range); pixels are a smooth colour gradient plus noise
  (JPEG sizes like a photo's, not like white noise's). ``labels``: the labels to cycle through (default:
  all 1,000 classes, uniformly at random).
  """

  class SyntheticImagenet(imagenet.Builder, skip_registration=True):
    name = "imagenet2012"
    pkg_dir_path = imagenet.Builder._get_pkg_dir_path()  # the real builder's metadata and label names

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(1, num_train),
              "validation": self._generate_examples(2, num_validation)}

    def _generate_examples(self, stream, count):
      rng = np.random.default_rng([seed, stream])
      for i in range(count):
        height, width = rng.integers(sizes[0], sizes[1] + 1, 2)
        label = int(labels[i % len(labels)] if labels is not None else rng.integers(0, 1000))
        yield f"{stream}-{i}", {"image": _jpeg(rng, height, width), "label": label,
                                "file_name": f"synthetic_{stream}_{i}.JPEG"}

  builder = SyntheticImagenet(data_dir=data_dir, file_format=file_format)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data_dir))


def label_ids(wnids) -> list[int]:
  """tfds imagenet2012 label ids of WordNet ids (e.g. ``images.IMAGENET100_WNIDS``)."""
  names = tfds.builder("imagenet2012").info.features["label"].names
  return [names.index(wnid) for wnid in wnids]


def _jpeg(rng: np.random.Generator, height: int, width: int) -> bytes:
  ramp = np.linspace(0.0, 1.0, width)[None, :, None] * rng.random(3) + \
      np.linspace(0.0, 1.0, height)[:, None, None] * rng.random(3)
  pixels = np.clip(127 * ramp + 20 * rng.standard_normal((height, width, 3)) + 40, 0, 255)
  buffer = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()
