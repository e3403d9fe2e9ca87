"""Tests for prosampler_jax.diagnostics.batch_stats against a direct per-batch NumPy computation."""

from __future__ import annotations

import json

import hypothesis
from hypothesis import strategies as st
import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import diagnostics
from prosampler_jax import parallel


def _reference(batches, x, labels=None):
  """Loops over batches and pairs: the definitions written out plainly."""
  z = x / np.linalg.norm(x, axis=1, keepdims=True)
  means, maxes, same = [], [], []
  for row in batches:
    b = len(row)
    sims = z[row] @ z[row].T
    pairs = [(i, j) for i in range(b) for j in range(b) if i != j]
    means.append(np.mean([sims[i, j] for i, j in pairs]))
    maxes.append(np.mean([max(sims[i, j] for j in range(b) if j != i) for i in range(b)]))
    if labels is not None:
      same.append(np.mean([labels[row[i]] == labels[row[j]] for i, j in pairs]))
  out = {"mean_neg_cos": np.mean(means), "max_neg_cos": np.mean(maxes),
         "coverage": np.unique(batches).size / x.shape[0]}
  if labels is not None:
    out["false_negative_rate"] = np.mean(same)
  return out


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(shape=st.sampled_from([(1, 2), (3, 5), (7, 4)]), seed=st.integers(0, 2**31 - 1),
                  with_labels=st.booleans())
def test_matches_the_definitions(shape, seed, with_labels):
  rng = np.random.default_rng(seed)
  n = 30
  x = rng.normal(size=(n, 6)).astype(np.float32) * rng.uniform(0.1, 5.0, size=(n, 1)).astype(np.float32)
  batches = np.stack([rng.choice(n, shape[1], replace=False) for _ in range(shape[0])])
  labels = rng.integers(0, 3, size=n) if with_labels else None
  stats = diagnostics.batch_stats(batches, x, labels)
  expected = _reference(batches, x, labels)
  assert set(expected) | {"num_batches", "batch_size"} == set(stats)
  for key, value in expected.items():
    assert stats[key] == pytest.approx(value, abs=1e-5), key
  assert (stats["num_batches"], stats["batch_size"]) == shape


def test_known_values_and_json():
  x = np.array([[1, 0], [1, 0], [0, 1], [-1, 0]], np.float32)
  labels = np.array(["a", "a", "b", "c"])
  stats = diagnostics.batch_stats(np.array([[0, 1], [2, 3]]), x, labels)
  assert stats == {"mean_neg_cos": 0.5, "max_neg_cos": 0.5, "coverage": 1.0, "num_batches": 2,
                   "batch_size": 2, "false_negative_rate": 0.5}
  assert all(type(v) in (int, float) for v in stats.values())
  json.dumps(stats)


def test_a_bank_on_devices_is_read_there_split_or_whole_with_the_host_result():
  mesh = parallel.make_data_mesh()
  rng = np.random.default_rng(2)
  x = rng.normal(size=(300, 16)).astype(np.float32)
  batches, labels = rng.permutation(300)[:288].reshape(9, 32), rng.integers(0, 5, 300)
  want = diagnostics.batch_stats(batches, x, labels)
  for layout in parallel.BANK_SHARDINGS:
    bank = parallel.put(x, parallel.bank_sharding(mesh, layout, 16))
    assert diagnostics.batch_stats(batches, bank, labels) == pytest.approx(want, rel=1e-6)
  half = diagnostics.batch_stats(batches, jnp.asarray(x, jnp.bfloat16), labels)  # bf16 bank storage
  assert half["mean_neg_cos"] == pytest.approx(want["mean_neg_cos"], abs=2e-3)


def test_many_chunks_match_one_chunk():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(500, 8)).astype(np.float32)
  batches = np.stack([rng.choice(500, 256, replace=False) for _ in range(70)])  # 2 chunks of 64.
  labels = rng.integers(0, 10, size=500)
  full = diagnostics.batch_stats(batches, x, labels)
  parts = [diagnostics.batch_stats(batches[i:i + 10], x, labels) for i in range(0, 70, 10)]
  for key in ("mean_neg_cos", "max_neg_cos", "false_negative_rate"):
    assert full[key] == pytest.approx(np.mean([p[key] for p in parts]), abs=1e-5)
  assert full["coverage"] == np.unique(batches).size / 500


_X = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
_NAN = _X.copy()
_NAN[2, 0] = np.inf


@pytest.mark.parametrize("batches,embeddings,labels,argument", [
    (np.arange(4), _X, None, "batches"),
    (np.zeros((0, 2), int), _X, None, "batches"),
    (np.zeros((2, 1), int), _X, None, "batches"),
    (np.zeros((2, 2), float), _X, None, "batches"),
    (np.array([[0, 10]]), _X, None, "batches"),
    (np.array([[-1, 2]]), _X, None, "batches"),
    (np.array([[0, 1]]), _NAN, None, "embeddings"),
    (np.array([[0, 1]]), _X[:, 0], None, "embeddings"),
    (np.array([[0, 1]]), _X, np.zeros(9), "labels"),
])
def test_bad_input_raises(batches, embeddings, labels, argument):
  with pytest.raises(ValueError, match=argument):
    diagnostics.batch_stats(batches, embeddings, labels)


def test_graph_stats_known_values_and_bad_input():
  # Three different neighbour sets; every item has in-degree 2: variance 0.
  stats = diagnostics.graph_stats(np.array([[1, 2], [2, 3], [3, 0], [0, 1]]))
  assert stats == {"identical_row_pairs": 0, "in_degree_variance_ratio": 0.0}
  stats = diagnostics.graph_stats(np.array([[1, 2], [2, 1], [0, 1], [1, 2]]))
  # {1,2} three times → 3 pairs; in-degrees (1, 4, 3, 0): variance 2.5 over 3·(2/3)·(1/3) = 2/3.
  assert stats["identical_row_pairs"] == 3
  assert stats["in_degree_variance_ratio"] == pytest.approx(2.5 / (2 / 3))
  with pytest.raises(ValueError, match="neighbors"):
    diagnostics.graph_stats(np.array([[1, 5], [0, 1]]))
  with pytest.raises(ValueError, match="neighbors"):
    diagnostics.graph_stats(np.zeros((3,), int))
