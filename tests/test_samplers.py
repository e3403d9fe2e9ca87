"""Tests for prosampler_jax.samplers: hardness order on planted clusters, coverage, determinism, resume."""

from __future__ import annotations

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

import sampler_data
from prosampler_jax import samplers

N, B, CLUSTERS = 2000, 32, 20  # sampler_data.planted_clusters() defaults


@pytest.fixture(scope="module")
def clusters():
  return sampler_data.planted_clusters()


def _all_samplers(num_examples=N, batch_size=B, seed=0):
  """One of each sampler (ProSampler with K = 100, M = 1000 as in the cluster test: one compilation)."""
  return [
      samplers.UniformSampler(num_examples, batch_size, seed=seed),
      samplers.ProximitySampler(num_examples, batch_size, num_neighbors=min(100, num_examples - 1),
                                num_candidates=1000, seed=seed),
      samplers.KnnSampler(num_examples, batch_size, seed=seed),
      samplers.TailSampler(num_examples, batch_size, seed=seed),
      samplers.PartitionSampler(num_examples, batch_size, seed=seed),
      samplers.ClusterSampler(num_examples, batch_size, seed=seed),
  ]


# ------------------------------------------------------------------ hardness order on planted clusters


def test_same_cluster_rate_orders_samplers(clusters):
  x, labels = clusters
  rate = {}
  rate["uniform"] = sampler_data.same_label_rate(samplers.UniformSampler(N, B).sample(0, x), labels)
  for name, m in [("random_graph", 100), ("m1000", 1000), ("knn_graph", N - 1)]:
    sampler = samplers.ProximitySampler(N, B, num_neighbors=100, num_candidates=m, seed=1)
    batches = sampler.sample(0, x)
    sampler_data.assert_valid(batches, N, N // B, B)
    graph = sampler.proximity_graph(x, 0, 0)  # the graph epoch 0 walked on
    assert graph.shape == (N, 100)
    # Nothing N × K stays pinned on the device between windows.
    assert not [k for k, v in vars(sampler).items() if getattr(v, "shape", ())[:1] == (N,)
                and getattr(v, "ndim", 0) == 2]
    rate[name] = sampler_data.same_label_rate(batches, labels)
  knn = samplers.KnnSampler(N, B).sample(0, x)
  sampler_data.assert_valid(knn, N, N // B, B)
  rate["knn"] = sampler_data.same_label_rate(knn, labels)
  tail = samplers.TailSampler(N, B).sample(0, x)
  sampler_data.assert_valid(tail, N, N // B, B)
  rate["tail"] = sampler_data.same_label_rate(tail, labels)
  for name in ("partition", "cluster"):
    batches = samplers.make_sampler(name, N, B, seed=1).sample(0, x)
    sampler_data.assert_valid(batches, N, N // B, B)
    assert np.unique(batches).size == batches.size
    rate[name] = sampler_data.same_label_rate(batches, labels)

  chance = (N / CLUSTERS - 1) / (N - 1)
  assert abs(rate["uniform"] - chance) < 0.02, rate
  assert abs(rate["random_graph"] - rate["uniform"]) < 0.03, rate
  assert rate["m1000"] > rate["random_graph"] + 0.1, rate
  assert rate["knn_graph"] > rate["m1000"] + 0.1, rate
  assert rate["knn"] > 0.99, rate
  assert rate["tail"] > 0.5, rate
  # B3 skips each item's 20 nearest (N // 100) in clusters of 100; cluster batches pool the leftovers of
  # clusters of ~33 items at random.
  assert rate["partition"] > 0.4 and rate["cluster"] > 0.6, rate


def test_knn_rows_are_anchor_and_exact_nearest_neighbours(clusters):
  x, _ = clusters
  batches = samplers.KnnSampler(N, B, seed=3).sample(2, x, num_batches=5)
  sims = x[batches[:, 0]] @ x.T
  sims[np.arange(5), batches[:, 0]] = -np.inf
  expected = np.argsort(-sims, axis=1)[:, :B - 1]
  for row, exp in zip(batches, expected):
    assert set(row[1:].tolist()) == set(exp.tolist())


# ------------------------------------------------------------------ coverage within an epoch


def test_uniform_epoch_is_a_permutation():
  batches = samplers.UniformSampler(100, 8, seed=4).sample(0)
  sampler_data.assert_valid(batches, 100, 12, 8)
  assert np.unique(batches).size == 96


def test_uniform_windows_partitioning_an_epoch_form_a_permutation():
  sampler = samplers.UniformSampler(103, 4, seed=5)  # 25 steps: windows of 10, 10, 5 (of 10).
  windows = [sampler.sample(7, num_batches=10, window=w) for w in range(3)]
  epoch = np.concatenate([windows[0], windows[1], windows[2][:5]])
  assert np.unique(epoch).size == epoch.size == 100
  # The order within the epoch is random: it is not the identity and differs between epochs.
  again = samplers.UniformSampler(103, 4, seed=5).sample(8, num_batches=10, window=0)
  assert not np.array_equal(windows[0], again)
  assert not np.array_equal(np.sort(windows[0].ravel()), np.arange(40))


def test_fixed_batches_are_the_same_every_epoch_window_by_window_and_chosen_by_the_seed():
  """GraphCL's released baseline: one shuffle, then the same batches every epoch."""
  windows = lambda sampler, epoch: [sampler.sample(epoch, num_batches=10, window=w) for w in range(3)]
  fixed = samplers.FixedSampler(103, 4, seed=5)
  first = windows(fixed, 0)
  for epoch in (1, 2, 9):
    np.testing.assert_array_equal(np.concatenate(windows(fixed, epoch)), np.concatenate(first))
  # They are uniform's epoch-0 batches: a permutation of the epoch, window by window.
  np.testing.assert_array_equal(np.concatenate(first), np.concatenate(windows(
      samplers.UniformSampler(103, 4, seed=5), 0)))
  epoch = np.concatenate([first[0], first[1], first[2][:5]])
  assert np.unique(epoch).size == epoch.size == 100
  other = samplers.FixedSampler(103, 4, seed=6).sample(3, num_batches=10, window=0)
  assert not np.array_equal(other, first[0])
  assert samplers.make_sampler("fixed", 103, 4, seed=5).sample(4).shape == (25, 4)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(num_examples=st.integers(2, 200), data=st.data())
def test_uniform_rows_are_distinct_and_windows_cover(num_examples, data):
  batch_size = data.draw(st.integers(2, num_examples))
  sizes = data.draw(st.lists(st.integers(1, 3 * (num_examples // batch_size)), min_size=1, max_size=4))
  sampler = samplers.UniformSampler(num_examples, batch_size, seed=data.draw(st.integers(0, 2**32 - 1)))
  windows = [sampler.sample(1, num_batches=s, window=w) for w, s in enumerate(sizes)]
  for s, batches in zip(sizes, windows):
    sampler_data.assert_valid(batches, num_examples, s, batch_size)
  used = np.concatenate(windows).ravel()
  if used.size <= (num_examples // batch_size) * batch_size:
    assert np.unique(used).size == used.size  # no item twice before the epoch is used up


def test_proximity_draws_start_items_from_uncovered_items(clusters):
  x, _ = clusters
  sampler = samplers.ProximitySampler(N, B, num_neighbors=100, num_candidates=1000, seed=2)
  seen = np.zeros(N, bool)
  for w in range(3):
    batches = sampler.sample(0, x, num_batches=20, window=w)
    starts = batches[:, 0]
    assert np.unique(starts).size == starts.size
    assert not seen[starts].any(), f"window {w} restarted from a covered item"
    seen[batches.ravel()] = True
  # A new epoch resets the covered mask.
  assert not sampler.state_dict()["covered"][~seen].any()
  sampler.sample(1, x, num_batches=1, window=3)
  assert sampler.state_dict()["covered"].sum() == B


@pytest.mark.parametrize("index", [1, 2])
def test_start_items_top_up_from_covered_items_when_too_few_are_left(clusters, index):
  x, _ = clusters
  sampler = _all_samplers(seed=3)[index]
  state = sampler.state_dict()
  left = np.array([5, 500, 1500])
  state["epoch"], state["covered"][:], state["covered_in"][:] = 0, True, 0
  state["covered"][left], state["covered_in"][left] = False, -1
  sampler.load_state_dict(state)
  starts = sampler.sample(0, x, num_batches=20, window=1)[:, 0]
  assert set(starts[:3].tolist()) == set(left.tolist())  # the uncovered items first, …
  assert np.unique(starts).size == 20  # … then distinct covered ones.


# ------------------------------------------------------------------ determinism, fallback, resume


@pytest.mark.parametrize("index", range(6))
def test_output_is_a_function_of_seed_epoch_window_and_embeddings(clusters, index):
  x, _ = clusters

  def draw(seed=0, epoch=0, window=0):
    return _all_samplers(seed=seed)[index].sample(epoch, x, num_batches=20, window=window)

  first = draw()
  sampler_data.assert_valid(first, N, 20, B)
  np.testing.assert_array_equal(first, draw())
  assert not np.array_equal(first, draw(window=1))
  assert not np.array_equal(first, draw(epoch=1))
  assert not np.array_equal(first, draw(seed=1))
  # A whole-epoch call (window 0) restarts the epoch, so repeating it repeats the output.
  sampler = _all_samplers(seed=0)[index]
  again = sampler.sample(0, x, num_batches=20)
  np.testing.assert_array_equal(sampler.sample(0, x, num_batches=20), again)


@pytest.mark.parametrize("index", [1, 2, 3, 4, 5])
def test_missing_embeddings_fall_back_to_uniform_batches(index):
  uniform = samplers.UniformSampler(N, B, seed=4)
  sampler = _all_samplers(seed=4)[index]
  for w in range(2):
    batches = sampler.sample(2, None, num_batches=10, window=w)
    np.testing.assert_array_equal(batches, uniform.sample(2, None, num_batches=10, window=w))
  np.testing.assert_array_equal(sampler.state_dict()["covered"], uniform.state_dict()["covered"])


@pytest.mark.parametrize("index", range(6))
def test_state_dict_round_trip_continues_identically(clusters, index):
  x, _ = clusters
  running = _all_samplers(seed=6)[index]
  running.sample(1, x, num_batches=20, window=0)
  state = running.state_dict()
  expected = running.sample(1, x, num_batches=20, window=1)
  resumed = _all_samplers(seed=6)[index]
  resumed.load_state_dict(state)
  np.testing.assert_array_equal(resumed.sample(1, x, num_batches=20, window=1), expected)
  # Without the state, a fresh sampler would not know which items the epoch already used.
  assert not np.array_equal(_all_samplers(seed=6)[index].sample(1, x, num_batches=20, window=1),
                            expected)
  # A state saved before the sampler recorded which window covered an item (the mask alone) still resumes.
  older = _all_samplers(seed=6)[index]
  older.load_state_dict({k: v for k, v in state.items() if k != "covered_in"})
  np.testing.assert_array_equal(older.sample(1, x, num_batches=20, window=1), expected)


@pytest.mark.parametrize("index", range(7))
def test_asking_for_a_window_again_gives_the_same_batches(clusters, index):
  # A retried window (or PlanBatchSampler.sample_window(w) twice) must not count its own first draw as
  # covered, nor the windows drawn after it.
  x, _ = clusters
  sampler = (_all_samplers(seed=3) + [samplers.FixedSampler(N, B, seed=3)])[index]
  first = [sampler.sample(2, x, num_batches=15, window=w) for w in range(3)]
  np.testing.assert_array_equal(sampler.sample(2, x, num_batches=15, window=1), first[1])
  np.testing.assert_array_equal(sampler.sample(2, x, num_batches=15, window=1), first[1])
  np.testing.assert_array_equal(sampler.sample(2, x, num_batches=15, window=2), first[2])
  covered_in = sampler.state_dict()["covered_in"]
  for w, batches in enumerate(first):  # each item remembers the first window that used it
    assert (covered_in[batches.ravel()] <= w).all() and (covered_in[batches.ravel()] >= 0).all()


@pytest.mark.parametrize("name", ["tail", "partition", "cluster"])
def test_a_window_past_the_epochs_batches_tops_up_with_the_items_no_row_used(name):
  # 43 items, B = 5: 8 batches, 3 items left out. Windows of 3 batches: the third holds the last two
  # batches and a uniform row, which must take the 3 items no batch used (not items of its own window).
  x = np.random.default_rng(0).normal(size=(43, 8)).astype(np.float32)
  sampler = samplers.make_sampler(name, 43, 5, seed=2)
  windows = [sampler.sample(1, x, num_batches=3, window=w) for w in range(3)]
  assert np.unique(np.concatenate(windows)).size == 43


def test_restart_schedule_is_off_by_default_and_decays_to_its_floor():
  assert samplers.ProximitySampler(N, B).restart_prob_at(30) == 0.2
  decayed = samplers.ProximitySampler(N, B, restart_prob=0.2, restart_decay=0.02)
  assert [decayed.restart_prob_at(e) for e in (0, 1, 5, 100)] == pytest.approx([0.2, 0.18, 0.1, 0.05])


def test_make_sampler_builds_each_sampler():
  for name, cls in samplers.SAMPLERS.items():
    assert type(samplers.make_sampler(name, 200, 10, seed=3)) is cls
  tail = samplers.make_sampler("tail", 100, 10, quantile=0.9)
  assert tail.quantile == 0.9
  prox = samplers.make_sampler("proximity", 100, 10, num_neighbors=5, num_candidates=50)
  assert (prox.num_neighbors, prox.num_candidates) == (5, 50)


# ------------------------------------------------------------------ bad input

_BAD_CONSTRUCTORS = [
    (lambda: samplers.UniformSampler(1, 2), "num_examples"),
    (lambda: samplers.UniformSampler(10.0, 2), "num_examples"),
    (lambda: samplers.UniformSampler(10, 1), "batch_size"),
    (lambda: samplers.UniformSampler(10, 11), "batch_size"),
    (lambda: samplers.KnnSampler(10, 2.5), "batch_size"),
    (lambda: samplers.UniformSampler(10, 2, seed=-1), "seed"),
    (lambda: samplers.TailSampler(10, 2, seed=2**32), "seed"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=0), "num_neighbors"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=10), "num_neighbors"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=5, num_candidates=4), "num_candidates"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=5, restart_prob=1.5), "restart_prob"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=5, restart_prob=-0.1), "restart_prob"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=5, graph_backend="faiss"), "graph_backend"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=5, num_candidates=6, graph_backend="exact"),
     "num_candidates"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=5, restart_decay=-1.0), "restart_decay"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=5, min_restart_prob=2.0),
     "min_restart_prob"),
    (lambda: samplers.ProximitySampler(10, 2, num_neighbors=5, restart_prob=0.1, restart_decay=0.01,
                                       min_restart_prob=0.2), "min_restart_prob"),
    (lambda: samplers.TailSampler(10, 2, quantile=0.0), "quantile"),
    (lambda: samplers.TailSampler(10, 2, quantile=1.0), "quantile"),
    (lambda: samplers.TailSampler(10, 2, quantile=float("nan")), "quantile"),
    (lambda: samplers.make_sampler("random", 10, 2), "name"),
    (lambda: samplers.make_sampler("uniform", 10, 2, num_neighbors=3, foo=1), "foo"),
    (lambda: samplers.make_sampler("tail", 10, 2, restart_prob=0.3), "restart_prob"),
]


