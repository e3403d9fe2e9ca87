"""Tests for the TU graph loader: real MUTAG (grakel's copy), NCI1 and PROTEINS (../shared/data), and small
hand-written datasets for every optional file and every malformed input."""

import os

import numpy as np
import pytest

from prosampler_jax.data import graphs

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tu")
needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED),
                                  reason="../shared/data/tu (real NCI1 and PROTEINS) is absent")


def write_dataset(root, name="TOY", *, indicator="1\n1\n1\n2\n2\n", labels="-1\n1\n",
                  edges="1, 2\n2, 1\n2, 3\n3, 2\n4, 5\n5, 4\n", node_labels=None, attributes=None,
                  edge_labels=None):
  folder = root / name
  folder.mkdir(parents=True, exist_ok=True)
  files = {"graph_indicator": indicator, "graph_labels": labels, "A": edges, "node_labels": node_labels,
           "node_attributes": attributes, "edge_labels": edge_labels}
  for part, text in files.items():
    if text is not None:
      (folder / f"{name}_{part}.txt").write_text(text)
  return str(root)


def test_mutag_from_grakel():
  mutag = graphs.load_tu_dataset("MUTAG", graphs.grakel_mutag_dir())
  assert len(mutag) == 188 and mutag.num_classes == 2
  assert np.bincount(mutag.labels).tolist() == [63, 125]
  assert mutag.node_features.shape == (3371, 7) and (mutag.node_features.sum(1) == 1).all()
  assert mutag.edge_labels is not None and len(mutag.edge_labels) == len(mutag.senders) == 7442
  for g in (0, 100, 187):  # local ids stay inside their graph; undirected: both directions listed
    x, s, r = mutag.graph(g)
    assert s.max() < len(x) and r.max() < len(x)
    assert set(zip(s.tolist(), r.tolist())) == set(zip(r.tolist(), s.tolist()))


@needs_shared
def test_nci1_and_proteins_from_the_shared_copy():
  nci1 = graphs.load_tu_dataset("NCI1", SHARED)
  assert len(nci1) == 4110 and np.bincount(nci1.labels).tolist() == [2053, 2057]
  assert nci1.node_features.shape[1] == 37
  proteins = graphs.load_tu_dataset("PROTEINS", SHARED)
  assert len(proteins) == 1113 and np.bincount(proteins.labels).tolist() == [663, 450]
  assert proteins.node_features.shape[1] == 3  # GraphCL leaves the attribute out ...
  with_attributes = graphs.load_tu_dataset("PROTEINS", SHARED, use_node_attributes=True)
  assert with_attributes.node_features.shape[1] == 4  # ... unless asked


def test_optional_files_and_features_for_unlabelled_nodes(tmp_path):
  root = write_dataset(tmp_path, node_labels="4\n7\n4\n7\n9\n", attributes="0.5\n1.5\n2\n3\n4\n",
                       edge_labels="0\n0\n1\n1\n0\n0\n")
  toy = graphs.load_tu_dataset("TOY", root, use_node_attributes=True)
  assert toy.labels.tolist() == [0, 1] and toy.num_nodes.tolist() == [3, 2]
  np.testing.assert_array_equal(toy.node_features[:, :3], np.eye(3)[[0, 1, 0, 1, 2]])
  np.testing.assert_allclose(toy.node_features[:, 3], [0.5, 1.5, 2, 3, 4])
  assert toy.senders.tolist() == [0, 1, 1, 2, 0, 1] and toy.edge_labels.tolist() == [0, 0, 1, 1, 0, 0]
  bare = graphs.load_tu_dataset("TOY", write_dataset(tmp_path / "bare"), max_degree=3)
  np.testing.assert_array_equal(bare.node_features, np.eye(4)[[1, 2, 1, 1, 1]])  # degree one-hot
  constant = graphs.load_tu_dataset("TOY", str(tmp_path / "bare"), missing_features="constant")
  np.testing.assert_array_equal(constant.node_features, np.ones((5, 1)))


