"""Input data: image sources, SimCLR augmentations and tf.data pipelines (TensorFlow), text and TU graphs
(NumPy, delivered through tf.data or, without TensorFlow, ``rows.numpy_rows``).

The only package that imports TensorFlow / tensorflow_datasets, and only when an image name below is
first used (PEP 562): importing ``prosampler_jax.data.graphs``, ``.text`` or ``.rows`` does not import
TensorFlow.
"""

import importlib

# The image API, by the module that defines it.
_EXPORTS = {
    "AugmentConfig": "augment", "augment_config_for": "augment", "augment_image": "augment",
    "DATASETS": "images", "DatasetNotFoundError": "images", "IMAGENET100_WNIDS": "images",
    "ImageSource": "images", "READERS": "images", "SPLITS": "images",
    "hide_gpus_from_tensorflow": "images", "load_image_source": "images",
    "eval_dataset": "pipeline", "pretrain_dataset": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'prosampler_jax.data' has no attribute {name!r}")
  return getattr(importlib.import_module(f"prosampler_jax.data.{_EXPORTS[name]}"), name)
