"""Tests for prosampler_jax.evaluation.svm: GraphCL's C-searched SVC under stratified k-fold CV."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

from prosampler_jax.evaluation.svm import C_GRID
from prosampler_jax.evaluation.svm import svm_accuracy


def _blobs(num_per_class, *, dim: int, separation: float, seed: int):
  """Gaussian blobs whose means differ by ``separation`` along the first axis (shuffled)."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(len(num_per_class)), num_per_class)
  features = rng.normal(size=(labels.size, dim))
  features[:, 0] += separation * labels
  order = rng.permutation(labels.size)
  return features[order].astype(np.float32), labels[order]


def _digits(first: int, second: int):
  """The 8×8 digits of two classes (float64 pixel counts, unscaled like GraphCL embeddings)."""
  digits = load_digits()
  keep = np.isin(digits.target, [first, second])
  return digits.data[keep], digits.target[keep]


def _reference(features, labels, *, seed: int, c_grid=C_GRID, search: bool = True):
  """GraphCL's svc_classify written out with sklearn: (mean, std) of the per-fold accuracies."""
  folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=seed)
  accuracies = []
  for train, test in folds.split(features, labels):
    if search:
      model = GridSearchCV(SVC(), {"C": list(c_grid)}, cv=5, scoring="accuracy")
    else:
      model = SVC(C=1.0)
    model.fit(features[train], labels[train])
    accuracies.append(np.mean(model.predict(features[test]) == labels[test]))
  return np.mean(accuracies), np.std(accuracies)


# A noisy, unbalanced problem: tiny C collapses to the majority class (2/3), the search does not.
_NOISY = dict(num_per_class=(40, 20), dim=5, separation=1.5, seed=0)


def test_separable_problem_is_solved_and_random_labels_are_at_chance():
  features, labels = _blobs((30, 30), dim=5, separation=6.0, seed=1)
  result = svm_accuracy(features, labels)
  assert set(result) == {"svm_acc", "svm_acc_std", "svm_fold_std"}
  assert result["svm_acc"] >= 0.95
  assert result["svm_acc_std"] == 0.0  # one seed

  rng = np.random.default_rng(2)
  noise = rng.normal(size=(60, 5)).astype(np.float32)
  random_labels = rng.permutation(np.repeat([0, 1], 30))
  chance = svm_accuracy(noise, random_labels, seeds=(0, 1))
  assert 0.2 <= chance["svm_acc"] <= 0.8


def test_real_digits_pair_is_separable():
  features, labels = _digits(3, 8)
  assert svm_accuracy(features, labels)["svm_acc"] >= 0.95


@pytest.mark.parametrize("case", ["noisy_blobs", "digits"])
def test_matches_direct_sklearn_computation_exactly(case):
  if case == "digits":
    features, labels = _digits(1, 7)
    features, labels = features[::3], labels[::3]  # 121 digits keep the test fast
    seed = 3
  else:
    features, labels = _blobs(**_NOISY)
    seed = 5
  mean, fold_std = _reference(features, labels, seed=seed)
  result = svm_accuracy(features, labels, seeds=(seed,))
  assert result["svm_acc"] == mean
  assert result["svm_fold_std"] == fold_std
  assert result["svm_acc_std"] == 0.0


def test_reference_comparison_can_tell_search_from_fixed_c():
  # Guards the exact comparison above: on this data a fixed C gives a different number, so dropping
  # the inner search would not go unnoticed.
  features, labels = _blobs(**_NOISY)
  searched, _ = _reference(features, labels, seed=5)
  fixed, _ = _reference(features, labels, seed=5, search=False)
  assert searched != fixed


def test_deterministic_and_seeds_change_the_folds():
  features, labels = _blobs(**_NOISY)
  per_seed = [svm_accuracy(features, labels, seeds=(s,)) for s in (0, 1, 2)]
  assert svm_accuracy(features, labels, seeds=(0,)) == per_seed[0]
  combined = svm_accuracy(features, labels, seeds=(0, 1, 2))
  assert combined["svm_acc_std"] > 0.0  # different seeds → different fold splits → different means
  means = [r["svm_acc"] for r in per_seed]
  assert len(set(means)) > 1
  assert combined["svm_acc"] == pytest.approx(np.mean(means), abs=1e-12)
  assert combined["svm_acc_std"] == pytest.approx(np.std(means), abs=1e-12)  # population std
  assert combined["svm_fold_std"] == pytest.approx(
      np.mean([r["svm_fold_std"] for r in per_seed]), abs=1e-12)


