"""Tests for the samplers outside the trainer: the PyTorch-style batch sampler (protocol, windows,
ranks; with torch's DataLoader when torch is installed) and the batch-plan CLI (real files, real exit
codes)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from prosampler_jax import batch_plan
from prosampler_jax import samplers


def _embeddings(n=600, d=12, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(6, d))
  labels = rng.integers(0, 6, n)
  return (centres[labels] + 0.3 * rng.normal(size=(n, d))).astype(np.float32), labels


def test_batch_sampler_protocol_windows_and_epochs():
  x, _ = _embeddings()
  calls = []

  def embed(epoch, window):
    calls.append((epoch, window))
    return x

  sampler = samplers.make_sampler("proximity", 600, 32, seed=1, num_neighbors=8, num_candidates=40)
  loader = batch_plan.PlanBatchSampler(sampler, embed, refresh_batches=7)
  assert len(loader) == 600 // 32 == 18
  batches = list(loader)
  assert len(batches) == 18 and calls == [(0, 0), (0, 1), (0, 2)]  # windows of 7, 7, 4 batches
  assert all(type(b) is list and len(set(b)) == 32 and all(type(i) is int for i in b) for b in batches)
  # The same batches as the sampler's own windows (pure function of seed, epoch, window, embeddings).
  replay = samplers.make_sampler("proximity", 600, 32, seed=1, num_neighbors=8, num_candidates=40)
  expected = np.concatenate([replay.sample(0, x, num_batches=7, window=w)[:n]
                             for w, n in ((0, 7), (1, 7), (2, 4))])
  np.testing.assert_array_equal(np.array(batches), expected)
  assert list(loader) == batches  # same epoch → same batches
  loader.set_epoch(1)
  assert list(loader) != batches and calls[-1] == (1, 2)


def test_ranks_get_their_columns_of_every_global_batch():
  x, _ = _embeddings()
  make = lambda rank: batch_plan.PlanBatchSampler(
      samplers.make_sampler("knn", 600, 32, seed=2), lambda e, w: x, num_replicas=4, rank=rank)
  parts = [list(make(rank)) for rank in range(4)]
  whole = list(batch_plan.PlanBatchSampler(samplers.make_sampler("knn", 600, 32, seed=2),
                                           lambda e, w: x))
  for b, batch in enumerate(whole):
    assert sum((p[b] for p in parts), []) == batch and all(len(p[b]) == 8 for p in parts)


def test_bad_arguments_name_themselves():
  sampler = samplers.make_sampler("proximity", 600, 32, num_neighbors=8, num_candidates=40)
  with pytest.raises(ValueError, match="num_replicas=5 must divide the batch size 32"):
    batch_plan.PlanBatchSampler(sampler, lambda e, w: None, num_replicas=5)
  with pytest.raises(ValueError, match=r"rank=4 is out of range; allowed: \[0, 3\]"):
    batch_plan.PlanBatchSampler(sampler, lambda e, w: None, num_replicas=4, rank=4)
  with pytest.raises(ValueError, match="sampler must be a prosampler_jax.samplers.BatchSampler"):
    batch_plan.PlanBatchSampler(object())
  batch_plan.PlanBatchSampler(samplers.make_sampler("uniform", 600, 32))  # no embeddings needed


def test_the_bank_path_samples_from_the_rows_update_wrote_after_a_uniform_warm_up():
  x, _ = _embeddings()
  make = lambda: samplers.make_sampler("proximity", 600, 32, seed=1, num_neighbors=8, num_candidates=40)
  loader = batch_plan.PlanBatchSampler(make(), refresh_batches=6)
  epoch0 = []
  for batch in loader:  # the training loop: each step writes its rows, as a forward pass would
    epoch0.append(batch)
    loader.update(np.array(batch), x[batch] * 3.0)  # any scale: the samplers read cosines
  # Nothing written before epoch 0: uniform batches, exactly the sampler's fallback.
  replay = make()
  np.testing.assert_array_equal(np.array(epoch0), np.concatenate(
      [replay.sample(0, None, num_batches=6, window=w) for w in range(3)]))
  assert loader.bank_coverage < 1.0  # uniform batches of 18·32 of 600 items cover only part
  rest = np.setdiff1d(np.arange(600), np.concatenate(epoch0))
  loader.update(rest, x[rest])
  assert loader.bank_coverage == 1.0
  loader.set_epoch(1)
  epoch1 = [list(b) for b in loader]
  replay = make()
  np.testing.assert_array_equal(np.array(epoch1), np.concatenate(
      [replay.sample(1, x, num_batches=6, window=w) for w in range(3)]))
  # A write during a window reaches the next window, not the current one.
  loader.set_epoch(2)
  it = iter(loader)
  first = [next(it) for _ in range(6)]
  y = x[::-1].copy()
  loader.update(np.arange(600), y)
  second = [next(it) for _ in range(6)]
  replay = make()
  np.testing.assert_array_equal(np.array(first), replay.sample(2, x, num_batches=6, window=0))
  np.testing.assert_array_equal(np.array(second), replay.sample(2, y, num_batches=6, window=1))


def test_update_rejects_bad_rows_by_name_and_an_incomplete_bank_warns():
  loader = batch_plan.PlanBatchSampler(
      samplers.make_sampler("proximity", 600, 32, num_neighbors=8, num_candidates=40))
  with pytest.raises(ValueError, match=r"indices must be integer item ids in \[0, 599\]"):
    loader.update(np.array([600]), np.ones((1, 4)))
  with pytest.raises(ValueError, match=r"rows has shape \(2, 4\); allowed: \[1, D\]"):
    loader.update(np.array([1]), np.ones((2, 4)))
  with pytest.raises(ValueError, match="rows holds NaN"):
    loader.update(np.array([1]), np.full((1, 4), np.nan))
  loader.update(np.array([1]), np.ones((1, 4)))
  with pytest.raises(ValueError, match="rows has width 5; allowed: 4"):
    loader.update(np.array([2]), np.ones((1, 5)))
  loader.set_epoch(1)
  with pytest.warns(UserWarning, match="epoch 1 starts with 1 of 600 items in the bank"):
    list(loader)
  reads_embed = batch_plan.PlanBatchSampler(loader.sampler, lambda e, w: None)
  with pytest.raises(ValueError, match="update\\(\\) writes the bank, but this sampler reads embed"):
    reads_embed.update(np.array([1]), np.ones((1, 4)))


def test_digest_is_equal_for_equal_batches_and_differs_when_a_ranks_embeddings_differ():
  x, _ = _embeddings()
  y = x + 0.5 * np.random.default_rng(9).normal(size=x.shape).astype(np.float32)
  make = lambda emb, rank: batch_plan.PlanBatchSampler(
      samplers.make_sampler("knn", 600, 32, seed=2), lambda e, w: emb, num_replicas=2, rank=rank)
  a, b, c = make(x, 0), make(x, 1), make(y, 1)
  digests = []
  for loader in (a, b, c):
    list(loader)
    digests.append(loader.digest())
  assert digests[0] == digests[1] != digests[2] and len(digests[0]) == 16
  list(a)
  assert a.digest() == digests[0]  # each epoch's iteration starts its digest afresh
  a.set_epoch(1)
  list(a)
  assert a.digest() != digests[0]


def test_torch_dataloader_takes_it_as_batch_sampler():
  torch = pytest.importorskip("torch")
  x, _ = _embeddings()
  data = torch.utils.data.TensorDataset(torch.arange(600))
  sampler = batch_plan.PlanBatchSampler(
      samplers.make_sampler("proximity", 600, 32, num_neighbors=8, num_candidates=40), lambda e, w: x)
  loader = torch.utils.data.DataLoader(data, batch_sampler=sampler)
  got = [batch[0].tolist() for batch in loader]
  assert len(loader) == 18 and got == list(sampler)


def test_plan_is_harder_than_uniform_and_pairs_go_to_tail(tmp_path):
  x, labels = _embeddings()
  plans = {}
  for name, kwargs in (("uniform", {}), ("proximity", {"num_neighbors": 8, "num_candidates": 200})):
    sampler = samplers.make_sampler(name, 600, 32, seed=0, **kwargs)
    plans[name], stats = batch_plan.batch_plan(sampler, x, epochs=2, labels=labels)
    assert plans[name].shape == (2, 18, 32) and plans[name].dtype == np.int32
    assert [s["epoch"] for s in stats] == [0, 1]
    plans[name + "_stats"] = stats
  assert plans["proximity_stats"][0]["mean_neg_cos"] > plans["uniform_stats"][0]["mean_neg_cos"] + 0.1
  y = x + 0.05 * np.random.default_rng(3).normal(size=x.shape).astype(np.float32)
  tail = samplers.make_sampler("tail", 600, 32, seed=0)
  pair_plan, _ = batch_plan.batch_plan(tail, (x, y), epochs=1)
  np.testing.assert_array_equal(pair_plan[0], samplers.make_sampler("tail", 600, 32, seed=0).sample(0, (x, y)))


def _cli(tmp_path, *args):
  return subprocess.run([sys.executable, "-m", "prosampler_jax.plan", *args], capture_output=True,
                        text=True, cwd=tmp_path, timeout=300)


def test_cli_writes_the_plan_and_prints_statistics_per_epoch(tmp_path):
  x, labels = _embeddings()
  np.save(tmp_path / "emb.npy", x)
  np.save(tmp_path / "labels.npy", labels)
  done = _cli(tmp_path, "--embeddings=emb.npy", "--labels=labels.npy", "--sampler=proximity",
              "--batch-size=32", "--epochs=3", "--out=plan.npy", "--num-neighbors=8",
              "--num-candidates=100", "--restart-decay=0.1", "--seed=4")
  assert done.returncode == 0, done.stderr
  written = np.load(tmp_path / "plan.npy")
  assert written.shape == (3, 18, 32) and written.dtype == np.int32
  with open(tmp_path / "plan.json", encoding="utf-8") as f:
    provenance = json.load(f)
  assert {k: provenance[k] for k in ("sampler", "sampler_name", "seed", "epochs", "num_examples",
                                     "batch_size")} == {
      "sampler": "ProximitySampler", "sampler_name": "proximity", "seed": 4, "epochs": 3,
      "num_examples": 600, "batch_size": 32}
  assert provenance["arguments"]["num_candidates"] == 100
  assert provenance["embeddings_sha256"] == batch_plan.fingerprint(x)
  lines = [json.loads(line) for line in done.stdout.splitlines()]
  assert [l["epoch"] for l in lines] == [0, 1, 2] and all("false_negative_rate" in l for l in lines)
  # Every constructor option is a flag (restart_decay too), passed through with the sampler's type.
  sampler = samplers.make_sampler("proximity", 600, 32, seed=4, num_neighbors=8, num_candidates=100,
                                  restart_decay=0.1)
  np.testing.assert_array_equal(written, batch_plan.batch_plan(sampler, x, epochs=3)[0])


@pytest.mark.parametrize("args, message", [
    (["--embeddings=missing.npy"], "--embeddings='missing.npy': no such file"),
    (["--embeddings=labels.npy"], "--embeddings='labels.npy' has shape (600,); allowed: rank 2"),
    (["--labels=emb.npy"], "--labels='emb.npy' has shape (600, 12); allowed: rank 1"),
    (["--pairs=short.npy"], "--pairs has shape (10, 12); allowed: the shape of --embeddings"),
    (["--num-candidates=5", "--num-neighbors=8"], "--num_candidates=5 is out of range"),
    (["--sampler=uniform", "--num-neighbors=3"], "--sampler=uniform does not take --num-neighbors"),
    (["--batch-size=601"], "--batch_size=601 is out of range; allowed: [2, 600]"),
    (["--out=nowhere/plan.npy"], "--out='nowhere/plan.npy': directory"),
    (["--out=plan.bin"], "--out='plan.bin'; allowed: a path ending in .npy"),
    (["--epochs=0"], "--epochs=0 is out of range; allowed: [1, inf]"),
])
def test_cli_bad_input_is_one_clear_error_with_status_2(tmp_path, args, message):
  x, labels = _embeddings()
  np.save(tmp_path / "emb.npy", x)
  np.save(tmp_path / "labels.npy", labels)
  np.save(tmp_path / "short.npy", x[:10])
  defaults = {"--embeddings": "emb.npy", "--sampler": "proximity", "--batch-size": "32",
              "--out": "plan.npy"}
  given = {a.split("=")[0]: a.split("=", 1)[1] for a in args}
  argv = [f"{k}={v}" for k, v in {**defaults, **given}.items()]
  done = _cli(tmp_path, *argv)
  assert done.returncode == 2 and message in done.stderr, done.stderr
  assert not (tmp_path / "plan.npy").exists()


def test_a_plan_is_read_back_with_its_provenance_and_refused_for_other_data(tmp_path):
  x, _ = _embeddings()
  sampler = samplers.make_sampler("knn", 600, 32, seed=3)
  plan, _ = batch_plan.batch_plan(sampler, x, epochs=2)
  path = str(tmp_path / "plan.npy")
  batch_plan.save_plan(path, plan, sampler, x)
  loaded, provenance = batch_plan.load_plan(path, num_examples=600, batch_size=32, embeddings=x)
  np.testing.assert_array_equal(loaded, plan)
  assert provenance["sampler"] == "KnnSampler" and provenance["epochs"] == 2
  with pytest.raises(ValueError, match="was made for num_examples=600, not 601"):
    batch_plan.load_plan(path, num_examples=601)
  with pytest.raises(ValueError, match="was made for batch_size=32, not 16"):
    batch_plan.load_plan(path, batch_size=16)
  with pytest.raises(ValueError, match="was made from other embeddings .*a stale plan"):
    batch_plan.load_plan(path, embeddings=x + 1e-3)
  # Served as a sampler, windows and epochs are the plan's rows.
  served = batch_plan.PlanBatchSampler(batch_plan.PlanFileSampler(path, 600, 32), refresh_batches=5)
  served.set_epoch(1)
  np.testing.assert_array_equal(np.array(list(served)), plan[1])
  served.set_epoch(2)
  with pytest.raises(ValueError, match="epoch=2 is past the plan's 2 epoch"):
    list(served)
  with pytest.raises(ValueError, match="was made for num_examples=600, not 500"):
    batch_plan.PlanFileSampler(path, 500, 32)
  (tmp_path / "plan.json").unlink()
  with pytest.raises(ValueError, match="has no provenance file"):
    batch_plan.load_plan(path)
