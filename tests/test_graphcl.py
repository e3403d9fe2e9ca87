"""GraphCL through the one loop on real molecules (MUTAG, offline): training, SVM evaluation, every
sampler kind on graph embeddings, and config errors before any data loads."""

import importlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_tasks
from experiments.configs import graphcl_mutag
from prosampler_jax import losses
from prosampler_jax import run_config
from prosampler_jax import train
from prosampler_jax.data import graphs
from prosampler_jax.tasks import graphcl

pytestmark = pytest.mark.slow


def tiny_config(**overrides):
  config = graphcl_mutag.get_config()
  config.num_epochs = 2            # 5 steps per epoch at batch 32
  config.sampler.warmup_epochs = 1
  config.eval.svm_seeds = 2
  config.eval_every_epochs = 1
  config.log_every_steps = 1
  return tiny_tasks.with_overrides(config, **overrides)


def test_graphcl_end_to_end_on_mutag(tmp_path):
  result = train.train_and_evaluate(tiny_config(), str(tmp_path))
  assert result["task"] == "graphcl" and result["loss"] == "graphcl" and result["steps"] == 10
  # MUTAG's majority class is 66.5%; GraphCL's GIN reaches ~0.85 within a few steps.
  assert 0.75 <= result["svm_acc"] <= 1.0 and result["svm_acc_std"] > 0.0  # 2 fold splits differ
  monitors = [h for h in result["history"] if h["event"] == "epoch"]
  assert [h["step"] for h in monitors] == [5, 10] and all("svm_acc" in h for h in monitors)
  refreshes = [h for h in result["history"] if h["event"] == "refresh"]
  assert [h["step"] for h in refreshes] == [5] and refreshes[0]["bank_written_fraction"] > 0.999
  assert 0.0 < refreshes[0]["mean_neg_cos"] < 1.0 and 0.0 <= refreshes[0]["false_negative_rate"] <= 1.0
  assert refreshes[0]["loss_gap"] > 0.0 and refreshes[0]["loss_gap_anchors"] == 5 * 32  # exact: N = 188
  with open(os.path.join(tmp_path, "results.json")) as f:
    assert json.load(f)["svm_acc"] == result["svm_acc"]


@pytest.mark.parametrize("sampler", ["knn", "tail"])
def test_every_sampler_kind_works_on_graph_embeddings(tmp_path, sampler):
  result = train.train_and_evaluate(
      tiny_config(**{"sampler.name": sampler, "eval.svm_seeds": 1, "eval_every_epochs": 0}),
      str(tmp_path))
  assert 0.0 < result["svm_acc"] <= 1.0
  assert "mean_neg_cos" in result["batch_stats"]


def test_tail_batch_sampling_sees_the_two_views_as_halves():
  task = graphcl.GraphCLTask(tiny_config(**{"sampler.name": "tail"}))
  bank = np.random.default_rng(0).normal(size=(task.num_examples, task.bank_dim)).astype(np.float32)
  x, y = task.sampler_view(bank)
  np.testing.assert_array_equal(np.concatenate([x, y], axis=1), bank)
  assert task.bank_dim == 2 * 96 and task.pretrain_labels.tolist() == graphs.load_tu_dataset(
      "MUTAG", graphs.grakel_mutag_dir()).labels.tolist()


def test_same_label_exclusion_hands_the_graph_labels_to_the_loss():
  task = graphcl.GraphCLTask(tiny_config(**{"loss.exclude_same_label": True}))
  element = next(task.pretrain_batches(np.arange(32, dtype=np.int32)[None], window=0, start_batch=0))
  ids = np.unique(task.pretrain_labels, return_inverse=True)[1]
  np.testing.assert_array_equal(element["inputs"]["label"], ids[element["index"]])
  assert 0 < element["inputs"]["label"].sum() < 32  # both classes in the batch
  z1, z2, labels = task.forward(task.make_model(), jax.tree.map(jnp.asarray, element["inputs"]))
  np.testing.assert_array_equal(labels, element["inputs"]["label"])
  loss, _ = task.loss_and_rows((z1, z2, labels), axis_name=None)
  assert float(loss) == pytest.approx(float(losses.graphcl(z1, z2, temperature=0.2, labels=labels)),
                                      rel=1e-6)
  assert float(loss) != pytest.approx(float(losses.graphcl(z1, z2, temperature=0.2)), rel=1e-3)


def test_the_svm_runs_on_the_configured_number_of_processes(monkeypatch):
  task = graphcl.GraphCLTask(tiny_config(**{"eval.svm_jobs": 2}))
  seen = {}

  def fake_svm(features, labels, **kwargs):
    seen.update(kwargs)
    return {"svm_acc": 0.5}

  monkeypatch.setattr(graphcl, "svm_accuracy", fake_svm)
  n = task.num_examples
  encode = lambda batches: {"index": np.arange(n), "features": np.zeros((n, 4)),
                            "label": task.pretrain_labels}
  assert task.evaluate(encode, final=True) == {"svm_acc": 0.5}
  assert seen["n_jobs"] == 2 and seen["seeds"] == (0, 1)
  assert graphcl_mutag.get_config().eval.svm_jobs == -1  # every core by default


