"""GIN encoder and projection head of GraphCL's unsupervised TU code, on padded graph batches.

Ports Shen-Lab/GraphCL ``unsupervised_TU/gin.py`` (``Encoder``) and ``gsimclr.py`` (``simclr``): L GIN
layers ``h' = BN(ReLU(MLP((1 + eps)·h_i + Σ_{j→i} h_j)))`` with ``eps = 0`` (PyG's ``GINConv`` default,
not trained) and ``MLP = Linear → ReLU → Linear``; the readout sums every layer's node states over each
graph (``global_add_pool``) and concatenates them → ``[B, L·hidden]``. The projection head is
``Linear(D, D) → ReLU → Linear(D, D)``. Every Linear has a Xavier-uniform kernel and a zero bias
(GraphCL's ``init_emb``). The defaults (3 layers, hidden 32) are GraphCL's ``go.sh``.

A batch is a dict of padded arrays whose leading axis is the graph (see :func:`check_graphs`):

- ``nodes``: float [B, n, F] node features (padding rows are ignored, whatever they hold);
- ``node_mask``: bool [B, n], the real nodes;
- ``senders``, ``receivers``: int [B, e], endpoints as node ids local to the graph, in [0, n); a
  message flows from sender to receiver (undirected graphs list both directions);
- ``edge_mask``: bool [B, e], the real edges.

An edge counts only if ``edge_mask`` is True, both ids lie in [0, n) and both endpoints are real nodes
(``node_mask``). A view can thus drop a node by clearing its ``node_mask`` bit alone: its edges then
vanish with it, as if node and edges had been deleted (masked rows are held at zero in every layer, so
they send nothing, and are left out of BatchNorm's statistics and of the readout).

Every intermediate keeps the graph axis B first (aggregation is a scatter-add vmapped over graphs), so
a batch sharded over ``'data'`` stays sharded under ``jax.jit``; BatchNorm statistics are then taken
over the real nodes of the global batch, as PyG's BatchNorm over the concatenated node matrix.

Where and why this differs from GraphCL's code:

- No self-loops. GraphCL's ``TUDataset_aug.get`` appends an edge ``(i, i)`` for every node id below
  ``edge_index.max()``, i.e. every node but the highest-numbered one, so those nodes see ``2·h_i`` and
  the last one ``h_i``. That is a data-loading artefact: GIN's ``(1 + eps)·h_i`` already includes the
  node itself, and a pipeline that wants GraphCL's exact graphs can list the self-loops as edges.
- BatchNorm running variance: torch's ``running_var`` tracks the unbiased batch variance
  (``N/(N−1)`` times the biased one), flax's the biased one. Training-mode outputs are identical (both
  normalise with the biased variance); eval-mode outputs differ by that factor, negligible for the
  hundreds of nodes in a batch. Momentum 0.1 (torch) is flax's 0.9, epsilon 1e-5 as torch; statistics
  are computed two-pass (``use_fast_variance=False``) as torch does.
- Dropped nodes are masked, not removed: GraphCL's training loop deletes nodes an augmentation left
  without edges and renumbers the rest; here the augmented view clears ``node_mask`` bits and keeps
  the shapes static. BatchNorm statistics and readout cover the real nodes only, so the two agree.
- Featureless graphs: GraphCL substitutes ``ones((num_nodes, 1))`` when ``x is None``; here the data
  pipeline supplies the features (``prosampler_jax.data.graphs``, ``missing_features="constant"``).

In training mode the batch must hold at least one real node (BatchNorm's statistics are a mean over
real nodes).
"""

from __future__ import annotations

from collections.abc import Mapping

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from prosampler_jax import _checks

GRAPH_KEYS = ("nodes", "node_mask", "senders", "receivers", "edge_mask")
GIN_EPS = 0.0  # PyG GINConv(eps=0, train_eps=False), as GraphCL builds it.

_xavier_uniform = nnx.initializers.xavier_uniform()


def _linear(in_features: int, out_features: int, *, dtype, rngs: nnx.Rngs) -> nnx.Linear:
  """GraphCL's ``init_emb``: Xavier-uniform kernel, zero bias."""
  return nnx.Linear(in_features, out_features, kernel_init=_xavier_uniform,
                    bias_init=nnx.initializers.zeros_init(), dtype=dtype, rngs=rngs)


