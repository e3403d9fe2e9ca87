"""The sampler-view benchmark: the float32 rows are its own reference, and a view that keeps less of each
row (its first half) loses neighbours in proportion to how different the two views are."""

import numpy as np

from experiments.bench import sampler_view


def test_the_rows_are_the_reference_and_a_dissimilar_second_view_costs_neighbours():
  rng = np.random.default_rng(0)
  z1 = rng.normal(size=(300, 16)).astype(np.float32)
  same = sampler_view.compare(z1, z1.copy(), num_neighbors=10, num_candidates=50, batch_size=16, seeds=1)
  assert same["float32_rows"]["knn_overlap"] == 1.0 and same["views_cosine"] > 0.999
  assert same["float32_first_view"]["knn_overlap"] > 0.95  # identical views: the half is the row
  other = sampler_view.compare(z1, rng.normal(size=(300, 16)).astype(np.float32), num_neighbors=10,
                               num_candidates=50, batch_size=16, seeds=1)
  assert other["float32_first_view"]["knn_overlap"] < 0.8  # unrelated views: the half is not the row
  for report in (same, other):
    assert report["float32_rows"]["mean_neg_cos"] > report["uniform"]["mean_neg_cos"]
    assert set(report) >= {"bfloat16_rows", "bfloat16_first_view", "uniform", "n"}
