"""Tests for prosampler_jax.models.gin: GraphCL's GIN against a NumPy reference, invariances, sharding."""

from __future__ import annotations

import functools
import math

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import parallel
from prosampler_jax.models import gin

F = 3  # node features
HIDDEN, LAYERS = 32, 3  # GraphCL's go.sh


def _undirected(pairs, num_nodes: int, seed: int):
  """(features [n, F], senders, receivers) with both directions of every pair."""
  rng = np.random.default_rng(seed)
  pairs = np.asarray(pairs, np.int32).reshape(-1, 2)
  senders = np.concatenate([pairs[:, 0], pairs[:, 1]])
  receivers = np.concatenate([pairs[:, 1], pairs[:, 0]])
  return rng.normal(size=(num_nodes, F)).astype(np.float32), senders, receivers


def _graphs(seed: int = 0):
  """A triangle, a 4-node path, a single node (undirected) and a directed 4-node graph (0→1, 0→2, 0→3,
  3→1: messages flow sender → receiver); every graph has at most 6 edges."""
  directed_x = np.random.default_rng(seed + 3).normal(size=(4, F)).astype(np.float32)
  return [_undirected([(0, 1), (1, 2), (2, 0)], 3, seed),
          _undirected([(0, 1), (1, 2), (2, 3)], 4, seed + 1),
          _undirected([], 1, seed + 2),
          (directed_x, np.array([0, 0, 0, 3], np.int32), np.array([1, 2, 3, 1], np.int32))]


def _pad(graphs, num_nodes: int, num_edges: int, *, garbage: bool = False, node_masks=None) -> dict:
  """The padded batch layout; ``garbage`` fills padded node rows with huge values and gives padded
  edges random ids (real nodes included) instead of 0."""
  batch = len(graphs)
  rng = np.random.default_rng(123)
  out = {"nodes": np.zeros((batch, num_nodes, F), np.float32),
         "node_mask": np.zeros((batch, num_nodes), bool),
         "senders": np.zeros((batch, num_edges), np.int32),
         "receivers": np.zeros((batch, num_edges), np.int32),
         "edge_mask": np.zeros((batch, num_edges), bool)}
  if garbage:
    out["nodes"] = (1e6 * rng.normal(size=out["nodes"].shape)).astype(np.float32)
    out["senders"] = rng.integers(0, num_nodes, size=out["senders"].shape, dtype=np.int32)
    out["receivers"] = rng.integers(0, num_nodes, size=out["receivers"].shape, dtype=np.int32)
  for b, (x, s, r) in enumerate(graphs):
    n, e = len(x), len(s)
    out["nodes"][b, :n] = x
    out["node_mask"][b, :n] = True if node_masks is None else node_masks[b]
    out["senders"][b, :e], out["receivers"][b, :e] = s, r
    out["edge_mask"][b, :e] = True
  return out


def _assert_close(actual, expected):
  """float32 agreement to 1e-5 relative to the output's scale: BatchNorm over a dozen nodes divides by
  the small standard deviations of nearly-dead ReLU features, which amplifies round-off to ~1e-5."""
  expected = np.asarray(expected)
  np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()))


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, graphs):
  """(readout, projections, state after the call): functional, so the module itself is not updated."""
  model = nnx.merge(graphdef, state)
  features = model.encode(graphs)
  return features, model.head(features), nnx.state(model)


def _readout(model, graphs) -> np.ndarray:
  graphdef, state = nnx.split(model)
  return np.asarray(_forward(graphdef, state, graphs)[0])


def _model(seed: int = 0, *, randomize: bool = True) -> gin.GraphCLModel:
  """The model, with random biases, BN affine parameters and running statistics when ``randomize``
  (the zero / one initial values would hide a bias or statistic that goes unused)."""
  model = gin.GraphCLModel(F, hidden=HIDDEN, num_layers=LAYERS, rngs=nnx.Rngs(seed))
  if randomize:
    rng = np.random.default_rng(seed + 100)
    for path, variable in nnx.iter_graph(model):
      if isinstance(variable, nnx.Variable) and path[-1] in ("bias", "scale", "mean", "var"):
        shape = variable[...].shape
        value = rng.uniform(0.5, 2.0, shape) if path[-1] in ("scale", "var") else rng.normal(size=shape)
        variable[...] = jnp.asarray(value, jnp.float32)
  return model