def test_inner_search_picks_c():
  features, labels = _blobs(**_NOISY)
  full = svm_accuracy(features, labels)["svm_acc"]
  tiny = svm_accuracy(features, labels, c_grid=(1e-3,))["svm_acc"]
  assert tiny == pytest.approx(40 / 60)  # underfits: always the majority class
  assert full >= tiny + 0.1
  # A grid holding the bad value and a good one must find the good one in every fold.
  assert svm_accuracy(features, labels, c_grid=(1e-3, 10.0)) == \
      svm_accuracy(features, labels, c_grid=(10.0,))
  mean, _ = _reference(features, labels, seed=0, c_grid=(1e-3, 1.0, 1000.0))
  assert svm_accuracy(features, labels, c_grid=(1e-3, 1.0, 1000.0))["svm_acc"] == mean


def test_features_are_not_standardised():
  # Column offsets inflate the global variance that SVC's gamma="scale" divides by, so raw and
  # standardised features give different accuracies; the module must match raw ones (as GraphCL).
  features, labels = _blobs(**_NOISY)
  shifted = features + np.float32(50.0) * np.arange(features.shape[1], dtype=np.float32)
  raw, _ = _reference(shifted, labels, seed=0)
  standardised, _ = _reference((shifted - shifted.mean(0)) / shifted.std(0), labels, seed=0)
  assert raw != standardised  # guard: the data can tell the two apart
  assert svm_accuracy(shifted, labels)["svm_acc"] == raw


_GOOD_X, _GOOD_Y = _blobs((12, 12), dim=3, separation=3.0, seed=0)


@pytest.mark.parametrize("features, labels, kwargs, match", [
    (_GOOD_X, _GOOD_Y[:-1], {}, r"labels has 23 entries .* allowed: exactly 24"),
    (_GOOD_X, np.zeros(24, np.int64), {}, r"labels has 1 class.*allowed: at least 2"),
    (_GOOD_X, np.r_[np.zeros(18, np.int64), np.ones(6, np.int64)], {},
     r"class 1 has 6 member\(s\).*num_folds=10.*use num_folds <= 6"),
    (_GOOD_X, _GOOD_Y, {"num_folds": 4, "inner_folds": 10},
     r"class 0 has 12 member\(s\).*inner_folds=10; allowed: inner_folds <= 9"),
    (np.where(np.arange(24)[:, None] == 3, np.nan, _GOOD_X), _GOOD_Y, {},
     r"features has 1 non-finite row.*allowed: finite"),
    (_GOOD_X[:, :0], _GOOD_Y, {}, r"features must have .* D >= 1 columns"),
    (_GOOD_X[:, 0], _GOOD_Y, {}, r"features must have rank 2"),
    (_GOOD_X.astype(np.int32), _GOOD_Y, {}, r"features must have a floating dtype"),
    (_GOOD_X, _GOOD_Y.astype(np.float32), {}, r"labels must be a rank-1 integer array"),
    (_GOOD_X, _GOOD_Y - 1, {}, r"negative value.*allowed: labels >= 0"),
    (_GOOD_X, _GOOD_Y, {"num_folds": 1}, r"num_folds=1 is out of range; allowed: \[2, inf\]"),
    (_GOOD_X, _GOOD_Y, {"inner_folds": 1}, r"inner_folds=1 is out of range; allowed: \[2, inf\]"),
    (_GOOD_X, _GOOD_Y, {"seeds": ()}, r"seeds must be a non-empty sequence"),
    (_GOOD_X, _GOOD_Y, {"seeds": 0}, r"seeds must be a non-empty sequence"),
    (_GOOD_X, _GOOD_Y, {"seeds": (0, -1)}, r"seeds\[1\]=-1 is out of range; allowed: \[0, inf\]"),
    (_GOOD_X, _GOOD_Y, {"seeds": (0.5,)}, r"seeds\[0\] must be an integer"),
    (_GOOD_X, _GOOD_Y, {"c_grid": []}, r"c_grid must be a non-empty sequence"),
    (_GOOD_X, _GOOD_Y, {"c_grid": (1.0, 0.0)},
     r"c_grid\[1\]=0 is out of range; allowed: \(0, inf\]"),
    (_GOOD_X, _GOOD_Y, {"n_jobs": 0}, r"n_jobs=0 is not supported"),
])
def test_rejects_bad_inputs(features, labels, kwargs, match):
  with pytest.raises(ValueError, match=match):
    svm_accuracy(features, labels, **kwargs)
