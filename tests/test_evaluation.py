"""Tests for prosampler_jax.evaluation: weighted kNN monitor and linear probe on frozen features."""

from __future__ import annotations

import numpy as np
import pytest

from prosampler_jax.evaluation import linear_probe_accuracy
from prosampler_jax.evaluation import weighted_knn_accuracy


def _clusters(num_per_class: int, num_classes: int, dim: int, *, spread: float, seed: int):
  """Gaussian blobs around random unit centres; returns float32 features and int labels (shuffled)."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  labels = np.repeat(np.arange(num_classes), num_per_class)
  features = centres[labels] + spread * rng.normal(size=(labels.size, dim))
  order = rng.permutation(labels.size)
  return features[order].astype(np.float32), labels[order]


def _brute_force_knn_predictions(train_x, train_y, test_x, *, num_classes, k, temperature):
  """Reference weighted kNN, one test item at a time, in float64 NumPy."""
  keep = train_y >= 0
  train_x, train_y = train_x[keep].astype(np.float64), train_y[keep]
  train_x /= np.linalg.norm(train_x, axis=1, keepdims=True)
  k = min(k, len(train_y))
  predictions = []
  for query in test_x.astype(np.float64):
    sims = train_x @ (query / np.linalg.norm(query))
    nearest = np.argsort(-sims, kind="stable")[:k]
    scores = np.zeros(num_classes)
    np.add.at(scores, train_y[nearest], np.exp(sims[nearest] / temperature))
    predictions.append(int(np.argmax(scores)))
  return np.asarray(predictions)


# ----------------------------------------------------------------------------- weighted kNN


def test_knn_separable_clusters_are_perfect():
  x, y = _clusters(60, 4, 16, spread=0.05, seed=0)
  assert weighted_knn_accuracy(x[:160], y[:160], x[160:], y[160:], num_classes=4, k=20) == 1.0


def test_knn_random_labels_are_at_chance():
  rng = np.random.default_rng(1)
  train_x, test_x = rng.normal(size=(400, 8)), rng.normal(size=(1000, 8))
  train_y, test_y = rng.integers(0, 4, 400), rng.integers(0, 4, 1000)
  accuracy = weighted_knn_accuracy(train_x, train_y, test_x, test_y, num_classes=4, k=20)
  assert abs(accuracy - 0.25) < 0.06  # 4 binomial standard deviations at n = 1000


@pytest.mark.parametrize("k, temperature, chunk_size, train_chunk_size", [
    (1, 0.5, 1024, 65536), (7, 0.1, 13, 7), (50, 2.0, 64, 13), (20, 0.5, 70, 1)])
def test_knn_matches_brute_force(k, temperature, chunk_size, train_chunk_size):
  """Also with the train set streamed in chunks smaller than k (the running top-k merges them)."""
  rng = np.random.default_rng(k)
  train_x, test_x = rng.normal(size=(90, 6)), rng.normal(size=(70, 6))
  train_y = rng.integers(-1, 5, 90)  # includes unlabeled items (-1)
  expected = _brute_force_knn_predictions(train_x, train_y, test_x, num_classes=5, k=k,
                                          temperature=temperature)
  # Labelling the test items with the reference predictions makes accuracy 1.0 iff every one agrees.
  assert weighted_knn_accuracy(train_x, train_y, test_x, expected, num_classes=5, k=k,
                               temperature=temperature, chunk_size=chunk_size,
                               train_chunk_size=train_chunk_size) == 1.0
  wrong = (expected + 1) % 5
  assert weighted_knn_accuracy(train_x, train_y, test_x, wrong, num_classes=5, k=k,
                               temperature=temperature, chunk_size=chunk_size,
                               train_chunk_size=train_chunk_size) == 0.0


@pytest.mark.parametrize("train_chunk_size", [1, 2, 65536])
def test_knn_ties_go_to_the_lower_train_index_whatever_the_chunks(train_chunk_size):
  """Two identical train items with different labels: one global top-1 keeps the first; so must the
  merge of chunks."""
  train_x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
  train_y = np.array([2, 0, 1])
  test_x = np.array([[1.0, 0.1], [2.0, 0.3]], np.float32)
  assert weighted_knn_accuracy(train_x, train_y, test_x, np.array([2, 2]), num_classes=3, k=1,
                               train_chunk_size=train_chunk_size) == 1.0


def test_knn_ignores_unlabeled_train_items():
  x, y = _clusters(40, 3, 8, spread=0.05, seed=2)
  train_x, train_y, test_x, test_y = x[:90], y[:90], x[90:], y[90:]
  # Unlabeled decoys sit exactly on the test items: if they voted (as any class) they would dominate.
  decoys = np.concatenate([train_x, test_x])
  decoy_y = np.concatenate([train_y, np.full(len(test_x), -1)])
  assert weighted_knn_accuracy(decoys, decoy_y, test_x, test_y, num_classes=3, k=5) == 1.0
  with_decoys = weighted_knn_accuracy(decoys, decoy_y, test_x, (test_y + 1) % 3, num_classes=3, k=5)
  assert with_decoys == 0.0


def test_knn_clamps_k_to_labeled_train_items():
  rng = np.random.default_rng(3)
  train_x, test_x = rng.normal(size=(30, 5)), rng.normal(size=(40, 5))
  train_y = np.where(rng.random(30) < 0.3, -1, rng.integers(0, 3, 30))
  test_y = rng.integers(0, 3, 40)
  labeled = int((train_y >= 0).sum())
  clamped = weighted_knn_accuracy(train_x, train_y, test_x, test_y, num_classes=3, k=10_000)
  exact = weighted_knn_accuracy(train_x, train_y, test_x, test_y, num_classes=3, k=labeled)
  assert clamped == exact


def test_knn_is_scale_invariant_and_stable_at_tiny_temperature():
  x, y = _clusters(30, 3, 8, spread=0.6, seed=4)
  train_x, train_y, test_x, test_y = x[:60], y[:60], x[60:], y[60:]
  base = weighted_knn_accuracy(train_x, train_y, test_x, test_y, num_classes=3, k=10)
  scaled = weighted_knn_accuracy(100 * train_x, train_y, 0.01 * test_x, test_y, num_classes=3, k=10)
  assert base == scaled
  # exp(sim / 1e-4) overflows float32 unless shifted; in the limit the nearest neighbour decides alone.
  cold = weighted_knn_accuracy(train_x, train_y, test_x, test_y, num_classes=3, k=10,
                               temperature=1e-4)
  nearest = weighted_knn_accuracy(train_x, train_y, test_x, test_y, num_classes=3, k=1)
  assert cold == nearest and nearest != base


# ----------------------------------------------------------------------------- linear probe

# One train shape and one set of static arguments: the jitted training program compiles once.
_PROBE = dict(num_classes=4, epochs=30, batch_size=64)


def _linear_data(seed: int, *, random_labels: bool = False):
  """Four well-separated blobs in 10-D, then per-dimension scales (0.1 to 20) and offsets that only
  standardisation undoes. Split 200 train / 1000 test."""
  x, y = _clusters(300, 4, 10, spread=0.15, seed=seed)
  rng = np.random.default_rng(seed)
  scales, offsets = rng.uniform(0.1, 20.0, size=10), 50.0 * rng.normal(size=10)
  x = (x * scales + offsets).astype(np.float32)
  if random_labels:
    y = rng.integers(0, 4, 1200)
  return x[:200], y[:200], x[200:], y[200:]


def test_linear_probe_separable_data():
  assert linear_probe_accuracy(*_linear_data(0), **_PROBE) >= 0.95


def test_linear_probe_random_labels_are_at_chance():
  accuracy = linear_probe_accuracy(*_linear_data(1, random_labels=True), **_PROBE)
  assert abs(accuracy - 0.25) < 0.06  # 4 binomial standard deviations at n = 1000


def test_linear_probe_is_deterministic_in_seed():
  data = _linear_data(2, random_labels=True)  # a noisy fit, where the minibatch order shows
  runs = [linear_probe_accuracy(*data, seed=s, **_PROBE) for s in (5, 5, 6, 7)]
  assert runs[0] == runs[1]
  assert len(set(runs[1:])) > 1


def test_linear_probe_ignores_unlabeled_train_items():
  train_x, train_y, test_x, test_y = _linear_data(3)
  rng = np.random.default_rng(3)
  # Unlabeled items far off the data would shift the standardisation if they were used.
  junk = rng.normal(size=(37, 10)).astype(np.float32) * 1000.0
  mixed_x = np.concatenate([junk[:20], train_x, junk[20:]])
  mixed_y = np.concatenate([np.full(20, -1), train_y, np.full(17, -5)])
  assert (linear_probe_accuracy(mixed_x, mixed_y, test_x, test_y, **_PROBE)
          == linear_probe_accuracy(train_x, train_y, test_x, test_y, **_PROBE))


# ----------------------------------------------------------------------------- validation


def _valid_inputs():
  rng = np.random.default_rng(0)
  return dict(train_features=rng.normal(size=(12, 3)), train_labels=rng.integers(0, 3, 12),
              test_features=rng.normal(size=(5, 3)), test_labels=rng.integers(0, 3, 5), num_classes=3)


_COMMON_BAD = [
    (dict(num_classes=1), "num_classes"),
    (dict(train_features=np.zeros((12, 3, 1))), "train_features"),
    (dict(test_features=np.zeros(5)), "test_features"),
    (dict(test_features=np.zeros((5, 4))), "test_features"),
    (dict(train_features=np.array([[np.nan, 0, 0]] * 12)), "train_features"),
    (dict(train_labels=np.zeros(11, int)), "train_labels"),
    (dict(train_labels=np.zeros((12, 1), int)), "train_labels"),
    (dict(train_labels=np.full(12, 0.5)), "train_labels"),
    (dict(train_labels=np.full(12, 3)), "train_labels"),
    (dict(train_labels=np.full(12, -1)), "train_labels"),
    (dict(test_labels=np.zeros(6, int)), "test_labels"),
    (dict(test_labels=np.full(5, -1)), "test_labels"),
]


@pytest.mark.parametrize("override, match", _COMMON_BAD + [
    (dict(k=0), "k"), (dict(temperature=0.0), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(chunk_size=0), "chunk_size"),
])
def test_knn_rejects_bad_input(override, match):
  with pytest.raises(ValueError, match=match):
    weighted_knn_accuracy(**{**_valid_inputs(), **override})


@pytest.mark.parametrize("override, match", _COMMON_BAD + [
    (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"),
    (dict(learning_rate=0.0), "learning_rate"), (dict(weight_decay=-1e-3), "weight_decay"),
    (dict(seed=-1), "seed"),
])
def test_linear_probe_rejects_bad_input(override, match):
  with pytest.raises(ValueError, match=match):
    linear_probe_accuracy(**{**_valid_inputs(), **override})
