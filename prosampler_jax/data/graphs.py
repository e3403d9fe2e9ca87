"""TU graph datasets (Morris et al., chrsmrrs.github.io/datasets) in their text format, for GraphCL.

A dataset ``NAME`` lives in ``data_dir/NAME/`` (or ``data_dir/NAME/raw/``, PyG's layout) as:

- ``NAME_A.txt``: one edge per line, ``i, j`` with 1-based node ids over the whole dataset (undirected
  graphs list both directions);
- ``NAME_graph_indicator.txt``: line i = the 1-based graph of node i, non-decreasing;
- ``NAME_graph_labels.txt``: one class label per graph (any integers; mapped to 0 … C−1 in sorted order);
- optional ``NAME_node_labels.txt`` (one-hot over the dataset's sorted label values),
  ``NAME_node_attributes.txt`` (comma-separated floats), ``NAME_edge_labels.txt`` (one per edge line).

Node features, as GraphCL's TU loader builds them: the node-label one-hot (continuous attributes are
appended only with ``use_node_attributes``, GraphCL leaves them out). Graphs without node labels or
attributes get ``missing_features``: ``"degree"`` (one-hot of min(degree, max_degree)) or ``"constant"``
(a single 1, what GraphCL's unsupervised TU code uses for e.g. COLLAB or IMDB-BINARY).

MUTAG ships inside the ``grakel`` wheel (``grakel/tests/data/MUTAG/``); :func:`grakel_mutag_dir` finds it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np

from prosampler_jax import _checks

MISSING_FEATURES = ("degree", "constant")
_DOWNLOAD = ("Download {name}.zip from https://www.chrsmrrs.com/graphkerneldatasets/{name}.zip (the TU "
             "Dortmund collection, chrsmrrs.github.io/datasets) and unzip it into config.data_dir, so that "
             "{folder}/{name}_A.txt exists.")


class GraphDataNotFoundError(FileNotFoundError):
  """A TU dataset's required file is missing; the message says where to get it."""