@pytest.mark.parametrize("build,argument", _BAD_CONSTRUCTORS)
def test_bad_constructor_arguments_raise(build, argument):
  with pytest.raises(ValueError, match=argument):
    build()


_X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
_NAN = _X.copy()
_NAN[3, 1] = np.nan
_BAD_CALLS = [
    (dict(epoch=-1), "epoch"),
    (dict(epoch=1.5), "epoch"),
    (dict(window=-1), "window"),
    (dict(num_batches=0), "num_batches"),
    (dict(embeddings=_X[:19]), "embeddings"),
    (dict(embeddings=_X[0]), "embeddings"),
    (dict(embeddings=_X.astype(np.int32)), "embeddings"),
    (dict(embeddings=_NAN), "embeddings"),
]


@pytest.mark.parametrize("index", range(6))
@pytest.mark.parametrize("kwargs,argument", _BAD_CALLS)
def test_bad_sample_arguments_raise(index, kwargs, argument):
  sampler = _all_samplers(num_examples=20, batch_size=4)[index]
  kwargs = {"epoch": 0, "embeddings": _X, **kwargs}
  with pytest.raises(ValueError, match=argument):
    sampler.sample(kwargs.pop("epoch"), kwargs.pop("embeddings"), **kwargs)


@pytest.mark.parametrize("embeddings,argument", [
    ((_X, _X, _X), "embeddings"),
    ((_X, _X[:, :3]), r"embeddings\[1\]"),
    ((_X[:19], _X), r"embeddings\[0\]"),
    ((_X, _NAN), r"embeddings\[1\]"),
])
def test_tail_rejects_bad_pairs(embeddings, argument):
  with pytest.raises(ValueError, match=argument):
    samplers.TailSampler(20, 4).sample(0, embeddings)


