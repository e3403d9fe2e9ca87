"""Tests for prosampler_jax.graph: the proximity graph (M candidates → top K by cosine)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import diagnostics
from prosampler_jax import graph
from prosampler_jax import neighbors
from prosampler_jax.normalize import l2_normalize

N, D, CLUSTERS, K = 600, 16, 8, 10


@pytest.fixture(scope="module")
def clustered():
  """8 well-separated Gaussian clusters: (embeddings [N, D] float32, labels [N])."""
  rng = np.random.default_rng(0)
  centers = rng.standard_normal((CLUSTERS, D)) * 6.0
  labels = rng.integers(0, CLUSTERS, N)
  x = centers[labels] + rng.standard_normal((N, D))
  return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def cosine(clustered):
  """Brute-force float64 cosine matrix with -inf on the diagonal."""
  x = clustered[0].astype(np.float64)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  sims = x @ x.T
  np.fill_diagonal(sims, -np.inf)
  return sims


@pytest.fixture(scope="module")
def exact(clustered):
  return graph.build_proximity_graph(clustered[0], num_neighbors=K, backend="exact")


def _check_rows(g, k, sims):
  """Shape, dtype, range, no self, no duplicates, by decreasing cosine (``sims``: [rows, N])."""
  rows, n = sims.shape
  assert g.shape == (rows, k) and g.dtype == np.int32
  assert ((g >= 0) & (g < n)).all()
  assert not (g == np.arange(rows)[:, None]).any()
  assert (np.sort(g, axis=1)[:, 1:] != np.sort(g, axis=1)[:, :-1]).all()
  row_sims = np.take_along_axis(sims, g, axis=1)
  assert (np.diff(row_sims, axis=1) <= 1e-6).all()


def _assert_same_up_to_ties(g, reference, sims):
  """Equal rows, except near-ties (|Δcos| < 1e-6, float32 vs float64 rounding) may swap."""
  np.testing.assert_allclose(np.take_along_axis(sims, g, axis=1),
                             np.take_along_axis(sims, reference, axis=1), atol=1e-6)
  assert (g == reference).mean() > 0.99


def _same_cluster_rate(g, labels):
  return float((labels[g] == labels[:, None]).mean())


def test_exact_equals_brute_force(exact, cosine):
  reference = np.argsort(-cosine, axis=1, kind="stable")[:, :K]
  _assert_same_up_to_ties(exact, reference, cosine)
  _check_rows(exact, K, cosine)


def test_exact_with_several_column_blocks(clustered, exact, monkeypatch):
  monkeypatch.setattr(neighbors, "EXACT_MAX_COLS", 128)  # 600 columns → 5 blocks, running top-k merge.
  monkeypatch.setattr(neighbors, "EXACT_ROWS", 100)
  np.testing.assert_array_equal(
      graph.build_proximity_graph(clustered[0], num_neighbors=K, backend="exact"), exact)


@pytest.mark.parametrize("num_candidates", [N - 1, N + 50])
def test_candidates_with_all_items_is_exact(clustered, exact, num_candidates):
  g = graph.build_proximity_graph(clustered[0], num_neighbors=K, num_candidates=num_candidates,
                                  backend="candidates")
  np.testing.assert_array_equal(g, exact)


def test_auto_small_knn_is_exact(clustered, exact):
  np.testing.assert_array_equal(graph.build_proximity_graph(clustered[0], num_neighbors=K), exact)


def test_candidates_hardness_grows_with_m(clustered, cosine):
  x, labels = clustered
  rates = {}
  for m in (K, 40, 200):  # M = 200: groups of 12 rows share one draw of 201 items.
    g = graph.build_proximity_graph(x, num_neighbors=K, num_candidates=m, backend="candidates",
                                    seed=1)
    _check_rows(g, K, cosine)
    rates[m] = _same_cluster_rate(g, labels)
  # M = K keeps every candidate: a random graph, same-cluster rate ≈ 1/8.
  assert abs(rates[K] - 1 / CLUSTERS) < 0.04
  assert rates[K] < rates[40] < rates[200]
  assert rates[200] > 0.97


def test_candidates_are_uniform_over_other_items(clustered):
  """With M = K every candidate is kept: row offsets (j − i) mod N are uniform on 1..N−1."""
  x = clustered[0]
  offsets = []
  for seed in range(3):
    g = graph.build_proximity_graph(x, num_neighbors=K, num_candidates=K, backend="candidates",
                                    seed=seed)
    offsets.append(((g - np.arange(N)[:, None]) % N).ravel())
  counts = np.bincount(np.concatenate(offsets), minlength=N)
  assert counts[0] == 0
  expected = 3 * N * K / (N - 1)
  chi2 = ((counts[1:] - expected) ** 2 / expected).sum()
  assert chi2 / (N - 2) < 1.3  # ≈ 1 ± 0.06 for uniform draws.
  # Every item is someone's candidate (P(in-degree 0) = (1 − K/(N−1))^(N−1) ≈ e^−10 per item).
  assert (np.bincount(g.ravel(), minlength=N) == 0).sum() <= 3


def test_short_draw_falls_back_to_permutation(clustered, cosine):
  """Exactly M + 1 draws of N = 600 almost surely repeat an item: the chunk redraws by permutation.
  """
  m1, groups, group = 101, 8, 4
  draws = jax.random.randint(jax.random.key(0), (groups, m1), 0, N, dtype=jnp.int32)
  _, keep, _, ok = graph._draw_oversampled(draws, N, m1)
  assert not np.asarray(ok).any() and (np.asarray(keep).sum(axis=1) < m1).all()
  emb = jnp.asarray(l2_normalize(clustered[0]))
  rows = jnp.arange(groups * group, dtype=jnp.int32).reshape(groups, group)
  g = np.asarray(graph._shared_draw_chunk(emb, rows, jax.random.key(1), num_neighbors=K, num_draw=m1,
                                          length=m1)).reshape(-1, K)
  _check_rows(g, K, cosine[:groups * group])


def test_draw_keeps_first_distinct_items_in_draw_order():
  draws = jnp.array([[3, 1, 3, 2, 1, 4], [5, 5, 5, 5, 0, 5]], jnp.int32)
  _, keep, last, ok = graph._draw_oversampled(draws, 6, 3)
  np.testing.assert_array_equal(keep, [[1, 1, 0, 1, 0, 0], [1, 0, 0, 0, 1, 0]])
  np.testing.assert_array_equal(last, [[0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(ok, [True, False])


def test_candidates_all_but_one_uses_a_permutation(clustered, exact, cosine):
  """M = N − 2 (a permutation prefix per group): each row misses one random item, so ≈ exact."""
  assert graph._oversample_length(N, N - 1) == N
  g = graph.build_proximity_graph(clustered[0], num_neighbors=K, num_candidates=N - 2,
                                  backend="candidates")
  _check_rows(g, K, cosine)
  # A row differs iff its one missing item is in its top K: probability K / (N − 1) ≈ 1.7%.
  assert (g == exact).all(axis=1).mean() > 0.95


def test_oversample_length():
  assert graph._oversample_length(100_000, 1001) > 1001
  assert graph._oversample_length(100_000, 1001) < 1100
  assert graph._oversample_length(1000, 900) == 1000  # Permutation is cheaper.


def test_candidates_deterministic_in_seed(clustered):
  x = clustered[0]
  a = graph.build_proximity_graph(x, num_neighbors=K, num_candidates=40, backend="candidates",
                                  seed=3)
  b = graph.build_proximity_graph(x, num_neighbors=K, num_candidates=40, backend="candidates",
                                  seed=3)
  c = graph.build_proximity_graph(x, num_neighbors=K, num_candidates=40, backend="candidates",
                                  seed=4)
  np.testing.assert_array_equal(a, b)
  assert (a != c).any()


def test_rows_of_zero_and_duplicate_vectors_are_valid(clustered):
  x = clustered[0].copy()
  x[:50] = 0.0  # Zero vectors: cosine 0 to everything.
  x[50:100] = x[100]  # Exact duplicates: ties.
  for backend, m in (("exact", None), ("candidates", K)):
    g = graph.build_proximity_graph(x, num_neighbors=K, num_candidates=m, backend=backend)
    assert not (g == np.arange(N)[:, None]).any()
    assert all(len(set(row)) == K for row in g)


@pytest.mark.slow
def test_nndescent_recall(clustered):
  rng = np.random.default_rng(1)
  centers = rng.standard_normal((CLUSTERS, D)) * 6.0
  x = (centers[rng.integers(0, CLUSTERS, 1000)] + rng.standard_normal((1000, D))).astype(np.float32)
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  sims = xn.astype(np.float64) @ xn.T.astype(np.float64)
  np.fill_diagonal(sims, -np.inf)
  approx = graph.build_proximity_graph(x, num_neighbors=K, backend="nndescent", seed=0)
  _check_rows(approx, K, sims)
  exact = graph.build_proximity_graph(x, num_neighbors=K, backend="exact")
  recall = np.mean([len(set(a) & set(e)) / K for a, e in zip(approx, exact)])
  assert recall >= 0.95


def test_first_k_valid_drops_self_duplicates_and_missing():
  ids = np.array([[0, 1, 2, 3],    # self first → [1, 2, 3]
                  [0, 2, 3, 4],    # self absent → drop last → [0, 2, 3]
                  [3, 3, 2, -1],   # duplicate and missing → incomplete
                  [4, 2, 3, 1],
                  [0, 1, 4, 2]])
  g, complete = graph._first_k_valid(ids, 3)
  np.testing.assert_array_equal(g[:2], [[1, 2, 3], [0, 2, 3]])
  np.testing.assert_array_equal(complete, [True, True, False, True, True])
  np.testing.assert_array_equal(g[4], [0, 1, 2])


@pytest.mark.parametrize("kwargs, match", [
    ({"num_neighbors": 0}, "num_neighbors"),
    ({"num_neighbors": N}, "num_neighbors"),
    ({"num_neighbors": 2.5}, "num_neighbors"),
    ({"num_neighbors": K, "num_candidates": K - 1}, "num_candidates"),
    ({"num_neighbors": K, "num_candidates": 50, "backend": "exact"}, "num_candidates"),
    ({"num_neighbors": K, "num_candidates": 50, "backend": "nndescent"}, "num_candidates"),
    ({"num_neighbors": K, "backend": "faiss"}, "backend"),
    ({"num_neighbors": K, "seed": -1}, "seed"),
    ({"num_neighbors": K, "num_candidates": 50, "candidate_draw": "grouped"}, "candidate_draw"),
])
def test_bad_arguments(clustered, kwargs, match):
  with pytest.raises(ValueError, match=match):
    graph.build_proximity_graph(clustered[0], **kwargs)


@pytest.mark.parametrize("embeddings", [
    np.zeros((10,), np.float32),                          # rank 1
    np.zeros((1, 4), np.float32),                         # N < 2
    np.arange(40).reshape(10, 4),                         # integer dtype
    np.where(np.eye(10, 4) > 0, np.nan, 1.0).astype(np.float32),  # non-finite
])
def test_bad_embeddings(embeddings):
  with pytest.raises(ValueError, match="embeddings"):
    graph.build_proximity_graph(embeddings, num_neighbors=1)
  with pytest.raises(ValueError, match="embeddings"):  # the same checks for a bank on a device
    graph.proximity_graph(jnp.asarray(embeddings), num_neighbors=1)


def test_per_row_draws_are_independent_and_shared_draws_are_not():
  # M = K: the graph is the candidate draw itself, so its statistics are those of the draws. Rows that
  # draw independently give Binomial in-degrees and (practically) no two identical rows; rows sharing
  # a draw (the opt-in) give groups of identical rows and a wider in-degree spread.
  n, k = 5000, 100  # shared: groups of (K + 1) // 16 = 6 rows per draw
  x = np.random.default_rng(1).standard_normal((n, 8)).astype(np.float32)
  per_row = graph.build_proximity_graph(x, num_neighbors=k, num_candidates=k, seed=2)
  shared = graph.build_proximity_graph(x, num_neighbors=k, num_candidates=k, seed=2,
                                       candidate_draw="shared")
  _check_rows(per_row, k, np.zeros((n, n)))
  per_row, shared = diagnostics.graph_stats(per_row), diagnostics.graph_stats(shared)
  assert per_row["identical_row_pairs"] == 0
  assert abs(per_row["in_degree_variance_ratio"] - 1.0) < 0.1  # ≈ 1 ± 0.02
  assert shared["identical_row_pairs"] > 100
  assert shared["in_degree_variance_ratio"] > 1.1


def test_per_row_draw_depends_on_the_row_not_on_the_chunking(clustered, monkeypatch):
  x = clustered[0]
  build = lambda: graph.build_proximity_graph(x, num_neighbors=K, num_candidates=40, seed=5)
  a = build()
  monkeypatch.setattr(graph, "_CHUNK_BYTES_CPU", 4 * 41 * (D + 4) * 7)  # 7 rows per chunk
  np.testing.assert_array_equal(build(), a)


def test_per_row_short_draw_falls_back_to_a_permutation_for_that_row(clustered, cosine):
  # length = M draws from N − 1 = 599 almost surely repeat an item: every row takes the fallback.
  emb = jnp.asarray(l2_normalize(clustered[0]))
  g = np.asarray(graph._per_row_chunks(emb, jax.random.key(1), num_neighbors=K, num_draw=100,
                                       length=100, chunk=64, num_chunks=-(-N // 64)))[:N]
  _check_rows(g, K, cosine)


def test_a_device_bank_gives_the_host_bank_graph_and_stays_on_the_device(clustered):
  x = clustered[0]
  for m in (40, None):
    on_device = graph.proximity_graph(jnp.asarray(x), num_neighbors=K, num_candidates=m, seed=1)
    assert isinstance(on_device, jax.Array)
    np.testing.assert_array_equal(
        np.asarray(on_device), graph.build_proximity_graph(x, num_neighbors=K, num_candidates=m,
                                                           seed=1))