def _numpy_params(model: gin.GraphCLModel):
  layers = [{name: np.asarray(value, np.float64) for name, value in dict(
      w1=layer.linear1.kernel[...], b1=layer.linear1.bias[...], w2=layer.linear2.kernel[...],
      b2=layer.linear2.bias[...], scale=layer.norm.scale[...], bias=layer.norm.bias[...],
      mean=layer.norm.mean[...], var=layer.norm.var[...]).items()} for layer in model.encoder.layers]
  head = model.head
  return layers, [np.asarray(a, np.float64) for a in (head.linear1.kernel[...], head.linear1.bias[...],
                                                      head.linear2.kernel[...], head.linear2.bias[...])]


def _numpy_gin(layers, graphs, *, train: bool):
  """GraphCL's Encoder.forward on unpadded graphs, edge by edge: returns (readout [B, L·H], the batch
  (mean, biased var) of every layer's BN input)."""
  hs = [np.asarray(x, np.float64) for x, _, _ in graphs]
  pooled, batch_stats = [], []
  for p in layers:
    pre_norm = []
    for h, (_, senders, receivers) in zip(hs, graphs):
      aggregated = np.zeros_like(h)
      for s, r in zip(senders, receivers):
        aggregated[r] += h[s]
      x = (1.0 + 0.0) * h + aggregated
      x = np.maximum(np.maximum(x @ p["w1"] + p["b1"], 0.0) @ p["w2"] + p["b2"], 0.0)
      pre_norm.append(x)
    all_nodes = np.concatenate(pre_norm)
    batch_stats.append((all_nodes.mean(0), all_nodes.var(0)))
    mean, var = batch_stats[-1] if train else (p["mean"], p["var"])
    hs = [(x - mean) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"] for x in pre_norm]
    pooled.append(np.stack([h.sum(0) for h in hs]))
  return np.concatenate(pooled, axis=1), batch_stats


def test_matches_numpy_reference_in_train_and_eval_mode():
  model = _model()
  graphs = _graphs()
  batch = _pad(graphs, 5, 8)  # every graph has padded nodes and padded edges (ids 0, mask False)
  layers, (hw1, hb1, hw2, hb2) = _numpy_params(model)
  for mode in ("train", "eval"):
    getattr(model, mode)()
    graphdef, state = nnx.split(model)
    features, projections, new_state = _forward(graphdef, state, batch)
    expected, batch_stats = _numpy_gin(layers, graphs, train=mode == "train")
    assert features.shape == (4, LAYERS * HIDDEN) and features.dtype == jnp.float32
    _assert_close(features, expected)
    expected_z = np.maximum(expected @ hw1 + hb1, 0.0) @ hw2 + hb2
    assert projections.shape == (4, LAYERS * HIDDEN) and projections.dtype == jnp.float32
    _assert_close(projections, expected_z)
    new_model = nnx.merge(graphdef, new_state)
    for layer, p, (batch_mean, batch_var) in zip(new_model.encoder.layers, layers, batch_stats):
      if mode == "train":  # torch momentum 0.1: running = 0.9·running + 0.1·batch (over real nodes)
        batch_mean, batch_var = 0.9 * p["mean"] + 0.1 * batch_mean, 0.9 * p["var"] + 0.1 * batch_var
      else:
        batch_mean, batch_var = p["mean"], p["var"]
      _assert_close(layer.norm.mean[...], batch_mean)
      _assert_close(layer.norm.var[...], batch_var)


def test_initialisation_and_sizes_follow_graphcl():
  model = _model(randomize=False)
  assert model.num_features == model.encoder.num_features == LAYERS * HIDDEN
  linears = [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Linear)]
  assert len(linears) == 2 * LAYERS + 2
  for linear in linears:
    fan_in, fan_out = linear.kernel[...].shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))  # Xavier uniform
    kernel = np.asarray(linear.kernel[...])
    assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.8 * bound
    np.testing.assert_array_equal(linear.bias[...], 0.0)
  d = LAYERS * HIDDEN
  expected = (F * HIDDEN + HIDDEN + HIDDEN * HIDDEN + HIDDEN + 2 * HIDDEN
              + (LAYERS - 1) * (2 * (HIDDEN * HIDDEN + HIDDEN) + 2 * HIDDEN) + 2 * (d * d + d))
  assert sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))) == expected


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_node_and_edge_permutations_leave_the_readout_unchanged(mode):
  model = _model()
  getattr(model, mode)()
  graphs = _graphs()
  rng = np.random.default_rng(7)
  permuted = []
  for x, s, r in graphs:
    perm = rng.permutation(len(x))  # node i → perm[i]
    new_x = np.empty_like(x)
    new_x[perm] = x
    order = rng.permutation(len(s))
    permuted.append((new_x, perm[s][order].astype(np.int32), perm[r][order].astype(np.int32)))
  assert any(not np.array_equal(a[0], b[0]) for a, b in zip(graphs, permuted))
  _assert_close(_readout(model, _pad(permuted, 5, 8)), _readout(model, _pad(graphs, 5, 8)))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_padding_and_garbage_in_padding_leave_the_readout_unchanged(mode):
  model = _model()
  getattr(model, mode)()
  graphs = _graphs()
  tight = _readout(model, _pad(graphs, 4, 6))  # the largest graphs fill their rows exactly
  wide = _readout(model, _pad(graphs, 9, 20))
  garbage = _readout(model, _pad(graphs, 9, 20, garbage=True))
  _assert_close(wide, tight)
  _assert_close(garbage, tight)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_masked_node_with_edges_counts_as_deleted(mode):
  model = _model()
  getattr(model, mode)()
  triangle, path, single, directed = _graphs()
  # Node 1 of the path 0-1-2-3 masked out, its edges still listed with edge_mask True …
  masks = [np.ones(3, bool), np.array([True, False, True, True]), np.ones(1, bool), np.ones(4, bool)]
  masked = _readout(model, _pad([triangle, path, single, directed], 5, 8, node_masks=masks))
  # … equals the graph without it: nodes 0, 2, 3 (→ 0, 1, 2) and the one edge 2-3 (→ 1-2).
  x, _, _ = path
  reduced = (x[[0, 2, 3]], np.array([1, 2], np.int32), np.array([2, 1], np.int32))
  expected = _readout(model, _pad([triangle, reduced, single, directed], 5, 8))
  _assert_close(masked, expected)
  full = _readout(model, _pad([triangle, path, single, directed], 5, 8))
  assert not np.allclose(full[1], expected[1], atol=1e-3)  # the mask did change something


