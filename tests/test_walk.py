"""Tests for prosampler_jax.walk: random walks with restart that form batches of distinct items."""

from __future__ import annotations

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import walk

NUM_STARTS = 6


def _graph(n: int, k: int, seed: int, connected: bool) -> np.ndarray:
  """Random ``[n, k]`` neighbour table; ``connected`` puts i → i + 1 first and avoids self-loops."""
  rng = np.random.default_rng(seed)
  if not connected:
    return rng.integers(0, n, (n, k)).astype(np.int32)
  offsets = np.concatenate([np.ones((n, 1), int), rng.integers(1, n, (n, k - 1))], axis=1)
  return ((np.arange(n)[:, None] + offsets) % n).astype(np.int32)


def _assert_complete(rows, starts, n, batch_size):
  rows = np.asarray(rows)
  assert rows.shape == (len(starts), batch_size) and rows.dtype == np.int32
  assert ((rows >= 0) & (rows < n)).all()
  assert all(len(set(row)) == batch_size for row in rows)
  np.testing.assert_array_equal(rows[:, 0], starts)


@settings(max_examples=25, deadline=None)
@given(n=st.sampled_from([12, 40]), batch_size=st.sampled_from([4, 12]),
       restart_prob=st.floats(0.0, 1.0), connected=st.booleans(), graph_seed=st.integers(0, 99),
       key_seed=st.integers(0, 2**31 - 1), data=st.data())
def test_rows_are_complete_and_deterministic(n, batch_size, restart_prob, connected, graph_seed,
                                             key_seed, data):
  neighbors = _graph(n, 3, graph_seed, connected)
  starts = np.asarray(data.draw(st.lists(st.integers(0, n - 1), min_size=NUM_STARTS,
                                         max_size=NUM_STARTS)), np.int32)
  kwargs = dict(batch_size=batch_size, restart_prob=restart_prob, key=jax.random.key(key_seed))
  rows = walk.random_walk_batches(neighbors, starts, **kwargs)
  _assert_complete(rows, starts, n, batch_size)
  np.testing.assert_array_equal(rows, walk.random_walk_batches(neighbors, starts, **kwargs))
  if connected and restart_prob <= 0.25:
    # On a connected graph with little restart the walk finds all B items well within max_steps
    # (no fill), so each item is a neighbour of an earlier item of its row.
    for row in np.asarray(rows):
      assert row[1] in neighbors[row[0]]
      for i in range(1, batch_size):
        assert np.isin(row[i], neighbors[row[:i]])


def test_walk_follows_edges_when_restart_is_zero():
  neighbors = _graph(40, 3, 0, connected=True)
  starts = np.arange(NUM_STARTS, dtype=np.int32)  # Shapes of the property test: no recompilation.
  rows = np.asarray(walk.random_walk_batches(neighbors, starts, batch_size=12, restart_prob=0.0,
                                             key=jax.random.key(0)))
  _assert_complete(rows, starts, 40, 12)
  for row in rows:
    assert row[1] in neighbors[row[0]]
    assert all(np.isin(row[i], neighbors[row[:i]]) for i in range(1, 12))


def test_first_step_is_a_uniform_neighbour():
  # Complete graph on 3 items, B = 2: the second item is either neighbour with probability 1/2.
  neighbors = np.array([[1, 2], [2, 0], [0, 1]], np.int32)
  starts = np.zeros(2000, np.int32)
  rows = np.asarray(walk.random_walk_batches(neighbors, starts, batch_size=2, restart_prob=0.3,
                                             key=jax.random.key(1)))
  share = (rows[:, 1] == 1).mean()
  assert abs(share - 0.5) < 0.05  # 4.5 standard deviations.