def check_graphs(graphs, *, in_features: int | None = None) -> tuple[int, int, int]:
  """Validates a padded graph batch; returns ``(B, n, e)`` or raises ValueError naming the key.

  Shapes and dtypes only (the values may be traced): ``nodes`` float [B, n, F] (F = ``in_features``
  when given), ``node_mask`` bool [B, n], ``senders`` / ``receivers`` integer [B, e], ``edge_mask``
  bool [B, e]. Extra keys (labels, indices) are allowed and ignored.
  """
  if not isinstance(graphs, Mapping):
    raise ValueError(f"graphs must be a dict with keys {', '.join(GRAPH_KEYS)}; got "
                     f"{type(graphs).__name__}.")
  missing = [key for key in GRAPH_KEYS if key not in graphs]
  if missing:
    raise ValueError(f"graphs is missing key(s) {', '.join(map(repr, missing))}; required: "
                     f"{', '.join(GRAPH_KEYS)}.")
  for key in GRAPH_KEYS:
    if not hasattr(graphs[key], "shape") or not hasattr(graphs[key], "dtype"):
      raise ValueError(f"graphs[{key!r}] must be an array, got {type(graphs[key]).__name__}.")

  nodes = graphs["nodes"]
  f_text = "F" if in_features is None else str(in_features)
  if nodes.ndim != 3:
    raise ValueError(f"graphs['nodes'] must have rank 3 [B, n, {f_text}], got shape {tuple(nodes.shape)}.")
  if not jnp.issubdtype(nodes.dtype, jnp.floating):
    raise ValueError(f"graphs['nodes'] must have a floating dtype, got {nodes.dtype}.")
  batch, num_nodes, features = nodes.shape
  if in_features is not None and features != in_features:
    raise ValueError(f"graphs['nodes'] has F={features} features but the model was built for "
                     f"in_features={in_features}; expected shape [B, n, {in_features}], got "
                     f"{tuple(nodes.shape)}.")

  def check(key: str, shape: tuple[int | None, ...], names: str, kind: str):
    array = graphs[key]
    ok_shape = array.ndim == len(shape) and all(s is None or a == s for a, s in zip(array.shape, shape))
    if not ok_shape:
      expected = ", ".join("?" if s is None else str(s) for s in shape)
      raise ValueError(f"graphs[{key!r}] must have shape {names} = [{expected}] (B and n from "
                       f"graphs['nodes'] {tuple(nodes.shape)}), got {tuple(array.shape)}.")
    ok_dtype = (array.dtype == np.bool_ if kind == "bool" else jnp.issubdtype(array.dtype, jnp.integer))
    if not ok_dtype:
      raise ValueError(f"graphs[{key!r}] must have dtype {kind}, got {array.dtype}.")

  check("node_mask", (batch, num_nodes), "[B, n]", "bool")
  check("senders", (batch, None), "[B, e]", "integer")
  num_edges = graphs["senders"].shape[1]
  check("receivers", (batch, num_edges), "[B, e]", "integer")
  check("edge_mask", (batch, num_edges), "[B, e]", "bool")
  return batch, num_nodes, num_edges


def _edge_validity(edge_mask: jax.Array, senders: jax.Array, receivers: jax.Array,
                   num_nodes: int) -> jax.Array:
  """bool [B, e]: edge_mask AND both ids in [0, n).

  Edges touching a masked node need no test here: masked rows are zero in every layer's input, so
  they send nothing, and whatever they receive is zeroed with them after the layer.
  """
  in_range = (senders >= 0) & (senders < num_nodes) & (receivers >= 0) & (receivers < num_nodes)
  return edge_mask & in_range


def _aggregate(h: jax.Array, senders: jax.Array, receivers: jax.Array, valid: jax.Array) -> jax.Array:
  """``Σ_{j→i} h_j`` over valid edges, per graph: [B, n, H] (vmapped, so B stays the leading axis)."""

  def one_graph(h, senders, receivers, valid):
    # Out-of-range senders are clipped for the gather only (valid is False for them); out-of-range
    # receivers are dropped by segment_sum.
    messages = jnp.where(valid[:, None], h[jnp.clip(senders, 0, h.shape[0] - 1)], 0)
    return jax.ops.segment_sum(messages, receivers, num_segments=h.shape[0])

  return jax.vmap(one_graph)(h, senders, receivers, valid)


