"""Tests for GraphCL's four augmentations on padded batches: each one's invariants on real molecules
(MUTAG), connectivity of subgraphs, the per-graph random choice, determinism and bad arguments."""

import collections

import jax
import numpy as np
import pytest

from prosampler_jax import graph_views
from prosampler_jax.data import graphs


@pytest.fixture(scope="module")
def mutag():
  return graphs.load_tu_dataset("MUTAG", graphs.grakel_mutag_dir())


def batch_of(dataset, index, num_nodes=32, num_edges=72):
  return graphs.pad_graphs(dataset, np.asarray(index), num_nodes=num_nodes, num_edges=num_edges)


def keys_for(count, seed=0):
  return jax.random.split(jax.random.key(seed), count)


def as_numpy(tree):
  return jax.tree.map(np.asarray, tree)


def edge_set(graph, b):
  live = graph["edge_mask"][b]
  return set(zip(graph["senders"][b][live].tolist(), graph["receivers"][b][live].tolist()))


def is_connected(nodes: set, edges: set) -> bool:
  if not nodes:
    return False
  seen, todo = set(), [next(iter(nodes))]
  while todo:
    u = todo.pop()
    if u in seen:
      continue
    seen.add(u)
    todo += [v for a, v in edges if a == u and v in nodes] + [a for a, v in edges if v == u and a in nodes]
  return seen == nodes


def test_node_drop_removes_a_fifth_of_the_nodes_and_exactly_their_edges(mutag):
  batch = batch_of(mutag, np.arange(40))
  out = as_numpy(graph_views.augment(batch, keys_for(40), view="node_drop", ratio=0.2))
  sizes = batch["node_mask"].sum(1)
  np.testing.assert_array_equal(out["node_mask"].sum(1), sizes - np.floor(0.2 * sizes))
  assert not np.any(out["node_mask"] & ~batch["node_mask"])  # padding stays padding
  np.testing.assert_array_equal(out["nodes"], batch["nodes"])
  for b in range(40):
    kept = set(np.flatnonzero(out["node_mask"][b]).tolist())
    want = {(s, r) for s, r in edge_set(batch, b) if s in kept and r in kept}
    assert edge_set(out, b) == want


def test_edge_perturb_removes_a_fifth_of_the_edges_and_keeps_the_nodes(mutag):
  batch = batch_of(mutag, np.arange(40))
  out = as_numpy(graph_views.augment(batch, keys_for(40, 1), view="edge_perturb", ratio=0.2))
  counts = batch["edge_mask"].sum(1)
  np.testing.assert_array_equal(out["edge_mask"].sum(1), counts - np.floor(0.2 * counts))
  assert not np.any(out["edge_mask"] & ~batch["edge_mask"])
  np.testing.assert_array_equal(out["node_mask"], batch["node_mask"])
  np.testing.assert_array_equal(out["nodes"], batch["nodes"])


def test_attr_mask_replaces_a_fifth_of_the_rows_with_gaussian_noise(mutag):
  batch = batch_of(mutag, np.arange(188))
  out = as_numpy(graph_views.augment(batch, keys_for(188, 2), view="attr_mask", ratio=0.2))
  changed = np.any(out["nodes"] != batch["nodes"], axis=2)
  sizes = batch["node_mask"].sum(1)
  np.testing.assert_array_equal(changed.sum(1), np.floor(0.2 * sizes))
  assert not np.any(changed & ~batch["node_mask"])  # padding rows untouched
  np.testing.assert_array_equal(out["node_mask"], batch["node_mask"])
  np.testing.assert_array_equal(out["edge_mask"], batch["edge_mask"])
  noise = out["nodes"][changed]
  assert noise.size > 3000
  assert abs(noise.mean() - 0.5) < 0.03 and abs(noise.std() - 0.5) < 0.03


def test_subgraph_keeps_a_connected_four_fifths_with_the_edges_among_them(mutag):
  batch = batch_of(mutag, np.arange(60))
  out = as_numpy(graph_views.augment(batch, keys_for(60, 3), view="subgraph", ratio=0.2))
  sizes = batch["node_mask"].sum(1)
  for b in range(60):
    kept = set(np.flatnonzero(out["node_mask"][b]).tolist())
    assert kept <= set(np.flatnonzero(batch["node_mask"][b]).tolist())
    assert edge_set(out, b) == {(s, r) for s, r in edge_set(batch, b) if s in kept and r in kept}
    if is_connected(set(np.flatnonzero(batch["node_mask"][b]).tolist()), edge_set(batch, b)):
      assert len(kept) == sizes[b] - np.floor(0.2 * sizes[b])
    assert is_connected(kept, edge_set(out, b)), b


