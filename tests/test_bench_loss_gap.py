"""The loss-gap benchmark measures what it says on small inputs: exact gaps, subset errors that shrink
with more anchors, and the trainer's budget."""

from __future__ import annotations

import pytest

from experiments.bench import loss_gap as bench
from prosampler_jax import diagnostics


def test_subset_errors_shrink_with_more_anchors_and_tbs_has_the_smaller_gap():
  report = bench.exact_and_subsets(2000, 32, 8, anchors=[8, 128, 256], repeats=6, dim=8,
                                   temperature=0.1, seed=0)
  assert report["tail_over_uniform_gap"] < 1.0  # TBS puts similar items together: a smaller gap
  for name in ("uniform", "tail"):
    errors = report["subset_error"][name]
    assert errors["8"]["mean_abs_relative_error"] > errors["128"]["mean_abs_relative_error"]
    assert errors["256"]["mean_abs_relative_error"] == pytest.approx(0.0, abs=1e-6)  # every slot
    assert report["exact"][name]["seconds"] > 0


def test_budget_scores_the_trainers_anchor_count(monkeypatch):
  monkeypatch.setattr(diagnostics, "REFRESH_GAP_SCORES", 30_000)
  rows = bench.budget([1000, 3000], 16, 4, dim=4, temperature=0.1, seed=0)
  assert [(r["n"], r["anchors"]) for r in rows] == [(1000, 30), (3000, 10)]