def test_load_state_dict_rejects_foreign_state():
  state = samplers.UniformSampler(20, 4, seed=1).state_dict()
  with pytest.raises(ValueError, match="sampler"):
    samplers.KnnSampler(20, 4, seed=1).load_state_dict(state)
  with pytest.raises(ValueError, match="num_examples"):
    samplers.UniformSampler(21, 4, seed=1).load_state_dict(state)
  with pytest.raises(ValueError, match="seed"):
    samplers.UniformSampler(20, 4, seed=2).load_state_dict(state)
  with pytest.raises(ValueError, match="covered"):
    samplers.UniformSampler(20, 4, seed=1).load_state_dict({**state, "covered": np.zeros(21, bool)})
  with pytest.raises(ValueError, match="covered_in"):
    samplers.UniformSampler(20, 4, seed=1).load_state_dict({**state, "covered_in": np.zeros(20, np.int32)})
  with pytest.raises(ValueError, match="epoch"):
    samplers.UniformSampler(20, 4, seed=1).load_state_dict({**state, "epoch": -2})
  with pytest.raises(ValueError, match="missing"):
    samplers.UniformSampler(20, 4, seed=1).load_state_dict({"epoch": 0})
  prox = samplers.ProximitySampler(20, 4, num_neighbors=5, num_candidates=10).state_dict()
  with pytest.raises(ValueError, match="num_candidates"):
    samplers.ProximitySampler(20, 4, num_neighbors=5, num_candidates=11).load_state_dict(prox)
