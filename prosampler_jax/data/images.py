"""Image datasets for the SimCLR trainer: one ``ImageSource`` per (dataset, split), readable by index.

The contrastive pipeline reads items by index (the sampler decides which items share a batch). With
``reader="memory"`` a split is loaded once into host memory as a NumPy array: decoded ``uint8`` pixels
for the small datasets, encoded JPEG bytes for ImageNet-100 (~14 GB). With ``reader="random_access"``
the ImageNet sets are read by index from their ArrayRecord files (``records.RecordImages``): host memory
no longer grows with the dataset, as ImageNet-1k (~140 GB of JPEGs) needs. tfds is always read with
``download=False``: with no network a download attempt hangs for minutes (DESIGN §6), so a missing
dataset fails at once with one message saying how to get it.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from prosampler_jax import _checks
from prosampler_jax.data import records

DATASETS = ("digits", "cifar10", "cifar100", "stl10", "imagenet100", "imagenet1k")
SPLITS = ("pretrain", "train", "test")
# How a split is read: all of it into host memory, or item by item from ArrayRecord files on demand.
READERS = ("memory", "random_access")
RANDOM_ACCESS_DATASETS = ("imagenet100", "imagenet1k")  # tfds imagenet2012: encoded JPEGs
_MEMORY_LIMITED = ("imagenet1k",)  # ~140 GB of JPEGs: never loaded whole

# The 100-class ImageNet subset of CMC (Tian, Krishnan & Isola, "Contrastive Multiview Coding", 2019),
# as listed in the authors' file imagenet100.txt (github.com/HobbitLong/CMC); order as listed there.
# Labels 0..99 follow the sorted WordNet ids, i.e. the order of a torchvision ImageFolder over them.
IMAGENET100_WNIDS = (
    "n02869837", "n01749939", "n02488291", "n02107142", "n13037406", "n02091831", "n04517823",
    "n04589890", "n03062245", "n01773797", "n01735189", "n07831146", "n07753275", "n03085013",
    "n04485082", "n02105505", "n01983481", "n02788148", "n03530642", "n04435653", "n02086910",
    "n02859443", "n13040303", "n03594734", "n02085620", "n02099849", "n01558993", "n04493381",
    "n02109047", "n04111531", "n02877765", "n04429376", "n02009229", "n01978455", "n02106550",
    "n01820546", "n01692333", "n07714571", "n02974003", "n02114855", "n03785016", "n03764736",
    "n03775546", "n02087046", "n07836838", "n04099969", "n04592741", "n03891251", "n02701002",
    "n03379051", "n02259212", "n07715103", "n03947888", "n04026417", "n02326432", "n03637318",
    "n01980166", "n02113799", "n02086240", "n03903868", "n02483362", "n04127249", "n02089973",
    "n03017168", "n02093428", "n02804414", "n02396427", "n04418357", "n02172182", "n01729322",
    "n02113978", "n03787032", "n02089867", "n02119022", "n03777754", "n04238763", "n02231487",
    "n03032252", "n02138441", "n02104029", "n03837869", "n03494278", "n04136333", "n03794056",
    "n03492542", "n02018207", "n04067472", "n03930630", "n03584829", "n02123045", "n04229816",
    "n02100583", "n03642806", "n04336792", "n03259280", "n02116738", "n02108089", "n03424325",
    "n01855672", "n02090622",
)

# Published per-channel statistics of pixels in [0, 1] (CIFAR: computed on the train sets; STL-10: the
# values used by torchvision-based SimCLR code; ImageNet: the torchvision constants).
_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
_STL10_STATS = ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713))
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# tfds split expression per (dataset, split); "pretrain" is what contrastive training samples from.
_TFDS_SPLITS = {
    "cifar10": {"pretrain": "train", "train": "train", "test": "test"},
    "cifar100": {"pretrain": "train", "train": "train", "test": "test"},
    "stl10": {"pretrain": "train+unlabelled", "train": "train", "test": "test"},
    "imagenet100": {"pretrain": "train", "train": "train", "test": "validation"},
    "imagenet1k": {"pretrain": "train", "train": "train", "test": "validation"},
}
_LOAD_BATCH = 1024  # examples per tf.data batch while copying a split into NumPy


class DatasetNotFoundError(FileNotFoundError):
  """A tfds dataset is not prepared in the data directory (and is never downloaded here)."""


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSource:
  """One split of an image dataset held in host memory, indexable by the sampler's item ids.

  ``images`` is either decoded ``uint8 [N, H, W, C]``, an object array ``[N]`` of encoded JPEG/PNG bytes,
  or a ``records.RecordImages`` that reads such bytes by index from disk; ``image_shape`` is the model
  input (after crop/resize); ``mean``/``std`` normalise pixels in [0, 1] per channel. ``labels`` is
  ``int32 [N]`` with -1 for unlabeled items.
  """

  name: str
  images: np.ndarray
  labels: np.ndarray
  num_classes: int
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]

  def __post_init__(self):
    images, labels = self.images, self.labels
    if images.dtype == object:
      if images.ndim != 1:
        raise ValueError(f"images of encoded bytes must have shape [N], got {images.shape}.")
    elif images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError("images must be uint8 [N, H, W, C] or an object array [N] of encoded bytes, "
                       f"got dtype {images.dtype} and shape {images.shape}.")
    if labels.dtype != np.int32 or labels.shape != (images.shape[0],):
      raise ValueError(f"labels must be int32 [N] with N={images.shape[0]}, got dtype {labels.dtype} "
                       f"and shape {labels.shape}.")
    _checks.check_int("num_classes", self.num_classes, low=1)
    if len(self.image_shape) != 3 or self.image_shape[2] not in (1, 3) or min(self.image_shape) < 1:
      raise ValueError(f"image_shape must be (H, W, C) with C in (1, 3), got {self.image_shape}.")
    if images.dtype != object and images.shape[3] != self.image_shape[2]:
      raise ValueError(f"images have {images.shape[3]} channels but image_shape={self.image_shape}.")
    channels = self.image_shape[2]
    if len(self.mean) != channels or len(self.std) != channels or min(self.std) <= 0:
      raise ValueError(f"mean and std must have {channels} entries (std > 0), got mean={self.mean}, "
                       f"std={self.std}.")

  @property
  def encoded(self) -> bool:
    """True when ``images`` holds encoded bytes that the pipeline decodes per example."""
    return self.images.dtype == object

  def __len__(self) -> int:
    return int(self.images.shape[0])


def hide_gpus_from_tensorflow() -> None:
  """Keeps TensorFlow off the accelerators (they belong to JAX); safe to call more than once."""
  if not tf.config.get_visible_devices("GPU"):
    return
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError as e:  # The TF runtime was initialised before this call.
    logging.warning("Could not hide GPUs from TensorFlow (%s); call hide_gpus_from_tensorflow() "
                    "before any other TensorFlow work.", e)


def load_image_source(name: str, split: str, *, data_dir: str | None = None, seed: int = 0,
                      reader: str = "memory") -> ImageSource:
  """Loads ``split`` ("pretrain", "train" or "test") of dataset ``name``.

  ``data_dir`` is the tfds data directory (None: tfds' default); ``seed`` only fixes the digits
  train/test split; ``reader`` (one of ``READERS``) holds the split in host memory or reads it by index
  from its ArrayRecord files (``RANDOM_ACCESS_DATASETS`` only). Raises ``DatasetNotFoundError`` when a
  tfds dataset is not prepared there.
  """
  _checks.check_choice("dataset", name, DATASETS)
  _checks.check_choice("split", split, SPLITS)
  _checks.check_choice("config.data_reader", reader, READERS)
  seed = _checks.check_int("seed", seed, low=0, high=2**32 - 1)
  if reader == "random_access" and name not in RANDOM_ACCESS_DATASETS:
    raise ValueError(f"config.data_reader='random_access' is not available for config.dataset={name!r}"
                     f" (it fits in memory); allowed: 'memory', or a dataset among "
                     f"{', '.join(map(repr, RANDOM_ACCESS_DATASETS))}.")
  if reader == "memory" and name in _MEMORY_LIMITED:
    raise ValueError(f"config.data_reader='memory' cannot hold config.dataset={name!r} (~140 GB of "
                     "JPEGs) in host memory; allowed: config.data_reader='random_access' (ArrayRecord "
                     "files read by index).")
  hide_gpus_from_tensorflow()
  if name == "digits":
    return _load_digits(split, seed)
  tfds_split = _TFDS_SPLITS[name][split]
  if name in RANDOM_ACCESS_DATASETS:
    classes = IMAGENET100_WNIDS if name == "imagenet100" else None
    load = _open_imagenet if reader == "random_access" else _load_imagenet
    images, labels = load(name, tfds_split, data_dir, classes)
    mean, std = _IMAGENET_STATS
    num_classes = len(classes) if classes else 1000
    return ImageSource(name, images, labels, num_classes, (224, 224, 3), mean, std)
  images, labels = _load_decoded(name, tfds_split, data_dir)
  mean, std = {"cifar10": _CIFAR10_STATS, "cifar100": _CIFAR100_STATS, "stl10": _STL10_STATS}[name]
  num_classes = 100 if name == "cifar100" else 10
  return ImageSource(name, images, labels, num_classes, images.shape[1:], mean, std)


def _load_digits(split: str, seed: int) -> ImageSource:
  """sklearn's 1,797 real 8×8 digits, a stratified 80/20 train/test split fixed by ``seed``."""
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top

  digits = sk_datasets.load_digits()
  images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # 0..16 -> 0..255
  labels = digits.target.astype(np.int32)
  train, test = model_selection.train_test_split(
      np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=seed)
  train, test = np.sort(train), np.sort(test)
  pixels = images[train].astype(np.float64) / 255.0  # Normalisation statistics from the train part.
  mean, std = (float(pixels.mean()),), (float(pixels.std()),)
  keep = test if split == "test" else train
  return ImageSource("digits", images[keep], labels[keep], 10, (8, 8, 1), mean, std)


def _as_dataset(name: str, tfds_name: str, split: str, data_dir: str | None,
                **kwargs) -> tf.data.Dataset:
  """``builder.as_dataset`` that never downloads and turns "not prepared" into one clear error."""
  builder = tfds.builder(tfds_name, data_dir=data_dir)
  try:
    return builder.as_dataset(split=split, shuffle_files=False, **kwargs)
  except AssertionError as e:  # tfds' "could not find data in <data_dir>" when not prepared.
    raise DatasetNotFoundError(
        _not_found_message(name, tfds_name, split, data_dir, builder.data_dir)) from e
  except NotImplementedError as e:  # prepared as ArrayRecord, which tf.data cannot read
    raise ValueError(f"tfds {tfds_name!r} under {builder.data_dir} is stored as ArrayRecord files, "
                     "which are read by index; allowed: config.data_reader='random_access' (for "
                     f"{', '.join(RANDOM_ACCESS_DATASETS)}).") from e


def _not_found_message(name: str, tfds_name: str, split: str, data_dir: str | None,
                       looked_in: str) -> str:
  where = repr(data_dir) if data_dir else "None (tfds' default directory)"
  message = (
      f"Dataset {name!r} (tfds {tfds_name!r}, split {split!r}) is not prepared under "
      f"data_dir={where}; looked for "
      f"{looked_in}. Datasets are never downloaded here (download=False). Either point "
      "--config.data_dir at a directory that already holds it, or prepare it on a machine with network "
      f"access: python -c \"import tensorflow_datasets as tfds; tfds.builder({tfds_name!r}, "
      "data_dir=DATA_DIR).download_and_prepare()\" and copy DATA_DIR here.")
  if tfds_name == "imagenet2012":
    message += (
        " imagenet2012 cannot be downloaded automatically: register at "
        "https://image-net.org/download-images, put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
        "into DATA_DIR/downloads/manual/, then run the download_and_prepare() command above (this "
        "step needs no network).")
  return message


def _load_decoded(tfds_name: str, split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
  """Copies a tfds split of fixed-size images into preallocated NumPy arrays (no 2x memory peak)."""
  ds = _as_dataset(tfds_name, tfds_name, split, data_dir)
  count = int(ds.cardinality())  # Known for prepared tfds splits; otherwise count once.
  if count < 0:
    count = int(ds.reduce(np.int64(0), lambda total, _: total + 1))
  ds = ds.map(lambda ex: (ex["image"], ex["label"])).batch(_LOAD_BATCH).prefetch(2)
  images = np.empty((count, *ds.element_spec[0].shape[1:]), np.uint8)
  labels = np.empty((count,), np.int32)
  position = 0
  for batch_images, batch_labels in ds.as_numpy_iterator():
    images[position:position + len(batch_labels)] = batch_images
    labels[position:position + len(batch_labels)] = batch_labels
    position += len(batch_labels)
  return images[:position], labels[:position]


def _imagenet_relabel(data_dir: str | None, classes: tuple[str, ...] | None) -> np.ndarray:
  """tfds imagenet2012 label → our label: 0..len(classes)-1 in sorted-WordNet-id order, -1 if dropped
  (``classes`` None: all 1,000, unchanged)."""
  names = tfds.builder("imagenet2012", data_dir=data_dir).info.features["label"].names
  if classes is None:
    return np.arange(len(names), dtype=np.int32)
  tfds_ids = np.sort([names.index(wnid) for wnid in classes])
  relabel = np.full(len(names), -1, np.int32)
  relabel[tfds_ids] = np.arange(len(tfds_ids), dtype=np.int32)
  return relabel


def _load_imagenet(name: str, split: str, data_dir: str | None,
                   classes: tuple[str, ...] | None) -> tuple[np.ndarray, np.ndarray]:
  """The ``classes`` of tfds ``imagenet2012`` (None: all) as encoded JPEG bytes in host memory."""
  ds = _as_dataset(name, "imagenet2012", split, data_dir,
                   decoders={"image": tfds.decode.SkipDecoding()})
  relabel_table = tf.constant(_imagenet_relabel(data_dir, classes))
  ds = ds.map(lambda ex: (ex["image"], tf.gather(relabel_table, ex["label"])))
  ds = ds.filter(lambda image, label: label >= 0).batch(_LOAD_BATCH).prefetch(2)
  images, labels = [], []
  for batch_images, batch_labels in ds.as_numpy_iterator():
    images.append(batch_images)
    labels.append(batch_labels)
  if not images:
    return np.empty((0,), object), np.empty((0,), np.int32)
  return np.concatenate(images).astype(object), np.concatenate(labels).astype(np.int32)


def _open_imagenet(name: str, split: str, data_dir: str | None,
                   classes: tuple[str, ...] | None) -> tuple[records.RecordImages, np.ndarray]:
  """The ``classes`` of tfds ``imagenet2012`` (None: all), read by index from its ArrayRecord files;
  only the labels (int32, 4 bytes per item) are held in memory."""
  try:
    images = records.RecordImages.open("imagenet2012", split, data_dir)
  except FileNotFoundError as e:
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    raise DatasetNotFoundError(
        _not_found_message(name, "imagenet2012", split, data_dir, builder.data_dir)) from e
  labels = _imagenet_relabel(data_dir, classes)[images.labels()]
  keep = np.flatnonzero(labels >= 0)
  return (images if keep.size == len(images) else images.subset(keep)), labels[keep].astype(np.int32)
