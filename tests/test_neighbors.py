"""Tests for prosampler_jax.neighbors: exact top-k above a threshold against NumPy, and the cell search."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import neighbors
from prosampler_jax.normalize import l2_normalize


def _reference(queries, keys, k, threshold):
  """Each row's k largest products above ``threshold``, self excluded, as sets of ids."""
  sims = queries @ keys.T
  np.fill_diagonal(sims, -np.inf)
  order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
  return [set(row[sims[i, row] > threshold]) for i, row in enumerate(order)], sims


@pytest.mark.parametrize("n,threshold,paired", [(300, -np.inf, False), (700, 0.4, False),
                                                (700, 0.1, True)])
def test_exact_top_k_matches_numpy(monkeypatch, n, threshold, paired):
  # Small blocks, so strips and column blocks are many and partly padded.
  monkeypatch.setattr(neighbors, "EXACT_ROWS", 64)
  monkeypatch.setattr(neighbors, "EXACT_MAX_COLS", 256)
  rng = np.random.default_rng(1)
  queries = l2_normalize(rng.normal(size=(n, 6)).astype(np.float32))
  keys = l2_normalize(rng.normal(size=(n, 6)).astype(np.float32)) if paired else queries
  values, ids = neighbors.exact_top_k(jnp.asarray(queries), jnp.asarray(keys), 9, threshold=threshold)
  expected, sims = _reference(queries, keys, 9, threshold)
  assert [set(row[row >= 0]) for row in ids] == expected
  assert (ids != np.arange(n)[:, None]).all()
  found = ids >= 0
  np.testing.assert_allclose(values[found], np.take_along_axis(sims, np.maximum(ids, 0), 1)[found],
                             rtol=1e-6, atol=1e-6)
  assert (np.diff(values, axis=1) <= 0).all()  # descending, −inf after the last kept one
  assert np.isneginf(values[~found]).all()


def test_cell_search_with_every_item_a_candidate_is_exact():
  rng = np.random.default_rng(2)
  x = jnp.asarray(l2_normalize(rng.normal(size=(900, 8)).astype(np.float32)))
  exact = neighbors.exact_top_k(x, x, 5, threshold=0.2)[1]
  cells = neighbors.cell_top_k(x, x, x, 5, threshold=0.2, num_cells=7, candidates=4096, seed=0)[1]
  assert [set(r[r >= 0]) for r in exact] == [set(r[r >= 0]) for r in cells]


def test_a_cells_candidates_are_its_own_blocks_then_the_nearest_cells():
  cell = np.array([0] * 300 + [1] * 100 + [2] * 130)  # 3, 1 and 2 blocks of 128
  layout = neighbors._cell_layout(cell, 3, 128)
  assert layout.num_blocks.tolist() == [3, 1, 2] and layout.first_block.tolist() == [0, 3, 4]
  assert sorted(layout.slot_ids[layout.slot_ids >= 0].tolist()) == list(range(530))
  sims = np.array([[1.0, 0.2, 0.9], [0.2, 1.0, 0.5], [0.9, 0.5, 1.0]])
  candidates = neighbors._candidate_blocks(sims, layout, budget=5)
  assert candidates[0].tolist() == [0, 1, 2, 4, 5]  # own 3 blocks, then cell 2's
  assert candidates[1].tolist() == [3, 4, 5, 0, 1]  # own block, cell 2, then cell 0
  dummy = layout.block_cell.size - 1
  assert neighbors._candidate_blocks(sims, layout, budget=8)[2].tolist() == [4, 5, 0, 1, 2, 3, dummy,
                                                                             dummy]
