"""Weighted kNN monitor (Wu et al. 2018, "instance discrimination"; used by SimCLR-style repos).

Each test item votes with its k most cosine-similar labeled train items, each weighted by
``exp(sim / temperature)``; the class with the largest total weight wins. Cheap enough to run every
epoch on frozen features, so trainers use it to track representation quality.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from prosampler_jax import _checks
from prosampler_jax.normalize import l2_normalize
from prosampler_jax.evaluation import _inputs


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _predict_chunk(test_chunk: jax.Array, train: jax.Array, train_labels: jax.Array,
                   temperature: jax.Array, *, k: int, num_classes: int) -> jax.Array:
  """Predicted classes of one chunk of (normalised) test items, [C] int32; memory O(C·N_train)."""
  sims = jnp.matmul(l2_normalize(test_chunk), train.T, precision=jax.lax.Precision.HIGHEST)
  top_sims, top_index = jax.lax.top_k(sims, k)
  # Subtracting each row's max rescales its class scores by one constant: argmax unchanged, no overflow.
  weights = jnp.exp((top_sims - top_sims[:, :1]) / temperature)
  rows = jnp.broadcast_to(jnp.arange(top_index.shape[0])[:, None], top_index.shape)
  scores = jnp.zeros((top_index.shape[0], num_classes), jnp.float32)
  scores = scores.at[rows, train_labels[top_index]].add(weights)
  return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def weighted_knn_accuracy(train_features, train_labels, test_features, test_labels, *,
                          num_classes: int, k: int = 200, temperature: float = 0.5,
                          chunk_size: int = 1024) -> float:
  """Test accuracy in [0, 1] of the weighted kNN classifier on frozen features.

  Features are L2-normalised (cosine similarity). Train items with label < 0 are unlabeled and ignored;
  ``k`` is clamped to the number of labeled train items. Test items are processed ``chunk_size`` at a
  time by one jitted kernel (the last chunk is padded, so every call of a size compiles once).
  """
  k = _checks.check_int("k", k, low=1)
  temperature = _checks.check_float("temperature", temperature, low=0.0, low_open=True)
  chunk_size = _checks.check_int("chunk_size", chunk_size, low=1)
  train_x, train_y, test_x, test_y = _inputs.check_split(
      train_features, train_labels, test_features, test_labels, num_classes=num_classes)
  k = min(k, train_x.shape[0])

  num_test = test_x.shape[0]
  chunk = min(chunk_size, num_test)
  num_chunks = -(-num_test // chunk)
  padded = np.zeros((num_chunks * chunk, test_x.shape[1]), np.float32)
  padded[:num_test] = test_x

  train = l2_normalize(jnp.asarray(train_x))
  labels = jnp.asarray(train_y)
  temp = jnp.float32(temperature)
  predictions = [
      _predict_chunk(jnp.asarray(padded[i * chunk:(i + 1) * chunk]), train, labels, temp, k=k,
                     num_classes=num_classes)
      for i in range(num_chunks)
  ]
  predicted = np.concatenate([np.asarray(p) for p in predictions])[:num_test]
  return float(np.mean(predicted == test_y))
