"""SimCSE through the one loop on tiny real data: MiniLM, unsupervised and supervised, every sampler kind."""

import csv

import numpy as np
import pytest

import tiny_tasks
from experiments.configs import simcse_minilm_stsb
from prosampler_jax import train
from prosampler_jax.data import text

pytestmark = pytest.mark.slow


def tiny_config(**overrides):
  config = simcse_minilm_stsb.get_config()
  config.max_examples = 96
  config.batch_size = 16           # 6 steps
  config.eval_batch_size = 64
  config.model.max_len = 16
  config.eval.max_len = 32
  config.sampler.num_neighbors = 5
  config.sampler.num_candidates = 20
  config.sampler.refresh_steps = 3
  config.log_every_steps = 1
  return tiny_tasks.with_overrides(config, **overrides)


def test_unsupervised_simcse_end_to_end(tmp_path, minilm_dir):
  results = train.train_and_evaluate(tiny_config(**{"sampler.name": "proximity"}), str(tmp_path))
  assert results["task"] == "simcse" and results["steps"] == 6
  assert 75.0 < results["stsb"] < 90.0 and 75.0 < results["stsb_dev"] < 95.0  # MiniLM: 82.03 untrained
  refreshes = [h for h in results["history"] if h["event"] == "refresh"]
  assert [r["step"] for r in refreshes] == [0, 3] and refreshes[0]["bank_written_fraction"] == 1.0
  assert 0.0 < refreshes[0]["mean_neg_cos"] < 1.0 and refreshes[0]["loss_gap"] > 0.0
  assert results["selection_metric"] == "stsb_dev" and results["selected_step"] == 6


def test_tail_batch_sampling_sees_text_as_anchor_and_positive_halves(minilm_dir):
  from prosampler_jax.tasks import simcse  # pylint: disable=g-import-not-at-top
  task = simcse.SimCSETask(tiny_config(**{"sampler.name": "tail"}))
  bank = np.random.default_rng(0).normal(size=(96, task.bank_dim)).astype(np.float32)
  x, y = task.sampler_view(bank)
  np.testing.assert_array_equal(np.concatenate([x, y], axis=1), bank)
  assert x.shape == (96, 384)  # MiniLM's hidden size: [anchor | positive]
  np.testing.assert_array_equal(np.concatenate(task.bank_pair(bank), axis=1), bank)  # the loss gap's pair


def test_the_unsupervised_positive_is_a_second_dropout_pass_of_the_same_sentence(minilm_dir):
  from prosampler_jax.tasks import simcse  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  task = simcse.SimCSETask(tiny_config())
  element = next(task.pretrain_batches(np.arange(16, dtype=np.int32)[None], window=0, start_batch=0))
  inputs = jax.tree.map(np.asarray, element["inputs"])
  model = task.make_model()
  model.train()
  z1, z2, negatives = task.forward(model, inputs)
  assert negatives is None
  assert float(np.abs(np.asarray(z1) - np.asarray(z2)).max()) > 1e-3  # two dropout masks
  model.eval()
  z1, z2, _ = task.forward(model, inputs)
  np.testing.assert_allclose(np.asarray(z1), np.asarray(z2), atol=1e-6)  # the same sentence


def test_same_label_exclusion_is_refused_for_unlabelled_sentences(minilm_dir):
  from prosampler_jax.tasks import simcse  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="config.loss.exclude_same_label=True needs pre-training labels"):
    simcse.SimCSETask(tiny_config(**{"loss.exclude_same_label": True}))


def test_supervised_simcse_trains_on_nli_triplets_with_hard_negatives(tmp_path, minilm_dir):
  sentences = text.stsb_train_sentences(None)[:144]
  with open(tmp_path / "nli_for_simcse.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["sent0", "sent1", "hard_neg"])
    writer.writerows(zip(sentences[0::3], sentences[1::3], sentences[2::3]))
  config = tiny_config(dataset="nli", data_dir=str(tmp_path), max_examples=0,
                       **{"sampler.name": "tail", "model.pooling": "cls", "model.mlp_only_train": False})
  results = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["steps"] == 3 and "stsb" in results  # 48 triplets, batch 16
