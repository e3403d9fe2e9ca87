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


# ---------------------------------------------------------------------------------------------------
# Tail Batch Sampling's loss gap and the margin's dropped share, against float64 written out plainly.


def _reference_gap(batches, x, y, temperature):
  """Per (batch, member) slot and direction: InfoNCE against all N minus against the batch, float64."""
  x = np.asarray(x, np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
  y = np.asarray(y, np.float64) / np.linalg.norm(y, axis=1, keepdims=True)
  s = x @ y.T / temperature  # s[i, j] = s(x_i, y_j)
  lse = lambda v: np.log(np.exp(v - v.max()).sum()) + v.max()
  globals_, trains = [], []
  for row in batches:
    for i in row:
      globals_ += [lse(s[i]) - s[i, i], lse(s[:, i]) - s[i, i]]
      trains += [lse(s[i, row]) - s[i, i], lse(s[row, i]) - s[i, i]]
  return np.mean(globals_) - np.mean(trains), np.mean(globals_), np.mean(trains)


def _paired(n, dim, seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, dim)).astype(np.float32)
  return x, (x + 0.7 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_loss_gap_matches_the_float64_reference(temperature):
  x, y = _paired(70, 5, seed=3)
  rng = np.random.default_rng(4)
  batches = np.stack([rng.choice(70, 8, replace=False) for _ in range(6)])  # items may repeat
  got = diagnostics.loss_gap(batches, x, y, temperature=temperature)
  gap, global_loss, train_loss = _reference_gap(batches, x, y, temperature)
  assert got["loss_gap"] == pytest.approx(gap, rel=1e-4, abs=1e-4)
  assert got["global_loss"] == pytest.approx(global_loss, rel=1e-4)
  assert got["train_loss"] == pytest.approx(train_loss, rel=1e-4)
  assert got["loss_gap_anchors"] == 48 and got["loss_gap"] > 0.1


def test_loss_gap_of_one_batch_holding_every_item_is_zero_and_blocks_change_nothing(monkeypatch):
  x, y = _paired(40, 6, seed=5)
  whole = diagnostics.loss_gap(np.random.default_rng(0).permutation(40)[None], x, y, temperature=0.1)
  assert whole["loss_gap"] == pytest.approx(0.0, abs=1e-5)
  assert whole["global_loss"] == pytest.approx(whole["train_loss"], abs=1e-5)
  batches = np.arange(40).reshape(5, 8)
  want = diagnostics.loss_gap(batches, x, y, temperature=0.1)
  monkeypatch.setattr(diagnostics, "_GLOBAL_ROWS", 3)     # many strips, a ragged last one
  monkeypatch.setattr(diagnostics, "_GLOBAL_COLUMNS", 7)  # many blocks, a padded last one
  assert diagnostics.loss_gap(batches, x, y, temperature=0.1) == pytest.approx(want, rel=1e-5)


def test_loss_gap_compiles_once_per_bank_whatever_the_windows_distinct_items():
  """The trainer scores every window; windows hold different numbers of distinct items. Measured in a
  profiled run: a strip sized by that number recompiled the global term at every window (300 ms each,
  on the step's path)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax_events  # pylint: disable=g-import-not-at-top
  x, y = _paired(300, 6, seed=8)
  rng = np.random.default_rng(2)
  jax.clear_caches()
  names, stop = jax_events.count_compilations()
  try:
    counts = []
    for window in range(4):
      size = 20 + 40 * window  # 20, 60, 100, 140 items drawn with repeats: distinct counts all differ
      batches = rng.choice(size, (size // 4, 4)) if window else rng.choice(size, (5, 4))
      before = len(names)
      diagnostics.loss_gap(batches.astype(np.int32), x, y, temperature=0.1)
      counts.append([n for n in names[before:] if "global" in (n or "")])
  finally:
    stop()
  assert counts[0], "the global term's compilation was not seen"
  assert counts[1:] == [[], [], []], counts


def test_loss_gap_on_a_subset_of_anchors_is_the_exact_value_on_those_slots():
  x, y = _paired(200, 8, seed=6)
  batches = np.random.default_rng(1).permutation(200).reshape(25, 8)
  exact = diagnostics.loss_gap(batches, x, y, temperature=0.2)
  part = diagnostics.loss_gap(batches, x, y, temperature=0.2, num_anchors=50, seed=3)
  assert part["loss_gap_anchors"] == 50
  chosen = np.sort(np.random.default_rng(3).choice(200, 50, replace=False))
  slots = batches.reshape(-1)
  gap, _, _ = _reference_gap(batches, x, y, 0.2)
  assert exact["loss_gap"] == pytest.approx(gap, rel=1e-4)
  per_slot = []
  for slot in chosen:
    row = batches[slot // 8]
    per_slot.append(_slot_gap(row, slots[slot], x, y, 0.2))
  assert part["loss_gap"] == pytest.approx(np.mean(per_slot), rel=1e-4)
  assert part == diagnostics.loss_gap(batches, x, y, temperature=0.2, num_anchors=50, seed=3)
  assert diagnostics.gap_anchors(1000, 500, scores=10**6) is None
  assert diagnostics.gap_anchors(1000, 5000, scores=10**6) == 1000


def _slot_gap(row, item, x, y, temperature):
  x = np.asarray(x, np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
  y = np.asarray(y, np.float64) / np.linalg.norm(y, axis=1, keepdims=True)
  s = x @ y.T / temperature
  lse = lambda v: np.log(np.exp(v - v.max()).sum()) + v.max()
  return 0.5 * ((lse(s[item]) - lse(s[item, row])) + (lse(s[:, item]) - lse(s[row, item])))


def test_in_batch_accuracy_is_top1_retrieval_of_the_own_second_view():
  x, y = _paired(50, 4, seed=12)
  want = np.mean(np.argmax(x @ y.T, axis=1) == np.arange(50))
  assert float(diagnostics.in_batch_accuracy(jnp.asarray(x), jnp.asarray(y))) == pytest.approx(want)
  assert 0.0 < want < 1.0
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)  # the bank's rows are unit rows
  assert float(diagnostics.in_batch_accuracy(jnp.asarray(unit), jnp.asarray(unit))) == 1.0


def test_batch_stats_reports_the_gap_and_the_margins_dropped_share():
  x, y = _paired(60, 4, seed=8)
  bank = np.concatenate([x, y], axis=1)
  batches = np.random.default_rng(2).permutation(60).reshape(6, 10)
  stats = diagnostics.batch_stats(batches, bank, pairs=(x, y), temperature=0.1, false_negative_margin=0.7)
  assert stats["loss_gap"] == pytest.approx(_reference_gap(batches, x, y, 0.1)[0], rel=1e-4)
  u = x / np.linalg.norm(x, axis=1, keepdims=True)
  v = y / np.linalg.norm(y, axis=1, keepdims=True)
  shares = []
  for row in batches:
    c = u[row] @ v[row].T  # c[i, j] = cos(x_i, y_j)
    off = ~np.eye(10, dtype=bool)
    dropped = ((c > 0.7 * np.diag(c)[:, None]) & off).sum() + ((c.T > 0.7 * np.diag(c)[:, None]) & off).sum()
    shares.append(dropped / (2 * 10 * 9))
  assert stats["margin_dropped_rate"] == pytest.approx(np.mean(shares), abs=1e-6)
  assert 0 < stats["margin_dropped_rate"] < 1
  json.dumps(stats)
  with pytest.raises(ValueError, match="need pairs"):
    diagnostics.batch_stats(batches, bank, temperature=0.1)
  with pytest.raises(ValueError, match=r"pairs\[1\] has N=59 rows"):
    diagnostics.batch_stats(batches, bank, pairs=(x, y[:59]), temperature=0.1)
  with pytest.raises(ValueError, match="temperature=0 is out of range"):
    diagnostics.loss_gap(batches, x, y, temperature=0.0)
