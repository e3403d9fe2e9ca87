"""Image data for the SimCLR trainer: sources read by index, SimCLR augmentations, tf.data pipelines.

The only package that imports TensorFlow / tensorflow_datasets; importing it costs the TF import.
"""

from prosampler_jax.data.augment import AugmentConfig
from prosampler_jax.data.augment import augment_config_for
from prosampler_jax.data.augment import augment_image
from prosampler_jax.data.images import DATASETS
from prosampler_jax.data.images import DatasetNotFoundError
from prosampler_jax.data.images import IMAGENET100_WNIDS
from prosampler_jax.data.images import ImageSource
from prosampler_jax.data.images import READERS
from prosampler_jax.data.images import SPLITS
from prosampler_jax.data.images import hide_gpus_from_tensorflow
from prosampler_jax.data.images import load_image_source
from prosampler_jax.data.pipeline import eval_dataset
from prosampler_jax.data.pipeline import pretrain_dataset

__all__ = [
    "AugmentConfig",
    "DATASETS",
    "DatasetNotFoundError",
    "IMAGENET100_WNIDS",
    "ImageSource",
    "READERS",
    "SPLITS",
    "augment_config_for",
    "augment_image",
    "eval_dataset",
    "hide_gpus_from_tensorflow",
    "load_image_source",
    "pretrain_dataset",
]