@dataclasses.dataclass(frozen=True)
class GraphDataset:
  """Graphs as flat arrays: graph g owns nodes ``node_offsets[g]:node_offsets[g+1]`` and edges
  ``edge_offsets[g]:edge_offsets[g+1]`` (edge endpoints are node ids *within* their graph)."""
  name: str
  node_features: np.ndarray   # float32 [total_nodes, F]
  senders: np.ndarray         # int32 [total_edges], local ids
  receivers: np.ndarray       # int32 [total_edges], local ids
  node_offsets: np.ndarray    # int64 [G + 1]
  edge_offsets: np.ndarray    # int64 [G + 1]
  labels: np.ndarray          # int32 [G], 0 … num_classes − 1
  edge_labels: np.ndarray | None = None  # int32 [total_edges] or None

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def num_classes(self) -> int:
    return int(self.labels.max()) + 1 if len(self.labels) else 0

  @property
  def num_nodes(self) -> np.ndarray:
    return np.diff(self.node_offsets)

  @property
  def num_edges(self) -> np.ndarray:
    return np.diff(self.edge_offsets)

  def graph(self, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(node features [n, F], senders [e], receivers [e]) of graph ``g``."""
    nodes = slice(self.node_offsets[g], self.node_offsets[g + 1])
    edges = slice(self.edge_offsets[g], self.edge_offsets[g + 1])
    return self.node_features[nodes], self.senders[edges], self.receivers[edges]


def grakel_mutag_dir() -> str:
  """The MUTAG folder inside the installed ``grakel`` package (not imported)."""
  spec = importlib.util.find_spec("grakel")
  if spec is None or spec.origin is None:
    raise GraphDataNotFoundError("MUTAG offline comes with grakel: pip install --no-deps grakel==0.1.11 "
                                 "(./run.sh installs it).")
  return os.path.join(os.path.dirname(spec.origin), "tests", "data")


def load_tu_dataset(name: str, data_dir: str, *, use_node_attributes: bool = False,
                    missing_features: str = "degree", max_degree: int = 64) -> GraphDataset:
  """Reads TU dataset ``name`` from ``data_dir/name/`` (or its ``raw/`` subfolder)."""
  _checks.check_choice("missing_features", missing_features, MISSING_FEATURES)
  max_degree = _checks.check_int("max_degree", max_degree, low=1)
  folder = _find_folder(name, data_dir)
  path = lambda part: os.path.join(folder, f"{name}_{part}.txt")

  indicator = _read_ints(path("graph_indicator"), name, folder)[:, 0]
  if len(indicator) == 0:
    raise ValueError(f"{path('graph_indicator')} is empty; allowed: one graph id per node.")
  steps = np.diff(indicator)
  if indicator[0] != 1 or np.any(steps < 0):
    line = 1 if indicator[0] != 1 else int(np.flatnonzero(steps < 0)[0]) + 2
    raise ValueError(f"{path('graph_indicator')}:{line}: graph ids must start at 1 and never decrease "
                     "(nodes are listed graph by graph).")
  if np.any(steps > 1):
    line = int(np.flatnonzero(steps > 1)[0]) + 1
    raise ValueError(f"{path('graph_indicator')}:{line + 1}: graph {indicator[line - 1] + 1} has no nodes "
                     "(ids skip it); allowed: every graph has at least one node.")
  num_graphs = int(indicator[-1])
  graph_of_node = indicator - 1
  node_offsets = np.concatenate([[0], np.cumsum(np.bincount(graph_of_node, minlength=num_graphs))])

  raw_labels = _read_ints(path("graph_labels"), name, folder)[:, 0]
  if len(raw_labels) != num_graphs:
    raise ValueError(f"{path('graph_labels')} has {len(raw_labels)} labels for {num_graphs} graphs; "
                     "allowed: one label per graph.")
  labels = np.searchsorted(np.unique(raw_labels), raw_labels).astype(np.int32)

  edges = _read_ints(path("A"), name, folder) - 1
  if edges.shape[1] != 2:
    raise ValueError(f"{path('A')}: expected 'i, j' per line, got {edges.shape[1]} field(s).")
  total_nodes = len(indicator)
  if len(edges) and (edges.min() < 0 or edges.max() >= total_nodes):
    raise ValueError(f"{path('A')}: node ids must lie in [1, {total_nodes}].")
  edge_graph = graph_of_node[edges[:, 0]] if len(edges) else np.zeros(0, np.int64)
  if len(edges) and np.any(edge_graph != graph_of_node[edges[:, 1]]):
    raise ValueError(f"{path('A')}: an edge joins nodes of two different graphs.")
  order = np.argsort(edge_graph, kind="stable")
  edges, edge_graph = edges[order], edge_graph[order]
  edge_offsets = np.concatenate([[0], np.cumsum(np.bincount(edge_graph, minlength=num_graphs))])
  local = edges - node_offsets[edge_graph][:, None]

  edge_labels = None
  if os.path.isfile(path("edge_labels")):
    edge_labels = _read_ints(path("edge_labels"), name, folder)[:, 0][order].astype(np.int32)

  features = []
  if os.path.isfile(path("node_labels")):
    node_labels = _read_ints(path("node_labels"), name, folder)[:, 0]
    _check_per_node(node_labels, total_nodes, path("node_labels"))
    values = np.unique(node_labels)
    features.append(np.eye(len(values), dtype=np.float32)[np.searchsorted(values, node_labels)])
  if use_node_attributes and os.path.isfile(path("node_attributes")):
    attributes = np.loadtxt(path("node_attributes"), delimiter=",", dtype=np.float32, ndmin=2)
    _check_per_node(attributes, total_nodes, path("node_attributes"))
    features.append(attributes)
  if not features:
    if missing_features == "constant":
      features.append(np.ones((total_nodes, 1), np.float32))
    else:
      degree = np.bincount(edges[:, 0], minlength=total_nodes) if len(edges) else np.zeros(total_nodes, int)
      features.append(np.eye(max_degree + 1, dtype=np.float32)[np.minimum(degree, max_degree)])
  return GraphDataset(name=name, node_features=np.concatenate(features, axis=1),
                      senders=local[:, 0].astype(np.int32), receivers=local[:, 1].astype(np.int32),
                      node_offsets=node_offsets.astype(np.int64),
                      edge_offsets=edge_offsets.astype(np.int64), labels=labels,
                      edge_labels=edge_labels)


def _find_folder(name: str, data_dir: str) -> str:
  for folder in (os.path.join(data_dir or "", name), os.path.join(data_dir or "", name, "raw")):
    if os.path.isfile(os.path.join(folder, f"{name}_A.txt")):
      return folder
  raise GraphDataNotFoundError(f"TU dataset {name!r} not found under {data_dir!r}. "
                               + _DOWNLOAD.format(name=name, folder=os.path.join(data_dir or "", name)))


def _read_ints(path: str, name: str, folder: str) -> np.ndarray:
  if not os.path.isfile(path):
    raise GraphDataNotFoundError(f"{path} is missing. " + _DOWNLOAD.format(name=name, folder=folder))
  try:
    return np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
  except ValueError as error:
    raise ValueError(f"{path}: expected comma-separated integers ({error}).") from None


def _check_per_node(values: np.ndarray, total_nodes: int, path: str) -> None:
  if len(values) != total_nodes:
    raise ValueError(f"{path} has {len(values)} rows for {total_nodes} nodes; allowed: one per node.")
