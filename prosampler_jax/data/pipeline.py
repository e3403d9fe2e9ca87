"""tf.data pipelines built from the sampler's index array (one per refresh window) and for evaluation.

Images stay in the source (a NumPy array, or ArrayRecord files read by index): each batch row is gathered
with one ``tf.numpy_function`` call, so no copy of the dataset enters the TF graph (a captured multi-GB
tensor would be copied on every pipeline build, and a graph constant is limited to 2 GB). Augmentation
seeds are a pure function of (seed, window, row, column, view), so ``start_batch=k`` reproduces elements
k, k+1, … exactly.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from prosampler_jax import _checks
from prosampler_jax.data import augment as augment_lib
from prosampler_jax.data import images as images_lib
from prosampler_jax.data import rows as rows_lib
from prosampler_jax.data.rows import process_columns

_MAX_SEED = 2**63 - 1
_EVAL_RESIZE_RATIO = 256 / 224  # Shorter side to 256, then a 224 centre crop (standard ImageNet eval).


def pretrain_dataset(source: images_lib.ImageSource, batches, *, seed: int, window: int,
                     augment: augment_lib.AugmentConfig, process_index: int = 0,
                     process_count: int = 1, start_batch: int = 0) -> tf.data.Dataset:
  """Two augmented views of every item of ``batches`` (int ``[num_batches, B]``), batch by batch.

  Yields ``{"view1", "view2": uint8 [B_local, H, W, C], "index": int32 [B_local]}`` in the order of
  ``batches`` (views stay uint8, a quarter of float32's bytes to copy to the device; the task normalises
  them there with the source's ``mean``/``std``); this process takes columns ``[process_index·B_local,
  (process_index+1)·B_local)`` with ``B_local = B / process_count``; elements start at row ``start_batch``
  (resume mid-window).
  """
  if not isinstance(source, images_lib.ImageSource):
    raise ValueError(f"source must be an ImageSource, got {type(source).__name__}.")
  if not isinstance(augment, augment_lib.AugmentConfig):
    raise ValueError(f"augment must be an AugmentConfig, got {type(augment).__name__}.")
  batches, columns = process_columns(batches, len(source), process_index=process_index,
                                     process_count=process_count, start_batch=start_batch)
  seed = _checks.check_int("seed", seed, low=0, high=_MAX_SEED)
  window = _checks.check_int("window", window, low=0, high=_MAX_SEED)
  images_lib.hide_gpus_from_tensorflow()

  local_size = len(columns)
  rows = np.arange(start_batch, len(batches), dtype=np.int64)
  height, width, channels = source.image_shape
  base_seed = tf.constant([seed, window], tf.int64)

  def gather_row(row, index):
    return {"image": _gather(source, index, local_size), "index": index,
            "row": tf.fill([local_size], row), "column": tf.constant(columns)}

  def make_views(example):
    image = example["image"]
    if source.encoded:
      image = tf.io.decode_image(image, channels=channels, expand_animations=False)
      image = tf.ensure_shape(image, (None, None, channels))
    fold = tf.random.experimental.stateless_fold_in
    item_seed = fold(fold(base_seed, example["row"]), example["column"])
    views = [augment_lib.augment_image(image, fold(item_seed, tf.constant(view, tf.int64)),
                                       config=augment, out_size=(height, width))
             for view in (0, 1)]
    to_uint8 = lambda view: tf.image.convert_image_dtype(view, tf.uint8, saturate=True)
    return {"view1": to_uint8(views[0]), "view2": to_uint8(views[1]), "index": example["index"]}

  ds = tf.data.Dataset.from_tensor_slices((rows, batches[start_batch:, columns]))
  ds = ds.map(gather_row, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.unbatch()
  ds = ds.map(make_views, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  return ds.with_options(_deterministic_options())


def eval_dataset(source: images_lib.ImageSource, *, batch_size: int, process_index: int = 0,
                 process_count: int = 1) -> tf.data.Dataset:
  """The whole source in order, un-augmented, in batches padded to ``batch_size`` with ``mask`` False:
  this process's rows of each batch (columns ``[p·B/P, (p+1)·B/P)``), so each host reads and decodes
  only its share.

  Yields ``{"image": float32 [batch_size / process_count, H, W, C] normalised, "label": int32 (-1 on
  padding), "mask": bool}``. Encoded images: shorter side resized to 256/224·H, then a centre crop to (H, W).
  """
  if not isinstance(source, images_lib.ImageSource):
    raise ValueError(f"source must be an ImageSource, got {type(source).__name__}.")
  batch_size = _checks.check_int("batch_size", batch_size, low=1)
  process_count = _checks.check_int("process_count", process_count, low=1)
  process_index = _checks.check_int("process_index", process_index, low=0, high=process_count - 1)
  if batch_size % process_count:
    raise ValueError(f"batch_size={batch_size} does not split over {process_count} processes; allowed: a "
                     "multiple of the process count.")
  images_lib.hide_gpus_from_tensorflow()
  num_items = len(source)
  num_padded = -(-num_items // batch_size) * batch_size
  local = batch_size // process_count
  index = np.arange(num_padded, dtype=np.int32).reshape(-1, batch_size)
  index = index[:, process_index * local:(process_index + 1) * local].reshape(-1)
  mask = index < num_items
  index[~mask] = 0
  labels = np.where(mask, source.labels[index], -1).astype(np.int32)
  batch_size = local  # from here on: the batches this process reads
  height, width, _ = source.image_shape
  resize = not source.encoded and tuple(source.images.shape[1:3]) != (height, width)
  mean, std = _normalizer(source)

  def gather_batch(index, label, mask):
    return {"image": _gather(source, index, batch_size), "label": label, "mask": mask}

  def preprocess(image):
    if source.encoded:
      image = _resize_and_center_crop(image, source.image_shape)
    else:
      image = tf.image.convert_image_dtype(image, tf.float32)
      if resize:
        image = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
    return (tf.clip_by_value(image, 0.0, 1.0) - mean) / std

  ds = tf.data.Dataset.from_tensor_slices((index, labels, mask)).batch(batch_size)
  ds = ds.map(gather_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if source.encoded:  # Decoding is per image: unbatch, decode in parallel, batch again.
    ds = ds.unbatch().map(lambda ex: {**ex, "image": preprocess(ex["image"])},
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
  else:
    ds = ds.map(lambda ex: {**ex, "image": preprocess(ex["image"])},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_deterministic_options())


def numpy_rows_dataset(batches, num_items: int, make_row, signature: dict, *, process_index: int = 0,
                       process_count: int = 1, start_batch: int = 0) -> tf.data.Dataset:
  """One element per row of the sampler's index array, built on the host by NumPy (``rows.numpy_rows``
  yields the same elements without TensorFlow).

  ``make_row(row, index)`` gets the row's number in ``batches`` and this process's indices of it (int32
  ``[B_local]``) and returns ``{name: array [B_local, ...]}`` matching ``signature`` (``{name: (dtype,
  per-item shape)}``; ``None`` entries where a size varies by row, e.g. a padded graph bucket).
  Elements carry ``"index"`` too, come in the order of ``batches`` from row ``start_batch``, and are built
  in parallel but delivered in order; ``make_row`` must be a pure function of its arguments, so that
  resumed runs see the same inputs.
  """
  batches, columns = process_columns(batches, num_items, process_index=process_index,
                                     process_count=process_count, start_batch=start_batch)
  images_lib.hide_gpus_from_tensorflow()
  names = sorted(signature)
  dtypes = [tf.as_dtype(signature[n][0]) for n in names]

  def build(row, index):
    def run(row_value, index_value):
      out = rows_lib.checked_row(make_row(int(row_value), index_value), signature, len(columns))
      return [out[n] for n in names]
    values = tf.numpy_function(run, [row, index], dtypes, stateful=False)
    out = {n: tf.ensure_shape(v, (len(columns), *signature[n][1])) for n, v in zip(names, values)}
    return {**out, "index": index}

  rows = np.arange(start_batch, len(batches), dtype=np.int64)
  ds = tf.data.Dataset.from_tensor_slices((rows, batches[start_batch:, columns]))
  ds = ds.map(build, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_deterministic_options())


def _gather(source: images_lib.ImageSource, index: tf.Tensor, count: int) -> tf.Tensor:
  """``source.images[index]``, read by NumPy from memory or by the source's reader from disk (no copy
  of the dataset into TF)."""
  take = lambda i: source.images[i]
  if source.encoded:
    return tf.ensure_shape(tf.numpy_function(take, [index], tf.string, stateful=False), (count,))
  shape = (count, *source.images.shape[1:])
  return tf.ensure_shape(tf.numpy_function(take, [index], tf.uint8, stateful=False), shape)


def _normalizer(source: images_lib.ImageSource) -> tuple[tf.Tensor, tf.Tensor]:
  """Per-channel mean and std as float32 tensors broadcasting over ``[..., C]``."""
  return tf.constant(source.mean, tf.float32), tf.constant(source.std, tf.float32)


def _resize_and_center_crop(encoded: tf.Tensor, image_shape: tuple[int, int, int]) -> tf.Tensor:
  """Decodes, resizes the shorter side to ``256/224·H`` and centre-crops to ``(H, W)``; float [0, 1]."""
  height, width, channels = image_shape
  image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
  image = tf.ensure_shape(image, (None, None, channels))
  image = tf.image.convert_image_dtype(image, tf.float32)
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  target = max(round(height * _EVAL_RESIZE_RATIO), height, width)
  scaled = tf.cast(tf.round(shape * (target / tf.reduce_min(shape))), tf.int32)
  image = tf.image.resize(image, scaled, method="bilinear", antialias=True)
  return tf.ensure_shape(tf.image.resize_with_crop_or_pad(image, height, width),
                         (height, width, channels))


def _deterministic_options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  return options
