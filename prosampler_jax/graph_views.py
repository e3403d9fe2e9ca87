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

Two settings follow GraphCL's released unsupervised TU code (Shen-Lab/GraphCL ``unsupervised_TU``:
``aug.py``, ``gsimclr.py``) where it departs from the paper's description; the ``released_code`` recipe of
``experiments/configs/graphcl_base.py`` turns them on, with its 10% ``ratio`` and the self-loops of
``data/graphs.with_self_loops``:

- ``subgraph="start_neighbours"``: the view keeps the start node and ⌊0.2·n⌋ of its direct neighbours
  (all of them when it has fewer), chosen uniformly. The released code means to grow a piece of 20% of
  the nodes, but the ``set.union`` that should add each new node's neighbours discards its result, so
  only the start's neighbours are ever candidates (its 0.2 is fixed; ``ratio`` does not change it). The
  released loop also gives up after n draws with repetition; we always complete the draw.
  ``subgraph="grow"`` (the default) is the paper's: a connected piece of n − ⌊ratio·n⌋ nodes.
- ``drop_unlinked=True``: after augmenting, a view loses every node that no edge entry touches any more
  (self-loops count), and then its self-loop entries, as ``gsimclr.py`` rebuilds each augmented batch
  before encoding. The released code does this for ``dnodes``, ``subgraph`` and ``random2``–``random4``
  but not for ``pedges`` or ``mask_nodes`` alone; here it applies to every augmented view (the recipe
  uses ``random4``, where the two agree). ``view="none"`` is never changed.
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
SUBGRAPHS = ("grow", "start_neighbours")
RELEASED_SUBGRAPH_SHARE = 0.2  # the share of n "start_neighbours" keeps besides the start (aug.py's 0.2)


def check_view(name: str, value: str) -> str:
  """``value`` is a known augmentation or random choice; the error names ``name``."""
  return _checks.check_choice(name, value, VIEWS)


def check_ratio(name: str, value) -> float:
  """A perturbed fraction in [0, 1)."""
  return _checks.check_float(name, value, low=0.0, high=1.0, high_open=True)


def check_subgraph(name: str, value: str) -> str:
  """``value`` is a known subgraph style; the error names ``name``."""
  return _checks.check_choice(name, value, SUBGRAPHS)


def augment(graphs: dict, keys: jax.Array, *, view: str, ratio: float = 0.2, subgraph: str = "grow",
            drop_unlinked: bool = False) -> dict:
  """One view of every graph of a padded batch; ``keys`` holds one PRNG key per graph (``[B]``).
  ``subgraph`` and ``drop_unlinked``: see the module docstring (the released code's settings)."""
  check_view("view", view)
  ratio = check_ratio("ratio", ratio)
  check_subgraph("subgraph", subgraph)
  drop_unlinked = _checks.check_bool("drop_unlinked", drop_unlinked)
  check_graphs(graphs)
  if view == "none":
    return dict(graphs)
  single = {k: graphs[k] for k in GRAPH_KEYS}
  out = jax.vmap(lambda g, key: _one_view(g, key, view, ratio, subgraph, drop_unlinked))(single, keys)
  return {**graphs, **out}


def _one_view(graph: dict, key: jax.Array, view: str, ratio: float, subgraph: str,
              drop_unlinked: bool) -> dict:
  augmentations = {**_AUGMENT, "subgraph": _SUBGRAPH[subgraph]}
  if view in RANDOM_CHOICES:
    options = RANDOM_CHOICES[view]
    choice_key, key = jax.random.split(key)
    choice = jax.random.randint(choice_key, (), 0, len(options))
    branches = [lambda g, k, name=name: augmentations[name](g, k, ratio) for name in options]
    graph = jax.lax.switch(choice, branches, graph, key)
  else:
    graph = augmentations[view](graph, key, ratio)
  return _without_unlinked(graph) if drop_unlinked else graph


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


def _start_neighbours(graph: dict, key: jax.Array, ratio: float) -> dict:
  """The start node and ⌊0.2·n⌋ of its direct neighbours (the released code's subgraph; ``ratio``
  unused)."""
  del ratio
  real = graph["node_mask"]
  start_key, pick_key = jax.random.split(key)
  start = _uniform_subset(start_key, real, jnp.ones(()))
  out_of_start = start[graph["senders"]] & _live_edges(graph)
  neighbours = jnp.zeros_like(real).at[graph["receivers"]].max(out_of_start) & real & ~start
  count = jnp.floor(RELEASED_SUBGRAPH_SHARE * jnp.sum(real))
  return _with_nodes(graph, start | _uniform_subset(pick_key, neighbours, count))


def _without_unlinked(graph: dict) -> dict:
  """The graph without the nodes no live edge entry touches, then without its self-loop entries."""
  live = _live_edges(graph)
  touched = lambda ends: jnp.zeros_like(graph["node_mask"]).at[ends].max(live)
  graph = _with_nodes(graph, graph["node_mask"] & (touched(graph["senders"]) | touched(graph["receivers"])))
  return {**graph, "edge_mask": graph["edge_mask"] & (graph["senders"] != graph["receivers"])}


_AUGMENT = {"node_drop": _node_drop, "edge_perturb": _edge_perturb, "attr_mask": _attr_mask,
            "subgraph": _subgraph}
_SUBGRAPH = {"grow": _subgraph, "start_neighbours": _start_neighbours}


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
