"""GraphCL's four graph augmentations (You et al. 2020) on padded graph batches, in JAX.

A batch is a dict of padded graphs (leading axis = graphs; the layout of ``models/gin.py``): ``nodes``
[B, n, F], ``node_mask`` [B, n], ``senders``/``receivers`` [B, e] (node ids local to the graph) and
``edge_mask`` [B, e]. A view keeps the shapes and changes only masks and features, so XLA compiles once
per padded size, and the views are made on the device inside the jitted step from one key per graph: a
pure function of the key.

``ratio`` is the fraction of the graph each augmentation perturbs (GraphCL's default 20%):

- ``node_drop``: ⌊ratio·n⌋ nodes chosen uniformly are removed with their edges;
- ``edge_perturb``: ⌊ratio·e⌋ edge entries chosen uniformly are removed (GraphCL's unsupervised TU code
  only removes edges; its edge *addition* is commented out, so we do the same);
- ``attr_mask``: the features of ⌊ratio·n⌋ uniformly chosen nodes are replaced by N(0.5, 0.5²) noise,
  as in GraphCL's ``mask_nodes``;
- ``subgraph``: a connected subgraph of n − ⌊ratio·n⌋ nodes grown from a uniformly chosen node. Each
  round a random half (at least one) of the current frontier joins, so the number of rounds grows with
  the graph's diameter rather than its size; growth stops early when the start's component is used up
  (GraphCL stops there too).
- ``random2`` / ``random3`` / ``random4``: per graph, one of {node_drop, subgraph} / {node_drop,
  edge_perturb, subgraph} / all four, uniformly — GraphCL's unsupervised TU ``--aug`` choices.

Where we differ from GraphCL's unsupervised TU code (aug.py): it drops/perturbs/masks 10% there but the
paper's and its other settings' default is 20% (``ratio``); its ``subgraph`` keeps 20% of the nodes and,
through a ``set.union`` whose result is discarded, only ever the start node's direct neighbours; it adds
self-loops to every node but the last. We implement the augmentations as the paper describes them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prosampler_jax import _checks
from prosampler_jax.models.gin import GRAPH_KEYS, check_graphs

AUGMENTATIONS = ("none", "node_drop", "edge_perturb", "attr_mask", "subgraph")
RANDOM_CHOICES = {
    "random2": ("node_drop", "subgraph"),
    "random3": ("node_drop", "edge_perturb", "subgraph"),
    "random4": ("node_drop", "edge_perturb", "subgraph", "attr_mask"),
}
VIEWS = AUGMENTATIONS + tuple(RANDOM_CHOICES)


def check_view(name: str, value: str) -> str:
  """``value`` is a known augmentation or random choice; the error names ``name``."""
  return _checks.check_choice(name, value, VIEWS)


def check_ratio(name: str, value) -> float:
  """A perturbed fraction in [0, 1)."""
  return _checks.check_float(name, value, low=0.0, high=1.0, high_open=True)


def augment(graphs: dict, keys: jax.Array, *, view: str, ratio: float = 0.2) -> dict:
  """One view of every graph of a padded batch; ``keys`` holds one PRNG key per graph (``[B]``)."""
  check_view("view", view)
  ratio = check_ratio("ratio", ratio)
  check_graphs(graphs)
  if view == "none":
    return dict(graphs)
  single = {k: graphs[k] for k in GRAPH_KEYS}
  out = jax.vmap(lambda g, key: _one_view(g, key, view, ratio))(single, keys)
  return {**graphs, **out}


def _one_view(graph: dict, key: jax.Array, view: str, ratio: float) -> dict:
  if view in RANDOM_CHOICES:
    options = RANDOM_CHOICES[view]
    choice_key, key = jax.random.split(key)
    choice = jax.random.randint(choice_key, (), 0, len(options))
    branches = [lambda g, k, name=name: _AUGMENT[name](g, k, ratio) for name in options]
    return jax.lax.switch(choice, branches, graph, key)
  return _AUGMENT[view](graph, key, ratio)


def _node_drop(graph: dict, key: jax.Array, ratio: float) -> dict:
  real = graph["node_mask"]
  drop = _uniform_subset(key, real, jnp.floor(ratio * jnp.sum(real)))
  return _with_nodes(graph, real & ~drop)


def _edge_perturb(graph: dict, key: jax.Array, ratio: float) -> dict:
  real = _live_edges(graph)
  drop = _uniform_subset(key, real, jnp.floor(ratio * jnp.sum(real)))
  return {**graph, "edge_mask": real & ~drop}


def _attr_mask(graph: dict, key: jax.Array, ratio: float) -> dict:
  real = graph["node_mask"]
  subset_key, noise_key = jax.random.split(key)
  masked = _uniform_subset(subset_key, real, jnp.floor(ratio * jnp.sum(real)))
  nodes = graph["nodes"]
  noise = 0.5 + 0.5 * jax.random.normal(noise_key, nodes.shape, jnp.float32)
  return {**graph, "nodes": jnp.where(masked[:, None], noise.astype(nodes.dtype), nodes)}


def _subgraph(graph: dict, key: jax.Array, ratio: float) -> dict:
  real = graph["node_mask"]
  edges = _live_edges(graph)
  size = jnp.sum(real)
  keep = size - jnp.floor(ratio * size).astype(size.dtype)
  start_key, grow_key = jax.random.split(key)
  start = _uniform_subset(start_key, real, jnp.ones(()))

  def frontier(member):
    touches = lambda a, b: jnp.zeros_like(member).at[b].max(member[a] & edges)
    return (touches(graph["senders"], graph["receivers"])
            | touches(graph["receivers"], graph["senders"])) & real & ~member

  def grow(carry):
    member, round_ = carry
    edge = frontier(member)
    room = keep - jnp.sum(member)
    wanted = jnp.minimum(room, jnp.maximum(1, (jnp.sum(edge) + 1) // 2))
    joins = _uniform_subset(jax.random.fold_in(grow_key, round_), edge, wanted)
    return member | joins, round_ + 1

  def not_done(carry):
    member, _ = carry
    return (jnp.sum(member) < keep) & jnp.any(frontier(member))

  member, _ = jax.lax.while_loop(not_done, grow, (start, jnp.zeros((), jnp.int32)))
  return _with_nodes(graph, member)


_AUGMENT = {"node_drop": _node_drop, "edge_perturb": _edge_perturb, "attr_mask": _attr_mask,
            "subgraph": _subgraph}


def _uniform_subset(key: jax.Array, eligible: jax.Array, count: jax.Array) -> jax.Array:
  """A uniformly random subset of ``count`` of the ``eligible`` positions (bool mask of the same shape)."""
  priority = jnp.where(eligible, jax.random.uniform(key, eligible.shape), 2.0)
  rank = jnp.argsort(jnp.argsort(priority))
  return eligible & (rank < count)


def _live_edges(graph: dict) -> jax.Array:
  """Edges that count: real, with both endpoints present."""
  mask = graph["node_mask"]
  return graph["edge_mask"] & mask[graph["senders"]] & mask[graph["receivers"]]


def _with_nodes(graph: dict, node_mask: jax.Array) -> dict:
  """The graph restricted to ``node_mask``: edges touching a removed node are removed too."""
  graph = {**graph, "node_mask": node_mask}
  return {**graph, "edge_mask": _live_edges(graph)}