def test_edges_with_ids_outside_the_graph_are_ignored():
  model = _model()
  model.eval()
  batch = _pad(_graphs(), 5, 8)
  expected = _readout(model, batch)
  # Graph 2 (one node) gets "real" edges 5→0, 0→5 and −1→0 (n = 5): no node 5 or −1 exists.
  batch["senders"][2, :3], batch["receivers"][2, :3], batch["edge_mask"][2, :3] = [5, 0, -1], [0, 5, 0], True
  _assert_close(_readout(model, batch), expected)


def test_jitted_gradients_are_finite_even_with_nan_padding():
  model = _model()
  model.train()
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  view1 = _pad(_graphs(), 5, 8, garbage=True)
  view1["nodes"][~view1["node_mask"]] = np.nan
  view2 = _pad(_graphs(seed=10), 5, 8)

  def loss_fn(params, batch_stats, view1, view2):
    merged = nnx.merge(graphdef, params, batch_stats, copy=True)
    z1, z2 = merged(view1), merged(view2)
    z1 = z1 / jnp.linalg.norm(z1, axis=-1, keepdims=True)
    z2 = z2 / jnp.linalg.norm(z2, axis=-1, keepdims=True)
    logits = z1 @ z2.T / 0.2
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.diag(logits)), nnx.state(merged, nnx.BatchStat)

  (loss, new_stats), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
      params, batch_stats, view1, view2)
  assert np.isfinite(float(loss))
  kernels = [g for path, g in jax.tree_util.tree_leaves_with_path(grads) if "kernel" in str(path)]
  assert len(kernels) == 2 * LAYERS + 2
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
  assert all(np.abs(np.asarray(g)).sum() > 0 for g in kernels)
  assert all(np.isfinite(np.asarray(s)).all() for s in jax.tree.leaves(new_stats))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sharded_batch_gives_the_unsharded_readout(mode):
  model = _model()
  getattr(model, mode)()
  mesh = parallel.make_data_mesh()
  assert mesh.size == 4
  batch = _pad(_graphs() + _graphs(seed=20), 5, 8)  # 8 graphs, 2 per device
  graphdef, state = nnx.split(model)
  expected = _forward(graphdef, state, batch)
  sharded = _forward(graphdef, parallel.replicate(state, mesh), parallel.to_global(batch, mesh))
  for got, want in zip(jax.tree.leaves(sharded), jax.tree.leaves(expected)):
    _assert_close(parallel.to_host(got), want)
  assert sharded[0].sharding.spec == parallel.data_sharded(mesh).spec
  # The graph axis stays leading and split: no device ever gathers the whole batch.
  compiled = _forward.lower(graphdef, parallel.replicate(state, mesh),
                            parallel.to_global(batch, mesh)).compile().as_text()
  assert "all-gather" not in compiled