@pytest.mark.parametrize("key, value, match", [
    ("augment.view2", "dnodes", "config.augment.view2='dnodes'.*allowed.*node_drop"),
    ("augment.ratio", 1.5, "config.augment.ratio"),
    ("loss.name", "info_nce", "config.loss.name='info_nce'.*allowed.*graphcl"),
    ("graph.missing_features", "ones", "config.graph.missing_features"),
    ("eval.svm_seeds", 0, "config.eval.svm_seeds"),
    ("eval.svm_jobs", 0, "config.eval.svm_jobs=0"),
    ("model.num_layers", 0, "config.model.num_layers"),
    ("eval.svm_folds", 1, r"config.eval.svm_folds=1 is out of range; allowed: \[2, inf\]"),
    ("eval.svm_folds", 100, r"config.eval.svm_folds=100 does not fit MUTAG's labels: .*class 0 has 63"),
    ("graph.max_degree", 0, r"config.graph.max_degree=0 is out of range"),
])
def test_bad_config_values_name_their_key(tmp_path, key, value, match):
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(tiny_config(**{key: value}), str(tmp_path))
  # Refused before any training: no checkpoint (the SVM's folds used to fail after it, on a workdir the
  # corrected config could no longer resume).
  assert not os.path.exists(tmp_path / "checkpoints")


def test_a_missing_dataset_says_where_to_get_it(tmp_path):
  config = tiny_config(dataset="NCI1", data_dir=str(tmp_path))
  with pytest.raises(graphs.GraphDataNotFoundError, match="chrsmrrs.com/graphkerneldatasets/NCI1.zip"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


@pytest.mark.parametrize("module", ["mutag", "proteins", "nci1", "dd", "collab", "imdb_binary",
                                    "reddit_binary", "reddit_multi_5k"])
def test_every_tu_config_is_valid_and_names_its_dataset(module):
  config = importlib.import_module(f"experiments.configs.graphcl_{module}").get_config()
  run_config.validate(config)
  assert config.task == "graphcl" and config.dataset.lower().replace("-", "_") == module
  assert config.loss.name == "graphcl" and config.loss.temperature == 0.2
  assert (config.model.num_layers, config.model.hidden, config.num_epochs) == (3, 32, 20)
  assert config.batch_size == (32 if module == "mutag" else 128)


def test_the_paper_rows_train_what_graphcls_released_code_trained_and_the_paper_recipe_stays():
  released, paper = graphcl_mutag.get_config(), graphcl_mutag.get_config("paper")
  assert (released.augment.ratio, released.augment.subgraph, released.augment.drop_unlinked,
          released.graph.self_loops, released.graph.missing_features) == (
              0.1, "start_neighbours", True, "all_but_last", "constant")
  assert (paper.augment.ratio, paper.augment.subgraph, paper.augment.drop_unlinked,
          paper.graph.self_loops, paper.graph.missing_features) == (0.2, "grow", False, "none", "degree")
  with pytest.raises(ValueError, match="recipe 'code'; allowed: released_code, paper"):
    graphcl_mutag.get_config("code")
  from experiments.ablations import runner  # the sweeps read '<file>.py:<recipe>' as --config does
  path = os.path.join(os.path.dirname(__file__), "..", "experiments", "configs", "graphcl_nci1.py")
  assert runner.load_config(path + ":paper").augment.subgraph == "grow"
  assert runner.load_config(path).augment.subgraph == "start_neighbours"


def test_the_released_recipe_loops_the_trained_and_evaluated_graphs_and_prunes_the_augmented_view(
    monkeypatch):
  task = graphcl.GraphCLTask(tiny_config())
  seen = []
  augment = graphcl.graph_views.augment

  def recording_augment(graphs_in, keys, **options):
    out = augment(graphs_in, keys, **options)
    seen.append((options, jax.tree.map(np.asarray, out)))
    return out

  monkeypatch.setattr(graphcl.graph_views, "augment", recording_augment)
  batch = next(iter(task.pretrain_batches(np.arange(64, dtype=np.int32).reshape(2, 32), window=0,
                                          start_batch=0)))
  model = task.make_model()
  task.forward(model, jax.tree.map(jnp.asarray, batch["inputs"]))
  (first_options, first), (second_options, second) = seen
  loops = lambda g: int((g["edge_mask"] & (g["senders"] == g["receivers"])).sum())
  assert first_options["view"] == "none" and loops(first) > 0.9 * first["node_mask"].sum()
  assert second_options == {"view": "random4", "ratio": 0.1, "subgraph": "start_neighbours",
                            "drop_unlinked": True} and loops(second) == 0
  evaluated = []

  def encode(batches):
    batches = list(batches)
    evaluated.extend(b["inputs"] for b in batches)
    features = np.random.default_rng(0).normal(size=(task.num_examples, 4))
    return {"features": features, "label": task.pretrain_labels, "index": np.arange(task.num_examples)}

  task.evaluate(encode, final=False)
  assert all(loops(g) > 0 for g in evaluated)  # GraphCL embeds the graphs with their loops too
