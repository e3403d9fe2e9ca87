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


@functools.partial(jax.jit, static_argnames=("block",), donate_argnums=(0, 1))
def _merge_train_chunk(top_sims: jax.Array, top_labels: jax.Array, test: jax.Array, train_chunk: jax.Array,
                       chunk_labels: jax.Array, chunk_valid: jax.Array, *, block: int
                       ) -> tuple[jax.Array, jax.Array]:
  """Every test item's running top-k (similarities, labels) after one more chunk of train items.

  Test items go ``block`` at a time, so the similarities held at once are ``block × chunk``. Earlier
  chunks come first in the merge, so ties keep the lower train index, as one global top-k would.
  """
  k = top_sims.shape[1]

  def one_block(args):
    sims_so_far, labels_so_far, queries = args
    sims = jnp.matmul(queries, train_chunk.T, precision=jax.lax.Precision.HIGHEST)
    sims = jnp.where(chunk_valid[None, :], sims, -jnp.inf)  # the last chunk's padding never wins
    candidates = jnp.concatenate([sims_so_far, sims], axis=1)
    labels = jnp.concatenate([labels_so_far, jnp.broadcast_to(chunk_labels, sims.shape)], axis=1)
    best, where = jax.lax.top_k(candidates, k)
    return best, jnp.take_along_axis(labels, where, axis=1)

  blocks = lambda x: x.reshape(x.shape[0] // block, block, *x.shape[1:])
  best, labels = jax.lax.map(one_block, (blocks(top_sims), blocks(top_labels), blocks(test)))
  return best.reshape(-1, k), labels.reshape(-1, k)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _vote(top_sims: jax.Array, top_labels: jax.Array, temperature: jax.Array, *, num_classes: int
          ) -> jax.Array:
  """Each test item's class: its k neighbours vote with weight ``exp(sim / temperature)``."""
  # Subtracting each row's max rescales its class scores by one constant: argmax unchanged, no overflow.
  weights = jnp.exp((top_sims - top_sims[:, :1]) / temperature)
  rows = jnp.broadcast_to(jnp.arange(top_labels.shape[0])[:, None], top_labels.shape)
  scores = jnp.zeros((top_labels.shape[0], num_classes), jnp.float32).at[rows, top_labels].add(weights)
  return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def weighted_knn_accuracy(train_features, train_labels, test_features, test_labels, *,
                          num_classes: int, k: int = 200, temperature: float = 0.5,
                          chunk_size: int = 1024, train_chunk_size: int = 65536) -> float:
  """Test accuracy in [0, 1] of the weighted kNN classifier on frozen features.

  Features are L2-normalised (cosine similarity). Train items with label < 0 are unlabeled and ignored;
  ``k`` is clamped to the number of labeled train items. The train features stream through the device
  ``train_chunk_size`` rows at a time while every test item keeps its running top-k, so the device holds
  the test features, one train chunk and ``chunk_size × train_chunk_size`` similarities, never the whole
  train set (ImageNet-1k, 2048-d: 0.5 GiB per chunk instead of 10.5 GiB). Shapes are padded so every
  call of a size compiles once.
  """
  k = _checks.check_int("k", k, low=1)
  temperature = _checks.check_float("temperature", temperature, low=0.0, low_open=True)
  chunk_size = _checks.check_int("chunk_size", chunk_size, low=1)
  train_chunk_size = _checks.check_int("train_chunk_size", train_chunk_size, low=1)
  train_x, train_y, test_x, test_y = _inputs.check_split(
      train_features, train_labels, test_features, test_labels, num_classes=num_classes)
  k = min(k, train_x.shape[0])

  num_test = test_x.shape[0]
  block = min(chunk_size, num_test)
  padded_test = np.zeros((-(-num_test // block) * block, test_x.shape[1]), np.float32)
  padded_test[:num_test] = test_x
  test = l2_normalize(jnp.asarray(padded_test))
  top_sims = jnp.full((test.shape[0], k), -jnp.inf, jnp.float32)
  top_labels = jnp.zeros((test.shape[0], k), jnp.int32)
  rows = min(train_chunk_size, train_x.shape[0])
  for start in range(0, train_x.shape[0], rows):
    chunk = np.zeros((rows, train_x.shape[1]), np.float32)
    labels, valid = np.zeros(rows, np.int32), np.zeros(rows, bool)
    count = min(rows, train_x.shape[0] - start)
    chunk[:count], labels[:count], valid[:count] = train_x[start:start + count], train_y[start:start + count], True
    top_sims, top_labels = _merge_train_chunk(
        top_sims, top_labels, test, l2_normalize(jax.device_put(chunk)), jax.device_put(labels),
        jax.device_put(valid), block=block)
  predicted = np.asarray(_vote(top_sims, top_labels, jnp.float32(temperature), num_classes=num_classes))
  return float(np.mean(predicted[:num_test] == test_y))