@pytest.mark.parametrize("overrides, match", [
    ({"indicator": "1\n2\n1\n2\n2\n"}, r"graph_indicator.txt:3: graph ids must start at 1 and never"),
    ({"indicator": "1\n1\n1\n3\n3\n", "labels": "0\n1\n0\n"}, r"graph 2 has no nodes"),
    ({"labels": "1\n"}, "has 1 labels for 2 graphs"),
    ({"edges": "1, 4\n"}, "an edge joins nodes of two different graphs"),
    ({"edges": "1, 9\n"}, r"node ids must lie in \[1, 5\]"),
    ({"node_labels": "1\n2\n"}, "has 2 rows for 5 nodes"),
    ({"edges": "1; 2\n"}, r"TOY_A.txt:1: expected comma-separated integers, got '1; 2'"),
    ({"edges": "1, 2\n2, 1\n2, x\n"}, r"TOY_A.txt:3: expected comma-separated integers, got '2, x'"),
    ({"edges": "1, 2\n2, 1\n2\n"}, r"TOY_A.txt:3: expected 2 comma-separated field\(s\) like line 1, got 1"),
    ({"edge_labels": "0\n0\n1\n"}, r"TOY_edge_labels.txt has 3 rows for the 6 edges of .*TOY_A.txt"),
    ({"attributes": "0.5\n1.5\nabc\n3\n4\n"},
     r"TOY_node_attributes.txt:3: expected comma-separated numbers, got 'abc'"),
])
def test_malformed_files_name_the_file_and_the_rule(tmp_path, overrides, match):
  with pytest.raises(ValueError, match=match):
    graphs.load_tu_dataset("TOY", write_dataset(tmp_path, **overrides), use_node_attributes=True)


def test_a_file_that_is_not_utf8_names_the_line_and_the_byte(tmp_path):
  root = write_dataset(tmp_path)
  (tmp_path / "TOY" / "TOY_graph_labels.txt").write_bytes(b"-1\n\xff1\n")
  with pytest.raises(ValueError, match=r"TOY_graph_labels.txt:2: not UTF-8 text .*byte 0xff at offset 3"):
    graphs.load_tu_dataset("TOY", root)


def test_missing_dataset_or_file_says_where_to_download(tmp_path):
  with pytest.raises(graphs.GraphDataNotFoundError, match="chrsmrrs.com/graphkerneldatasets/DD.zip"):
    graphs.load_tu_dataset("DD", str(tmp_path))
  root = write_dataset(tmp_path)
  os.remove(tmp_path / "TOY" / "TOY_graph_labels.txt")
  with pytest.raises(graphs.GraphDataNotFoundError, match="TOY_graph_labels.txt is missing"):
    graphs.load_tu_dataset("TOY", root)
  with pytest.raises(ValueError, match="missing_features='zeros'"):
    graphs.load_tu_dataset("TOY", root, missing_features="zeros")


# -- padded batches and the pipeline ---------------------------------------------------------------


@pytest.fixture(scope="module")
def mutag():
  return graphs.load_tu_dataset("MUTAG", graphs.grakel_mutag_dir())


def test_pad_graphs_holds_each_graph_at_local_ids_and_nothing_else(mutag):
  index = np.array([5, 0, 187, 5])
  batch = graphs.pad_graphs(mutag, index, num_nodes=32, num_edges=72)
  assert batch["nodes"].shape == (4, 32, 7) and batch["senders"].shape == (4, 72)
  for b, g in enumerate(index):
    x, s, r = mutag.graph(g)
    n, e = len(x), len(s)
    np.testing.assert_array_equal(batch["nodes"][b, :n], x)
    np.testing.assert_array_equal(batch["senders"][b, :e], s)
    np.testing.assert_array_equal(batch["receivers"][b, :e], r)
    assert batch["node_mask"][b].sum() == n and batch["node_mask"][b, :n].all()
    assert batch["edge_mask"][b].sum() == e and batch["edge_mask"][b, :e].all()
    assert not batch["nodes"][b, n:].any() and not batch["senders"][b, e:].any()
  with pytest.raises(ValueError, match="does not fit num_nodes=16"):
    graphs.pad_graphs(mutag, index, num_nodes=16, num_edges=72)


def test_size_buckets_are_few_and_every_graph_fits_its_bucket(mutag):
  buckets = graphs.SizeBuckets.for_dataset(mutag)
  assert buckets.nodes == (8, 16, 32)  # MUTAG's largest graph has 28 nodes
  bucket = buckets.bucket_of(mutag.num_nodes)
  assert np.all(np.asarray(buckets.nodes)[bucket] >= mutag.num_nodes)
  assert np.all(np.asarray(buckets.edges)[bucket] >= mutag.num_edges)
  above = bucket > 0  # the smallest bucket that fits: the one below is too small
  assert above.any() and np.all(np.asarray(buckets.nodes)[bucket[above] - 1] < mutag.num_nodes[above])
  with pytest.raises(ValueError, match="largest bucket holds 32"):
    buckets.bucket_of(np.array([33]))


def elements(dataset, batches, **kwargs):
  kwargs = {"buckets": graphs.SizeBuckets.for_dataset(dataset), "seed": 3, "window": 2, **kwargs}
  return list(graphs.pretrain_dataset(dataset, batches, **kwargs).as_numpy_iterator())


