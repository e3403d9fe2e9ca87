"""Tests for Tail Batch Sampling (prosampler_jax.samplers.tail): one order per epoch, bounded tail edges,
no compilation after the first epoch, bounded device buffers, and the kNN backend's recall."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_events
import sampler_data
from prosampler_jax import neighbors
from prosampler_jax import samplers
from prosampler_jax.normalize import l2_normalize
from prosampler_jax.samplers import tail as tail_lib

N, B = 2000, 32


@pytest.fixture(scope="module")
def clusters():
  return sampler_data.planted_clusters()


def _windows(sampler, epoch, banks, num_batches):
  """The windows of one epoch as the trainer asks for them: window w sees ``banks[w]``."""
  return [sampler.sample(epoch, bank, num_batches=num_batches, window=w) for w, bank in enumerate(banks)]


# ------------------------------------------------------------------ one order per epoch


def test_tail_epoch_is_a_permutation(clusters):
  x, _ = clusters
  batches = samplers.TailSampler(N, B, seed=1).sample(3, x)
  assert np.unique(batches).size == batches.size == (N // B) * B


def test_later_windows_continue_the_first_windows_order(clusters):
  # Later windows see other banks, but hand out the next rows of the order made at window 0: together
  # they are exactly the whole-epoch call on window 0's bank, and no later bank is ever ordered.
  x, labels = clusters
  noise = [np.random.default_rng(w).normal(size=x.shape).astype(np.float32) for w in range(1, 3)]
  windowed = samplers.TailSampler(N, B, seed=1)
  windows = _windows(windowed, 2, [x, *noise], num_batches=25)
  epoch = np.concatenate([windows[0], windows[1], windows[2][:12]])  # 62 = N // B steps
  np.testing.assert_array_equal(epoch, samplers.TailSampler(N, B, seed=1).sample(2, x))
  assert sampler_data.same_label_rate(epoch, labels) > 0.5  # the noise banks would give ≈ 1/20
  assert windowed.window_info() == {"order_window": 0.0, "order_age_windows": 2.0}


def test_the_order_is_remade_at_every_epochs_first_window(clusters):
  x, _ = clusters
  sampler = samplers.TailSampler(N, B, seed=1)
  first = _windows(sampler, 0, [x, x], num_batches=25)
  second = _windows(sampler, 1, [x, x], num_batches=25)
  assert not np.array_equal(first[0], second[0])
  np.testing.assert_array_equal(second[0], samplers.TailSampler(N, B, seed=1).sample(1, x)[:25])


def test_a_resumed_sampler_continues_the_order_from_its_state(clusters):
  x, _ = clusters
  other = np.random.default_rng(5).normal(size=x.shape).astype(np.float32)
  running = samplers.TailSampler(N, B, seed=6)
  running.sample(1, x, num_batches=20, window=0)
  state = running.state_dict()
  expected = running.sample(1, other, num_batches=20, window=1)
  resumed = samplers.TailSampler(N, B, seed=6)
  resumed.load_state_dict(state)
  np.testing.assert_array_equal(resumed.sample(1, other, num_batches=20, window=1), expected)
  # A state without the order (an older checkpoint) orders the uncovered items from the bank it gets.
  del state["order"]
  legacy = samplers.TailSampler(N, B, seed=6)
  legacy.load_state_dict(state)
  rows = legacy.sample(1, x, num_batches=20, window=1)
  assert legacy.window_info()["order_window"] == 1.0
  assert not np.intersect1d(rows, state["covered"].nonzero()[0]).size


def test_tail_more_batches_than_an_epoch_repeats_the_epoch(clusters):
  x, _ = clusters
  batches = samplers.TailSampler(N, B).sample(0, x, num_batches=70)
  sampler_data.assert_valid(batches, N, 70, B)
  assert np.unique(batches[:62]).size == 62 * B


def test_tail_rows_past_the_order_are_uniform_not_a_reordering(clusters, monkeypatch):
  # The last window asks for more rows than the order has left: the rest is uniform, nothing is ordered.
  x, _ = clusters
  sampler = samplers.TailSampler(N, B, seed=2)
  whole = samplers.TailSampler(N, B, seed=2).sample(0, x)
  sampler.sample(0, x, num_batches=50, window=0)
  monkeypatch.setattr(samplers.TailSampler, "_cut", lambda *args: pytest.fail("re-ordered"))
  batches = sampler.sample(0, x, num_batches=50, window=1)
  sampler_data.assert_valid(batches, N, 50, B)
  np.testing.assert_array_equal(batches[:12], whole[50:])
  assert np.unique(batches[:12]).size == 12 * B


def test_tail_accepts_paired_views(clusters):
  x, labels = clusters
  rng = np.random.default_rng(9)
  y = x + 0.05 * rng.normal(size=x.shape).astype(np.float32)
  sampler = samplers.TailSampler(N, B, quantile=0.99)
  batches = sampler.sample(0, (x, y))
  sampler_data.assert_valid(batches, N, N // B, B)
  assert np.unique(batches).size == batches.size
  assert sampler_data.same_label_rate(batches, labels) > 0.5
  # The similarity is symmetrised: swapping the views gives the same batches.
  np.testing.assert_array_equal(batches, samplers.TailSampler(N, B, quantile=0.99).sample(0, (y, x)))


def test_tail_on_tiny_data_keeps_every_row_distinct():
  x = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
  for b in (2, 4, 9):
    batches = samplers.TailSampler(9, b).sample(0, x)
    sampler_data.assert_valid(batches, 9, 9 // b, b)
    assert np.unique(batches).size == batches.size


def test_tail_left_over_items_are_dropped_at_random(clusters):
  # N mod B = 16 items are left out of each epoch; over many epochs which ones must look uniform, not
  # the same outliers at the ends of the order every time.
  x, _ = clusters
  sampler = samplers.TailSampler(N, B, seed=0)
  dropped = np.zeros(N, int)
  epochs = 40
  for epoch in range(epochs):
    used = np.zeros(N, bool)
    used[sampler.sample(epoch, x).ravel()] = True
    dropped += ~used
  left_over = N - (N // B) * B
  assert dropped.sum() == epochs * left_over
  distinct = int((dropped > 0).sum())
  # Uniform: E[distinct] = N·(1 − (1 − r/N)^E) ≈ 2000·(1 − e^(−0.32)) ≈ 548; ends of the order: far fewer.
  assert distinct > 450, distinct
  assert dropped.max() <= 6, dropped.max()


# ------------------------------------------------------------------ the tail graph


def _dense_tail(queries, keys, threshold, k):
  """Reference: each row's k largest products above the threshold (self excluded), as a bool matrix,
  and the products; ties at the k-th value or the threshold are left to the caller."""
  sims = queries @ keys.T
  np.fill_diagonal(sims, -np.inf)
  kth = -np.sort(-sims, axis=1)[:, k - 1:k]
  return (sims > threshold) & (sims >= kth), sims, kth


@pytest.mark.parametrize("graph", ["exact", "knn"])
@pytest.mark.parametrize("paired,threshold,k", [(False, 0.3, 7), (True, 0.3, 7), (True, -2.0, 299)])
def test_tail_graph_matches_the_dense_graph(graph, paired, threshold, k):
  # Every row's k most similar items above the threshold, linked both ways; the kNN backend with every
  # item a candidate finds the same graph.
  rng = np.random.default_rng(0)
  x = l2_normalize(rng.normal(size=(300, 5)).astype(np.float32))
  y = l2_normalize(rng.normal(size=(300, 5)).astype(np.float32)) if paired else None
  queries, keys, points = tail_lib._pool_vectors(jnp.asarray(x), None if y is None else jnp.asarray(y),
                                                 jnp.arange(300))
  adjacency = tail_lib._tail_graph(queries, keys, points, threshold, k, graph, seed=0)
  kept, sims, kth = _dense_tail(np.asarray(queries), np.asarray(keys), threshold, k)
  np.testing.assert_allclose(sims, (x @ x.T if y is None else (x @ y.T + y @ x.T) / 2) - np.diag(
      np.full(300, np.inf)), atol=1e-6)
  # Pairs within float rounding of the threshold or of a row's k-th value may go either way.
  unsure = (np.abs(sims - threshold) < 1e-5) | (np.abs(sims - kth) < 1e-5)
  expected = kept | kept.T
  unsure = unsure | unsure.T
  graph_dense = adjacency.toarray() > 0
  assert np.array_equal(graph_dense[~unsure], expected[~unsure])
  assert np.array_equal(graph_dense, graph_dense.T)


@pytest.mark.parametrize("batch_size", [16, 128])
def test_kept_pairs_per_item_are_capped_in_every_window_whatever_b(clusters, monkeypatch, batch_size):
  # The default quantile keeps about B pairs per item; max_neighbors caps every item's own list, in every
  # epoch's ordering, so the graph's size no longer follows B (about 2·k stored entries per item).
  x, _ = clusters
  lists = []
  search = neighbors.exact_top_k
  def spy(*args, **kwargs):
    values, ids = search(*args, **kwargs)
    lists.append(ids)
    return values, ids

  monkeypatch.setattr(neighbors, "exact_top_k", spy)
  graphs = []
  symmetric = tail_lib.symmetric_graph
  monkeypatch.setattr(tail_lib, "symmetric_graph", lambda ids: graphs.append(symmetric(ids)) or graphs[-1])
  sampler = samplers.TailSampler(N, batch_size, max_neighbors=4, seed=0)
  for epoch in range(2):
    _windows(sampler, epoch, [x] * 3, num_batches=4)
  assert len(lists) == 2  # one ordering per epoch
  for ids in lists:
    per_item = (ids >= 0).sum(axis=1)
    assert per_item.max() <= 4
    assert per_item.mean() > 3.6, per_item.mean()  # the cap binds for B = 16 and B = 128 alike
  for graph in graphs:
    assert 3.6 <= graph.nnz / N <= 8


# ------------------------------------------------------------------ compilation and memory


@pytest.mark.parametrize("graph", ["exact", "knn"])
def test_no_compilation_after_the_first_epoch(clusters, monkeypatch, graph):
  # Every compilation JAX makes (not one function's cache) is counted over 4 epochs × 4 windows with a
  # new bank each window: the first epoch compiles, the later ones reuse every kernel.
  monkeypatch.setattr(neighbors, "CELL_ITEMS", 256)
  monkeypatch.setattr(neighbors, "CELL_CANDIDATES", 512)
  x, _ = clusters
  rng = np.random.default_rng(0)
  sampler = samplers.TailSampler(N, B, graph=graph, seed=3)
  jax.clear_caches()  # earlier tests compiled these shapes already
  per_epoch = []
  names, stop = jax_events.count_compilations()
  try:
    for epoch in range(4):
      start = len(names)
      banks = [jax.device_put(x + 0.01 * rng.normal(size=x.shape).astype(np.float32)) for _ in range(4)]
      _windows(sampler, epoch, banks, num_batches=18)
      per_epoch.append(names[start:])
  finally:
    stop()
  assert per_epoch[0], "the listener saw no compilation at all"
  assert per_epoch[1:] == [[], [], []], per_epoch[1:]


@pytest.mark.parametrize("kernel", ["exact", "cells"])
def test_device_buffers_are_bounded_by_a_chunk(kernel):
  # The compiled search kernels need the same scratch memory for 32k and 128k items: the similarities live
  # one strip or chunk at a time, never N columns (nor N rows) at once.
  def scratch_bytes(n):
    keys = jnp.zeros((n, 16), jnp.float32)
    if kernel == "exact":
      table, ids = neighbors.column_table(keys)
      lowered = neighbors.top_k_blocks.lower(keys[:neighbors.EXACT_ROWS],
                                             jnp.arange(neighbors.EXACT_ROWS), table, ids,
                                             jnp.float32(0.0), k=8)
    else:
      blocks = jnp.zeros((n // neighbors.CELL_BLOCK, neighbors.CELL_BLOCK, 16), jnp.float32)
      ids = jnp.zeros(blocks.shape[:2], jnp.int32)
      lowered = neighbors._cell_chunk.lower(blocks, blocks, ids, jnp.zeros(8, jnp.int32),
                                            jnp.zeros((8, 4), jnp.int32), jnp.float32(0.0), k=8)
    return lowered.compile().memory_analysis().temp_size_in_bytes

  small, large = scratch_bytes(32768), scratch_bytes(131072)
  assert large <= 1.1 * small + (1 << 20), (small, large)
  if kernel == "exact":  # at least one 256 × 16384 block of similarities, so the test can tell
    assert large >= neighbors.EXACT_ROWS * neighbors.EXACT_MAX_COLS * 4


# ------------------------------------------------------------------ the kNN backend


def test_knn_backend_recall_of_the_exact_tail_edges_on_clustered_data():
  # 8000 items in 40 clusters; each item is scored against 1024 candidates (an eighth of the
  # items) from its own and the nearest of 31 cells: it must find ≥ 95% of the exact backend's edges.
  x, _ = sampler_data.planted_clusters(num_examples=8000, dim=32, clusters=40, noise=0.1, seed=1)
  queries = jnp.asarray(x)
  threshold = float(np.quantile(x[:1000] @ x[1000:2000].T, 1 - 64 / 8000))
  _, exact = neighbors.exact_top_k(queries, queries, 16, threshold=threshold)
  _, approx = neighbors.cell_top_k(queries, queries, queries, 16, threshold=threshold, num_cells=31,
                                   candidates=1024, seed=0)
  edges = lambda ids: {(i, j) for i, row in enumerate(ids) for j in row if j >= 0}
  truth = edges(exact)
  recall = len(truth & edges(approx)) / len(truth)
  assert len(truth) > 8000 * 8 and recall >= 0.95, (len(truth), recall)


def test_knn_backend_batches_are_as_hard_as_the_exact_ones(clusters):
  x, labels = clusters
  exact = samplers.TailSampler(N, B, graph="exact", seed=0).sample(0, x)
  knn = samplers.TailSampler(N, B, graph="knn", seed=0).sample(0, x)
  assert np.unique(knn).size == knn.size
  assert sampler_data.same_label_rate(knn, labels) > 0.9 * sampler_data.same_label_rate(exact, labels)


@pytest.mark.parametrize("build,argument", [
    (lambda: samplers.TailSampler(10, 2, max_neighbors=0), "max_neighbors"),
    (lambda: samplers.TailSampler(10, 2, max_neighbors=2.5), "max_neighbors"),
    (lambda: samplers.TailSampler(10, 2, graph="faiss"), "graph"),
])
def test_bad_tail_arguments_raise(build, argument):
  with pytest.raises(ValueError, match=argument):
    build()


def test_a_state_with_a_bad_order_is_refused(clusters):
  x, _ = clusters
  sampler = samplers.TailSampler(N, B)
  sampler.sample(0, x, num_batches=5)
  state = sampler.state_dict()
  state["order"] = state["order"][:, :-1]
  with pytest.raises(ValueError, match=r"state\['order'\]"):
    samplers.TailSampler(N, B).load_state_dict(state)