class _GINLayer(nnx.Module):
  """GINConv (eps = 0, MLP Linear → ReLU → Linear) → ReLU → BatchNorm over the real nodes.

  ReLU before BatchNorm is GraphCL's order (the GIN paper normalises first).
  """

  def __init__(self, in_features: int, hidden: int, *, dtype, rngs: nnx.Rngs):
    self.linear1 = _linear(in_features, hidden, dtype=dtype, rngs=rngs)
    self.linear2 = _linear(hidden, hidden, dtype=dtype, rngs=rngs)
    self.norm = nnx.BatchNorm(hidden, momentum=0.9, epsilon=1e-5, use_fast_variance=False, dtype=dtype,
                              rngs=rngs)

  def __call__(self, h: jax.Array, senders: jax.Array, receivers: jax.Array, edge_valid: jax.Array,
               node_mask: jax.Array) -> jax.Array:
    x = (1.0 + GIN_EPS) * h + _aggregate(h, senders, receivers, edge_valid)
    x = nnx.relu(self.linear2(nnx.relu(self.linear1(x))))
    x = self.norm(x, mask=node_mask[..., None])
    # Padding rows leave BN as ``bias - mean·scale/std``: zero them so the sum readout ignores them.
    return jnp.where(node_mask[..., None], x, 0)


class GIN(nnx.Module):
  """GraphCL's GIN ``Encoder``: padded graph batch (see module doc) → [B, num_layers·hidden] float32.

  ``dtype`` is the compute dtype; parameters and the readout are float32. BatchNorm follows
  ``.train()`` (statistics over the batch's real nodes) / ``.eval()`` (running averages).
  """

  def __init__(self, in_features: int, *, hidden: int = 32, num_layers: int = 3, dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.in_features = _checks.check_int("in_features", in_features, low=1)
    self.hidden = _checks.check_int("hidden", hidden, low=1)
    self.num_layers = _checks.check_int("num_layers", num_layers, low=1)
    layers = []
    features = self.in_features
    for _ in range(self.num_layers):
      layers.append(_GINLayer(features, self.hidden, dtype=dtype, rngs=rngs))
      features = self.hidden
    self.layers = nnx.List(layers)
    self.num_features = self.num_layers * self.hidden

  def __call__(self, graphs: dict) -> jax.Array:
    check_graphs(graphs, in_features=self.in_features)
    node_mask = jnp.asarray(graphs["node_mask"])
    senders, receivers = jnp.asarray(graphs["senders"]), jnp.asarray(graphs["receivers"])
    edge_valid = _edge_validity(jnp.asarray(graphs["edge_mask"]), senders, receivers, node_mask.shape[1])
    # Masked rows may hold anything (even inf/NaN) and stay zero in every layer: a masked node sends
    # nothing along its edges, and is absent from BatchNorm's statistics and from the readout.
    h = jnp.where(node_mask[..., None], jnp.asarray(graphs["nodes"]), 0)
    pooled = []
    for layer in self.layers:
      h = layer(h, senders, receivers, edge_valid, node_mask)
      pooled.append(jnp.sum(h.astype(jnp.float32), axis=1))  # global_add_pool (padding rows are 0)
    return jnp.concatenate(pooled, axis=-1)


class GraphCLHead(nnx.Module):
  """GraphCL's ``proj_head``: Linear(D, D) → ReLU → Linear(D, D) (no BatchNorm), float32 output."""

  def __init__(self, features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.features = _checks.check_int("features", features, low=1)
    self.linear1 = _linear(self.features, self.features, dtype=dtype, rngs=rngs)
    self.linear2 = _linear(self.features, self.features, dtype=dtype, rngs=rngs)

  def __call__(self, h: jax.Array) -> jax.Array:
    return self.linear2(nnx.relu(self.linear1(h))).astype(jnp.float32)


class GraphCLModel(nnx.Module):
  """GraphCL's ``simclr`` model: :class:`GIN` encoder, then :class:`GraphCLHead` of the same width.

  :meth:`encode` gives the readout (GraphCL evaluates embeddings before the head); calling the model
  gives the head's projections (what the loss uses).
  """

  def __init__(self, in_features: int, *, hidden: int = 32, num_layers: int = 3, dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.encoder = GIN(in_features, hidden=hidden, num_layers=num_layers, dtype=dtype, rngs=rngs)
    self.head = GraphCLHead(self.encoder.num_features, dtype=dtype, rngs=rngs)

  @property
  def num_features(self) -> int:
    """Width of the readout returned by :meth:`encode` (``num_layers · hidden``)."""
    return self.encoder.num_features

  def encode(self, graphs: dict) -> jax.Array:
    """The GIN readout [B, num_layers·hidden] float32 (what evaluation uses)."""
    return self.encoder(graphs)

  def __call__(self, graphs: dict) -> jax.Array:
    """``head(encode(graphs))`` [B, num_layers·hidden] float32 (what the contrastive loss uses)."""
    return self.head(self.encoder(graphs))