def test_subgraph_stays_in_the_start_component_and_starts_anywhere():
  # Two triangles (nodes 0-2 and 3-5): keep = 6 − ⌊1.2⌋ = 5 > 3, so growth stops at the component.
  tri = [(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0)]
  edges = tri + [(s + 3, r + 3) for s, r in tri]
  batch = {"nodes": np.ones((64, 8, 1), np.float32), "node_mask": np.zeros((64, 8), bool),
           "senders": np.zeros((64, 16), np.int32), "receivers": np.zeros((64, 16), np.int32),
           "edge_mask": np.zeros((64, 16), bool)}
  batch["node_mask"][:, :6] = True
  batch["senders"][:, :12] = [s for s, _ in edges]
  batch["receivers"][:, :12] = [r for _, r in edges]
  batch["edge_mask"][:, :12] = True
  out = as_numpy(graph_views.augment(batch, keys_for(64, 4), view="subgraph", ratio=0.2))
  kept = [frozenset(np.flatnonzero(m).tolist()) for m in out["node_mask"]]
  assert set(kept) == {frozenset({0, 1, 2}), frozenset({3, 4, 5})}


@pytest.mark.parametrize("view, options", sorted(graph_views.RANDOM_CHOICES.items()))
def test_random_choices_pick_each_option_per_graph(mutag, view, options):
  batch = batch_of(mutag, np.arange(188))
  out = as_numpy(graph_views.augment(batch, keys_for(188, 5), view=view, ratio=0.2))
  seen = collections.Counter()
  for b in range(188):
    nodes_changed = np.any(out["nodes"][b] != batch["nodes"][b])
    fewer_nodes = out["node_mask"][b].sum() < batch["node_mask"][b].sum()
    fewer_edges = out["edge_mask"][b].sum() < batch["edge_mask"][b].sum()
    if nodes_changed:
      seen["attr_mask"] += 1
    elif fewer_nodes:
      seen["node_drop or subgraph"] += 1
    elif fewer_edges:
      seen["edge_perturb"] += 1
  want = {"node_drop or subgraph"} | ({"edge_perturb"} & set(options)) | ({"attr_mask"} & set(options))
  assert set(seen) == want and min(seen.values()) > 188 / (2 * len(options)) - 20, seen


def test_none_and_zero_ratio_are_the_identity_and_views_are_pure_functions_of_the_keys(mutag):
  batch = batch_of(mutag, np.arange(16))
  same = as_numpy(graph_views.augment(batch, keys_for(16), view="none"))
  for key in graph_views.GRAPH_KEYS:
    np.testing.assert_array_equal(same[key], batch[key])
  for view in graph_views.AUGMENTATIONS[1:]:
    out = as_numpy(graph_views.augment(batch, keys_for(16), view=view, ratio=0.0))
    for key in graph_views.GRAPH_KEYS:
      np.testing.assert_array_equal(out[key], batch[key], err_msg=view)
  eager = as_numpy(graph_views.augment(batch, keys_for(16), view="random4"))
  jitted = as_numpy(jax.jit(lambda g, k: graph_views.augment(g, k, view="random4"))(batch, keys_for(16)))
  other = as_numpy(graph_views.augment(batch, keys_for(16, 9), view="random4"))
  for key in graph_views.GRAPH_KEYS:  # masks exactly; noise up to XLA's fusion of 0.5 + 0.5·N(0, 1)
    np.testing.assert_allclose(eager[key], jitted[key], rtol=1e-6, atol=1e-6)
  assert any(not np.array_equal(eager[k], other[k]) for k in graph_views.GRAPH_KEYS)


def test_bad_arguments_name_themselves(mutag):
  batch = batch_of(mutag, np.arange(4))
  with pytest.raises(ValueError, match="view='dropnodes'.*allowed.*node_drop"):
    graph_views.augment(batch, keys_for(4), view="dropnodes")
  for ratio in (1.0, -0.1, float("nan")):
    with pytest.raises(ValueError, match="ratio"):
      graph_views.augment(batch, keys_for(4), view="node_drop", ratio=ratio)
  with pytest.raises(ValueError, match="edge_mask"):
    graph_views.augment({k: v for k, v in batch.items() if k != "edge_mask"}, keys_for(4), view="subgraph")


@pytest.fixture(scope="module")
def looped_mutag(mutag):
  return graphs.with_self_loops(mutag)


def kept(graph, b):
  return set(np.flatnonzero(graph["node_mask"][b]).tolist())