def test_pretrain_dataset_pads_each_row_to_its_global_bucket_split_over_processes(mutag):
  rng = np.random.default_rng(0)
  batches = rng.permutation(188)[:160].reshape(10, 16).astype(np.int32)
  whole = elements(mutag, batches)
  buckets = graphs.SizeBuckets.for_dataset(mutag)
  assert len(whole) == 10
  for row, element in zip(batches, whole):
    np.testing.assert_array_equal(element["index"], row)
    want = buckets.nodes[int(buckets.bucket_of(mutag.num_nodes[row].max()))]
    assert element["graphs"]["nodes"].shape == (16, want, 7)
    np.testing.assert_array_equal(element["graphs"]["node_mask"].sum(1), mutag.num_nodes[row])
  assert len({e["graphs"]["nodes"].shape for e in whole}) <= len(buckets.nodes)
  # Two processes: each takes half the columns, padded like the whole row, with the same keys.
  halves = [elements(mutag, batches, process_index=p, process_count=2) for p in (0, 1)]
  for element, first, second in zip(whole, *halves):
    for key in ("nodes", "senders", "edge_mask"):
      np.testing.assert_array_equal(np.concatenate([first["graphs"][key], second["graphs"][key]]),
                                    element["graphs"][key])
    np.testing.assert_array_equal(np.concatenate([first["key"], second["key"]]), element["key"])
  # Resuming at row 7 gives rows 7, 8, 9 exactly, keys included.
  resumed = elements(mutag, batches, start_batch=7)
  for a, b in zip(resumed, whole[7:]):
    np.testing.assert_array_equal(a["key"], b["key"])
    np.testing.assert_array_equal(a["graphs"]["nodes"], b["graphs"]["nodes"])


def test_augmentation_keys_are_distinct_per_item_and_change_with_seed_and_window(mutag):
  batches = np.arange(64, dtype=np.int32).reshape(4, 16)
  keys = np.concatenate([e["key"] for e in elements(mutag, batches)])
  assert len({tuple(k) for k in keys}) == 64
  for change in ({"seed": 4}, {"window": 3}):
    other = np.concatenate([e["key"] for e in elements(mutag, batches, **change)])
    assert not np.any(np.all(other == keys, axis=1)), change


def test_eval_batches_cover_every_graph_once_with_padding_marked(mutag):
  buckets = graphs.SizeBuckets.for_dataset(mutag)
  seen, labels = [], []
  for batch in graphs.eval_batches(mutag, batch_size=50, buckets=buckets):
    real = batch["index"] >= 0
    seen += batch["index"][real].tolist()
    labels += batch["label"][real].tolist()
    assert np.all(batch["label"][~real] == -1)
    np.testing.assert_array_equal(batch["inputs"]["node_mask"].sum(1)[real],
                                  mutag.num_nodes[batch["index"][real]])
  assert seen == list(range(188)) and labels == mutag.labels.tolist()


def test_self_loops_go_on_every_node_below_the_largest_edge_end_as_graphcls_loader_adds_them(tmp_path):
  # Graph 1: a path 0-1-2 (largest end 2: loops on 0, 1); graph 2: no edges (no loops); graph 3: an
  # edge 0-1 and two nodes no edge names (largest end 1: a loop on 0 only).
  root = write_dataset(tmp_path, indicator="1\n1\n1\n2\n3\n3\n3\n3\n", labels="0\n1\n0\n",
                       edges="1, 2\n2, 1\n2, 3\n3, 2\n5, 6\n6, 5\n", edge_labels="1\n1\n2\n2\n3\n3\n")
  toy = graphs.load_tu_dataset("TOY", root)
  looped = graphs.with_self_loops(toy)
  assert looped.num_edges.tolist() == [6, 0, 3]
  pairs = lambda g: list(zip(*[a.tolist() for a in looped.graph(g)[1:]]))
  assert pairs(0) == [(0, 1), (1, 0), (1, 2), (2, 1), (0, 0), (1, 1)]  # its own edges, then the loops
  assert pairs(1) == [] and pairs(2) == [(0, 1), (1, 0), (0, 0)]
  assert looped.edge_labels.tolist() == [1, 1, 2, 2, -1, -1, 3, 3, -1]
  np.testing.assert_array_equal(looped.node_features, toy.node_features)
  assert graphs.with_self_loops(toy, "none") is toy
  with pytest.raises(ValueError, match=r"self_loops='all'.*allowed.*none.*all_but_last"):
    graphs.with_self_loops(toy, "all")


def test_self_loops_reach_the_share_of_nodes_graphcls_released_code_gives_mutag():
  mutag = graphs.load_tu_dataset("MUTAG", graphs.grakel_mutag_dir())
  looped = graphs.with_self_loops(mutag)
  for g in range(len(mutag)):
    _, s, r = looped.graph(g)
    loops = s[s == r]
    assert loops.tolist() == list(range(int(mutag.graph(g)[1].max())))
  assert round(float((looped.num_edges - mutag.num_edges).sum() / mutag.num_nodes.sum()), 3) == 0.944