def test_restart_keeps_batches_near_the_start():
  # Ring of 400 items with edges to i ± 1 … i ± 8: higher α → items closer to the start.
  n = 400
  neighbors = (np.arange(n)[:, None] + np.array([o for o in range(-8, 9) if o])) % n
  starts = np.arange(0, n, 10, dtype=np.int32)
  spread = {}
  for alpha in (0.05, 0.5):
    rows = np.asarray(walk.random_walk_batches(neighbors, starts, batch_size=16, restart_prob=alpha,
                                               key=jax.random.key(2)))
    _assert_complete(rows, starts, n, 16)
    offsets = (rows - rows[:, :1] + n // 2) % n - n // 2
    spread[alpha] = np.abs(offsets).mean()
  assert spread[0.5] < 0.75 * spread[0.05]  # Measured ≈ 6 vs ≈ 10.5.


def test_small_components_are_filled_with_distinct_items():
  # Components {3c, 3c+1, 3c+2}: a walk finds its 3 items, the other 5 slots are fills.
  n, batch_size = 30, 8
  members = np.arange(n).reshape(-1, 3)
  neighbors = np.concatenate([np.roll(members, -1, axis=1)[..., None],
                              np.roll(members, -2, axis=1)[..., None]], axis=2).reshape(n, 2)
  starts = np.arange(n, dtype=np.int32)
  rows = np.asarray(walk.random_walk_batches(neighbors, starts, batch_size=batch_size,
                                             restart_prob=0.2, key=jax.random.key(3)))
  _assert_complete(rows, starts, n, batch_size)
  for start, row in zip(starts, rows):
    assert set(row[:3]) == set(members[start // 3])


def test_restart_one_fills_uniformly():
  # α = 1 never leaves the start: all B − 1 other items are uniform draws of the unseen items.
  n, batch_size = 50, 10
  neighbors = _graph(n, 3, 0, connected=True)
  starts = np.repeat(np.arange(n, dtype=np.int32), 40)
  rows = np.asarray(walk.random_walk_batches(neighbors, starts, batch_size=batch_size,
                                             restart_prob=1.0, key=jax.random.key(4)))
  _assert_complete(rows, starts, n, batch_size)
  counts = np.bincount(rows[:, 1:].ravel(), minlength=n)
  expected = len(starts) * (batch_size - 1) / n
  chi2 = ((counts - expected) ** 2 / expected).sum()
  assert chi2 < 100  # 49 degrees of freedom: ≈ 49 ± 10 (and the last-resort fill would be ≫ 1000).


def test_max_steps_one_and_batch_of_all_items():
  neighbors = _graph(12, 3, 0, connected=True)
  starts = np.arange(12, dtype=np.int32)
  rows = walk.random_walk_batches(neighbors, starts, batch_size=12, restart_prob=0.2,
                                  key=jax.random.key(5), max_steps=1)
  _assert_complete(rows, starts, 12, 12)
  assert (np.asarray(rows)[:, 1:] != np.asarray(rows)[:, :1]).all()


def test_fill_smallest_last_resort(monkeypatch):
  row = jnp.array([7, 2, 5, 9, 9], jnp.int32)
  np.testing.assert_array_equal(walk._fill_smallest(row, 2, 10), [7, 2, 0, 1, 3])
  # No uniform fill steps at all: a stuck walk (α = 1) ends in the last-resort fill.
  monkeypatch.setattr(walk, "_FILL_STEPS_PER_ITEM", 0)
  rows = walk.random_walk_batches(_graph(12, 3, 0, True), np.array([0, 5]), batch_size=4,
                                  restart_prob=1.0, key=jax.random.key(0), max_steps=3)
  np.testing.assert_array_equal(rows, [[0, 1, 2, 3], [5, 0, 1, 2]])


def test_tiny_graph():
  neighbors = np.array([[1], [0]], np.int32)
  rows = walk.random_walk_batches(neighbors, np.array([0, 1, 1]), batch_size=2, restart_prob=0.5,
                                  key=jax.random.key(0))
  np.testing.assert_array_equal(rows, [[0, 1], [1, 0], [1, 0]])


def test_key_kinds_agree_and_keys_matter():
  neighbors = jnp.asarray(_graph(40, 3, 1, connected=True))  # A device array works too.
  starts = np.arange(NUM_STARTS)
  run = lambda key: np.asarray(walk.random_walk_batches(neighbors, starts, batch_size=12,
                                                        restart_prob=0.2, key=key))
  np.testing.assert_array_equal(run(jax.random.key(7)), run(jax.random.PRNGKey(7)))
  assert (run(jax.random.key(7)) != run(jax.random.key(8))).any()


def test_no_starts():
  rows = walk.random_walk_batches(_graph(12, 3, 0, True), np.zeros((0,), np.int32), batch_size=4,
                                  restart_prob=0.2, key=jax.random.key(0))
  assert rows.shape == (0, 4)


@pytest.mark.parametrize("neighbors, starts, kwargs, match", [
    (None, None, {"restart_prob": -0.1}, "restart_prob"),
    (None, None, {"restart_prob": 1.5}, "restart_prob"),
    (None, None, {"restart_prob": float("nan")}, "restart_prob"),
    (None, None, {"batch_size": 1}, "batch_size"),
    (None, None, {"batch_size": 13}, "batch_size"),
    (None, None, {"max_steps": 0}, "max_steps"),
    (None, None, {"key": 0}, "key"),
    (None, None, {"key": jax.random.split(jax.random.key(0), 2)}, "key"),
    (np.zeros((12,), np.int32), None, {}, "neighbors"),
    (np.zeros((12, 3), np.float32), None, {}, "neighbors"),
    (np.full((12, 3), 12, np.int32), None, {}, "neighbors"),
    (np.full((12, 3), -1, np.int32), None, {}, "neighbors"),
    (None, np.zeros((2, 2), np.int32), {}, "starts"),
    (None, np.array([0, 12]), {}, "starts"),
    (None, np.array([-1]), {}, "starts"),
    (None, np.array([0.5]), {}, "starts"),
])
def test_bad_arguments(neighbors, starts, kwargs, match):
  neighbors = _graph(12, 3, 0, True) if neighbors is None else neighbors
  starts = np.arange(3) if starts is None else starts
  kwargs = {"batch_size": 4, "restart_prob": 0.2, "key": jax.random.key(0), **kwargs}
  with pytest.raises(ValueError, match=match):
    walk.random_walk_batches(neighbors, starts, **kwargs)
