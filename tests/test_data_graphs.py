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
    ({"edges": "1; 2\n"}, "expected comma-separated integers"),
])
def test_malformed_files_name_the_file_and_the_rule(tmp_path, overrides, match):
  with pytest.raises(ValueError, match=match):
    graphs.load_tu_dataset("TOY", write_dataset(tmp_path, **overrides))


def test_missing_dataset_or_file_says_where_to_download(tmp_path):
  with pytest.raises(graphs.GraphDataNotFoundError, match="chrsmrrs.com/graphkerneldatasets/DD.zip"):
    graphs.load_tu_dataset("DD", str(tmp_path))
  root = write_dataset(tmp_path)
  os.remove(tmp_path / "TOY" / "TOY_graph_labels.txt")
  with pytest.raises(graphs.GraphDataNotFoundError, match="TOY_graph_labels.txt is missing"):
    graphs.load_tu_dataset("TOY", root)
  with pytest.raises(ValueError, match="missing_features='zeros'"):
    graphs.load_tu_dataset("TOY", root, missing_features="zeros")