def test_bfloat16_compute_keeps_float32_params_and_readout():
  graphs = _pad(_graphs(), 5, 8)
  full = _model(seed=1)
  half = gin.GraphCLModel(F, hidden=HIDDEN, num_layers=LAYERS, dtype=jnp.bfloat16, rngs=nnx.Rngs(1))
  nnx.update(half, nnx.state(full))  # same (randomised) values, bf16 compute
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(nnx.state(half)))
  for model in (full, half):
    model.eval()
  features_half, features_full = _readout(half, graphs), _readout(full, graphs)
  assert features_half.dtype == np.float32
  scale = np.abs(features_full).max()
  np.testing.assert_allclose(features_half, features_full, atol=0.05 * scale)
  assert not np.array_equal(features_half, features_full)


def _bad(**changes) -> dict:
  batch = _pad(_graphs(), 5, 8)
  for key, value in changes.items():
    if value is None:
      del batch[key]
    else:
      batch[key] = value
  return batch


@pytest.mark.parametrize("graphs, match", [
    ((1, 2), "graphs must be a dict"),
    (_bad(edge_mask=None), "missing key.*'edge_mask'"),
    (_bad(nodes=np.zeros((4, 5), np.float32)), r"graphs\['nodes'\] must have rank 3 \[B, n, 3\]"),
    (_bad(nodes=np.zeros((4, 5, 3), np.int32)), r"graphs\['nodes'\] must have a floating dtype"),
    (_bad(nodes=np.zeros((4, 5, 2), np.float32)), r"F=2 .*in_features=3.*\[B, n, 3\]"),
    (_bad(node_mask=np.ones((4, 6), bool)), r"graphs\['node_mask'\] must have shape \[B, n\] = \[4, 5\]"),
    (_bad(node_mask=np.ones((4, 5), np.int32)), r"graphs\['node_mask'\] must have dtype bool"),
    (_bad(senders=np.zeros((4, 8), np.float32)), r"graphs\['senders'\] must have dtype integer"),
    (_bad(senders=np.zeros((3, 8), np.int32)), r"graphs\['senders'\] must have shape \[B, e\] = \[4, \?\]"),
    (_bad(receivers=np.zeros((4, 7), np.int32)),
     r"graphs\['receivers'\] must have shape \[B, e\] = \[4, 8\]"),
    (_bad(edge_mask=np.ones((4, 8, 1), bool)), r"graphs\['edge_mask'\] must have shape \[B, e\]"),
    (_bad(edge_mask=[True] * 8), r"graphs\['edge_mask'\] must be an array"),
])
def test_bad_graph_batches_raise_naming_the_key(graphs, match):
  model = gin.GIN(F, hidden=4, num_layers=1, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=match):
    model(graphs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_features=0), r"in_features=0 is out of range"),
    (dict(in_features=3, hidden=0), r"hidden=0 is out of range"),
    (dict(in_features=3, num_layers=0), r"num_layers=0 is out of range"),
    (dict(in_features=3, hidden=True), r"hidden must be an integer"),
])
def test_bad_constructor_arguments_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    gin.GraphCLModel(**kwargs, rngs=nnx.Rngs(0))