def test_start_neighbours_keeps_the_start_and_a_fifth_of_n_of_its_direct_neighbours(looped_mutag):
  """The released code's subgraph view: some node s and min(⌊0.2·n⌋, its neighbours) of them; ratio has
  no effect on it. Every one of 188 graphs × 3 draws is checked; the edges are those among the kept."""
  batch = batch_of(looped_mutag, np.arange(188), num_nodes=32, num_edges=128)
  sizes = []
  for seed in range(3):
    out = as_numpy(graph_views.augment(batch, keys_for(188, seed), view="subgraph", ratio=0.1,
                                       subgraph="start_neighbours"))
    for b in range(188):
      nodes, edges, n = kept(out, b), edge_set(batch, b), int(batch["node_mask"][b].sum())
      neighbours = lambda s: {v for u, v in edges if u == s and v != s}
      starts = [s for s in nodes if nodes - {s} <= neighbours(s)
                and len(nodes) - 1 == min(int(0.2 * n), len(neighbours(s)))]
      assert starts, (b, sorted(nodes))
      assert edge_set(out, b) == {(u, v) for u, v in edges if u in nodes and v in nodes}
      sizes.append(len(nodes) / n)
  # On average what a uniformly chosen start keeps: 18% of MUTAG (the grown subgraph keeps 90% here).
  expected = []
  for b in range(188):
    edges, n = edge_set(batch, b), int(batch["node_mask"][b].sum())
    degrees = [len({v for u, v in edges if u == s and v != s}) for s in range(n)]
    expected.append(np.mean([1 + min(int(0.2 * n), d) for d in degrees]) / n)
  assert abs(np.mean(expected) - 0.1815) < 5e-4 and abs(np.mean(sizes) - np.mean(expected)) < 0.01


def test_drop_unlinked_removes_untouched_nodes_then_the_self_loops():
  # Nodes 0-1 joined; 2 and 3 carry only a self-loop; 4 carries nothing (the released loader's last node).
  edges = [(0, 1), (1, 0), (0, 0), (1, 1), (2, 2), (3, 3)]
  graph = {"nodes": np.ones((1, 6, 1), np.float32), "node_mask": np.array([[1, 1, 1, 1, 1, 0]], bool),
           "senders": np.array([[u for u, _ in edges] + [0, 0]], np.int32),
           "receivers": np.array([[v for _, v in edges] + [0, 0]], np.int32),
           "edge_mask": np.array([[1] * 6 + [0, 0]], bool)}
  out = as_numpy(graph_views.augment(graph, keys_for(1), view="node_drop", ratio=0.0, drop_unlinked=True))
  assert kept(out, 0) == {0, 1, 2, 3} and edge_set(out, 0) == {(0, 1), (1, 0)}
  same = as_numpy(graph_views.augment(graph, keys_for(1), view="none", drop_unlinked=True))
  assert kept(same, 0) == {0, 1, 2, 3, 4} and len(edge_set(same, 0)) == 6  # the graph itself: untouched


@pytest.mark.parametrize("view", ["node_drop", "edge_perturb", "attr_mask", "subgraph", "random4"])
def test_released_views_keep_only_nodes_an_edge_or_a_loop_touched_and_no_loops(looped_mutag, view):
  batch = batch_of(looped_mutag, np.arange(60), num_nodes=32, num_edges=128)
  loose = as_numpy(graph_views.augment(batch, keys_for(60, 7), view=view, ratio=0.1,
                                       subgraph="start_neighbours"))
  out = as_numpy(graph_views.augment(batch, keys_for(60, 7), view=view, ratio=0.1,
                                     subgraph="start_neighbours", drop_unlinked=True))
  np.testing.assert_array_equal(out["nodes"], loose["nodes"])  # the same draw, then pruned
  for b in range(60):
    touched = {u for e in edge_set(loose, b) for u in e}
    assert kept(out, b) == kept(loose, b) & touched
    assert edge_set(out, b) == {(u, v) for u, v in edge_set(loose, b) if u != v}
  if view == "node_drop":  # ⌊n/10⌋ dropped, and the last node (no loop) goes too when isolated
    for b in range(60):
      n = int(batch["node_mask"][b].sum())
      assert n - int(n / 10) - 1 <= len(kept(out, b)) <= n - int(n / 10)


def test_released_settings_are_checked_by_name(mutag):
  batch = batch_of(mutag, np.arange(4))
  with pytest.raises(ValueError, match="subgraph='neighbours'.*allowed.*grow.*start_neighbours"):
    graph_views.augment(batch, keys_for(4), view="subgraph", subgraph="neighbours")
  with pytest.raises(ValueError, match="drop_unlinked must be True or False, got 1"):
    graph_views.augment(batch, keys_for(4), view="subgraph", drop_unlinked=1)
