"""Test setup: four simulated CPU devices (set before JAX initialises) and quiet TensorFlow."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.expanduser("~/.cache/prosampler_jax/numba"))
