"""Graph-classification protocol of GraphCL (You et al. 2020): RBF SVM on FROZEN graph embeddings.

Follows ``svc_classify(x, y, search=True)`` of Shen-Lab/GraphCL (unsupervised_TU/
evaluate_embedding.py): stratified 10-fold cross-validation; inside each training fold,
``GridSearchCV`` picks the SVC's C by 5-fold (stratified) accuracy and refits on the whole training
fold, which is then scored on the held-out fold. GraphCL reports mean ± std in percent; we return
fractions in [0, 1], like the other evaluators. Features are used as they are: GraphCL does no
scaling, and standardising would change the RBF kernel's distances (``gamma="scale"``) and so the
numbers, so we do not standardise either.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

from prosampler_jax import _checks

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
# The inner cross-validation that picks C on each outer training fold (GraphCL's evaluation).
INNER_FOLDS = 5


def _check_sequence(name: str, value, check) -> tuple:
  """A non-empty tuple of ``check(f"{name}[i]", item)``; strings and scalars are rejected."""
  if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
    raise ValueError(f"{name} must be a non-empty sequence, got {value!r}.")
  return tuple(check(f"{name}[{i}]", item) for i, item in enumerate(value))


def check_labels(labels, *, num_items: int, num_folds: int,
                 inner_folds: int = INNER_FOLDS) -> np.ndarray:
  """Integer labels ``[num_items]`` (>= 0), >= 2 classes, each large enough for both CV levels: what
  ``svm_accuracy`` needs, checkable before training (a task checks its config's fold count with it)."""
  y = np.asarray(labels)
  if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"labels must be a rank-1 integer array [N], got shape {y.shape} "
                     f"({y.dtype}).")
  if y.shape[0] != num_items:
    raise ValueError(f"labels has {y.shape[0]} entries but the features have {num_items} rows; "
                     f"allowed: exactly {num_items}.")
  if (y < 0).any():  # elsewhere in the repo label < 0 means "unlabeled"; never silently a class
    raise ValueError(f"labels has {int((y < 0).sum())} negative value(s); allowed: labels >= 0 "
                     "(every graph must be labeled; drop unlabeled graphs first).")
  classes, counts = np.unique(y, return_counts=True)
  if classes.size < 2:
    raise ValueError(f"labels has {classes.size} class(es) {classes.tolist()}; "
                     "allowed: at least 2.")
  for cls, count in zip(classes.tolist(), counts.tolist()):
    if count < num_folds:
      raise ValueError(f"labels: class {cls} has {count} member(s) but num_folds={num_folds} "
                       f"stratified folds need at least {num_folds}; use num_folds <= {count}.")
    # StratifiedKFold puts at most ceil(count / num_folds) items of a class in one test fold.
    train_count = count - -(-count // num_folds)
    if train_count < inner_folds:
      raise ValueError(f"labels: class {cls} has {count} member(s), so a training fold may hold "
                       f"only {train_count} of them, fewer than inner_folds={inner_folds}; "
                       f"allowed: inner_folds <= {train_count} (or more members per class).")
  return y


def svm_accuracy(features, labels, *, seeds=(0,), num_folds: int = 10, inner_folds: int = INNER_FOLDS,
                 c_grid=C_GRID, n_jobs: int | None = None) -> dict[str, float]:
  """Stratified k-fold accuracy of a C-searched RBF SVC on frozen graph embeddings ``[G, D]``.

  Each seed shuffles the outer folds (``StratifiedKFold(num_folds, shuffle=True,
  random_state=seed)``); the inner ``GridSearchCV(SVC(), {"C": c_grid}, cv=inner_folds,
  scoring="accuracy")`` is unshuffled, as in GraphCL. Returns ``svm_acc`` (mean over seeds of the
  mean fold accuracy), ``svm_acc_std`` (population std of those per-seed means; 0 for one seed) and
  ``svm_fold_std`` (mean over seeds of the std across folds). Deterministic in its inputs;
  ``n_jobs`` is passed to ``GridSearchCV`` and does not change the result.
  """
  num_folds = _checks.check_int("num_folds", num_folds, low=2)
  inner_folds = _checks.check_int("inner_folds", inner_folds, low=2)
  seeds = _check_sequence("seeds", seeds, lambda n, v: _checks.check_int(n, v, low=0))
  c_grid = _check_sequence("c_grid", c_grid,
                           lambda n, v: _checks.check_float(n, v, low=0.0, low_open=True))
  if n_jobs is not None and _checks.check_int("n_jobs", n_jobs, low=-1) == 0:
    raise ValueError("n_jobs=0 is not supported; allowed: None, -1 or a positive integer.")
  _checks.check_embeddings("features", features)  # validation only: it returns a float32 copy
  x = np.asarray(features).astype(np.float64)  # what SVC computes in; float64 inputs stay exact
  y = check_labels(labels, num_items=x.shape[0], num_folds=num_folds, inner_folds=inner_folds)

  seed_means, seed_stds = [], []
  for seed in seeds:
    folds = StratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    accuracies = []
    for train_index, test_index in folds.split(x, y):
      search = GridSearchCV(SVC(), {"C": list(c_grid)}, cv=inner_folds, scoring="accuracy",
                            n_jobs=n_jobs)
      search.fit(x[train_index], y[train_index])
      accuracies.append(float(np.mean(search.predict(x[test_index]) == y[test_index])))
    seed_means.append(np.mean(accuracies))
    seed_stds.append(np.std(accuracies))
  return {"svm_acc": float(np.mean(seed_means)), "svm_acc_std": float(np.std(seed_means)),
          "svm_fold_std": float(np.mean(seed_stds))}
