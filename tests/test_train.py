"""Tests of the one training loop: the step's bank writes, per-step randomness, bank freshness, exact
resume (sampler state included), SimCLR on real digits end to end, a dropout task end to end, and a
tfds dataset via mock_data."""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from flax import nnx
from ml_collections import config_flags

import tiny_tasks
from experiments.configs import simclr_digits
from prosampler_jax import checkpoint
from prosampler_jax import feeder as feeder_lib
from prosampler_jax import losses as losses_lib
from prosampler_jax import optim
from prosampler_jax import parallel
from prosampler_jax import samplers
from prosampler_jax import selection
from prosampler_jax import tasks
from prosampler_jax import train

pytestmark = pytest.mark.slow


def tiny_config(**overrides):
  """Digits, a narrow CNN, 2 short epochs: a whole run in seconds."""
  config = simclr_digits.get_config()
  config.num_epochs = 2
  config.batch_size = 256            # 1437 // 256 = 5 steps per epoch
  config.eval_batch_size = 512
  config.model.width = 8
  config.model.projection_dim = 16
  config.sampler.num_neighbors = 10
  config.sampler.num_candidates = 50
  config.sampler.refresh_steps = 3   # two windows per epoch (3 + 2 steps)
  config.sampler.lookahead_steps = 2
  config.eval.knn_k = 10
  config.eval.linear_epochs = 5
  config.log_every_steps = 2
  config.checkpoint_steps = 4
  return tiny_tasks.with_overrides(config, **overrides)


def refreshes(results):
  return [h for h in results["history"] if h["event"] == "refresh"]


def make_state(task, config, mesh):
  tx = optim.make_optimizer(config, 100)
  graphdef, state = train.init_state(task.make_model(), tx, task.num_examples, task.bank_dim,
                                     config.seed, mesh)
  return graphdef, tx, state


def one_batch(task, mesh, items):
  element = next(task.pretrain_batches(np.asarray(items, np.int32)[None], window=0, start_batch=0))
  return parallel.to_global(element["inputs"], mesh), parallel.to_global(element["index"], mesh)


@pytest.fixture(scope="module")
def vector_task():
  return tiny_tasks.DigitVectorsTask(dropout=0.2)


# -- the step ------------------------------------------------------------------------------------------

def test_step_writes_its_rows_at_its_indices_and_nothing_else(vector_task):
  mesh = parallel.make_data_mesh()
  config = tiny_tasks.tiny_loop_config()
  graphdef, tx, state = make_state(vector_task, config, mesh)
  state = state.replace(step=jnp.int32(5))
  items = np.random.default_rng(0).permutation(vector_task.num_examples)[:64]
  inputs, index = one_batch(vector_task, mesh, items)
  # The rows the step must write: its own forward pass, with its own (seed, step) key.
  objective = jax.jit(train.make_objective(graphdef, vector_task, mesh))
  _, (rows, _) = objective(state.params, state.model_state, inputs, jax.random.fold_in(state.rng, 5))
  before_bank, before_written = np.asarray(state.bank), np.asarray(state.bank_written_at)
  new, _ = train.make_train_step(graphdef, vector_task, tx, mesh)(state, inputs, index)
  bank, written = np.asarray(new.bank), np.asarray(new.bank_written_at)
  np.testing.assert_allclose(bank[items], np.asarray(rows), atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(bank[items], axis=1), 1.0, atol=1e-5)
  others = np.setdiff1d(np.arange(vector_task.num_examples), items)
  np.testing.assert_array_equal(bank[others], before_bank[others])
  assert (written[items] == 5).all() and (written[others] == before_written[others]).all()
  assert int(new.step) == 6


class _PairedVectorsTask(tiny_tasks.DigitVectorsTask):
  """The digit vectors with a two-view bank layout: the step then reports its in-batch accuracy."""

  def bank_pair(self, bank):
    half = bank.shape[1] // 2
    return bank[:, :half], bank[:, half:]


def test_the_step_reports_the_in_batch_accuracy_of_its_rows_when_the_bank_holds_two_views(vector_task):
  mesh = parallel.make_data_mesh()
  config = tiny_tasks.tiny_loop_config()
  paired = _PairedVectorsTask(dropout=0.2)
  graphdef, tx, state = make_state(paired, config, mesh)
  inputs, index = one_batch(paired, mesh, np.arange(64))
  objective = jax.jit(train.make_objective(graphdef, paired, mesh))
  _, (rows, _) = objective(state.params, state.model_state, inputs, jax.random.fold_in(state.rng, 0))
  _, metrics = train.make_train_step(graphdef, paired, tx, mesh)(state, inputs, index)
  x, y = np.asarray(rows)[:, :8], np.asarray(rows)[:, 8:]
  want = np.mean(np.argmax(x @ y.T, axis=1) == np.arange(64))
  assert float(metrics["contrastive_accuracy"]) == pytest.approx(want)
  _, plain = train.make_train_step(graphdef, vector_task, tx, mesh)(
      make_state(vector_task, config, mesh)[2], *one_batch(vector_task, mesh, np.arange(64)))
  assert "contrastive_accuracy" not in plain and set(plain) == {"loss", "grad_norm", "param_norm", "step"}
  assert int(plain["step"]) == 1  # the step number the divergence monitor folds in, on device


def test_dropout_masks_differ_between_the_two_passes_and_come_from_seed_and_step(vector_task):
  mesh = parallel.make_data_mesh()
  graphdef, _, state = make_state(vector_task, tiny_tasks.tiny_loop_config(), mesh)
  inputs, _ = one_batch(vector_task, mesh, np.arange(64))

  @jax.jit
  def outputs(state, key):
    model = nnx.merge(graphdef, state.params, state.model_state)
    model.train()
    train.reseed_model(model, key)
    return vector_task.forward(model, inputs)

  key = lambda step: jax.random.fold_in(state.rng, step)
  z1, z2 = outputs(state, key(3))
  assert np.abs(np.asarray(z1) - np.asarray(z2)).max() > 1e-3      # the two passes of one step differ
  again = outputs(state, key(3))
  np.testing.assert_array_equal(np.asarray(again[0]), np.asarray(z1))  # same (seed, step): same masks
  other = outputs(state, key(4))
  assert np.abs(np.asarray(other[0]) - np.asarray(z1)).max() > 1e-3    # another step: other masks
  # Evaluation mode has no dropout: encode is deterministic whatever the stream state.
  model = nnx.merge(graphdef, state.params, state.model_state)
  model.eval()
  np.testing.assert_array_equal(model(inputs["x"]), model(inputs["x"]))


def test_step_keys_never_repeat_initialisation_keys():
  seed = 7
  init_keys = {tuple(np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(seed), i))))
               for i in range(2000)}  # what nnx.Rngs(seed) draws for parameters, in order
  root = train.stream_root(seed, "train_step")
  step_keys = {tuple(np.asarray(jax.random.key_data(jax.random.fold_in(root, s)))) for s in range(2000)}
  assert not init_keys & step_keys
  assert tuple(np.asarray(jax.random.key_data(root))) not in init_keys


def test_encode_pairs_features_with_their_items_on_a_shuffled_mesh_and_drops_padding(vector_task):
  devices = jax.devices()
  mesh = parallel.make_data_mesh([devices[3], devices[1], devices[0], devices[2]])
  graphdef, _, state = make_state(vector_task, tiny_tasks.tiny_loop_config(), mesh)
  items = np.arange(300) * 3 % vector_task.num_examples  # 300 items: two batches of 256, one padded
  out = train.make_encoder(graphdef, mesh)(state)(vector_task._eval_batches(items))
  assert out["features"].shape == (300, 32) and (out["index"] == np.arange(300)).all()
  model = nnx.merge(graphdef, state.params, state.model_state)
  model.eval()
  expected = np.asarray(model.encode(jnp.asarray(vector_task._x[items])))
  np.testing.assert_allclose(out["features"], expected, atol=1e-5)
  np.testing.assert_array_equal(out["label"], vector_task._y[items])


def test_sharded_step_matches_one_device_and_moves_no_images_between_devices():
  """4 simulated devices: loss, rows, gradients and BatchNorm statistics equal the 1-device values."""
  assert jax.device_count() == 4
  config = tiny_config()
  task = tasks.make_task(config)
  outputs = {}
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_data_mesh(devices)
    graphdef, _, state = make_state(task, config, mesh)
    inputs, _ = one_batch(task, mesh, np.arange(64))
    fn = jax.jit(jax.value_and_grad(train.make_objective(graphdef, task, mesh), has_aux=True))
    (loss, (rows, model_state)), grads = fn(state.params, state.model_state, inputs, state.rng)
    outputs[len(devices)] = (loss, np.asarray(rows), model_state, grads)
    if len(devices) == 4:  # the views are stacked per item: only the loss's all-gathers communicate
      hlo = fn.lower(state.params, state.model_state, inputs, state.rng).compile().as_text()
      assert "all-to-all" not in hlo and "collective-permute" not in hlo
  one, four = outputs[1], outputs[4]
  np.testing.assert_allclose(one[0], four[0], rtol=1e-5)
  np.testing.assert_allclose(one[1], four[1], atol=1e-5)
  for x, y in zip(jax.tree.leaves(one[2]) + jax.tree.leaves(one[3]),
                  jax.tree.leaves(four[2]) + jax.tree.leaves(four[3]), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)


# -- SimCLR on digits, end to end ----------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["uniform", "proximity", "knn", "tail"])
def test_end_to_end_each_sampler(tmp_path, sampler):
  # transfer_guard: an implicit host<->device transfer anywhere on the steps' path fails the run.
  results = train.train_and_evaluate(tiny_config(**{"sampler.name": sampler, "transfer_guard": "disallow"}),
                                     str(tmp_path))
  assert results["sampler"] == sampler and results["steps"] == 10
  assert results["knn_accuracy"] > 0.2 and results["linear_accuracy"] > 0.2  # chance is 0.1
  # Both post-warm-up windows, (1, 0) and (1, 1), were sampled from a bank training had fully written.
  assert [(r["epoch"], r["window"]) for r in refreshes(results)] == [(1, 0), (1, 1)]
  for record in refreshes(results):
    assert record["bank_written_fraction"] == 1.0 and record["sampler_seconds"] > 0.0
    assert 0.0 < record["bank_staleness_steps"] < 5.0
  assert results["batch_stats"]["false_negative_rate"] > 0.0
  for record in refreshes(results):  # the digits bank is two views side by side: TBS's loss gap is logged
    assert record["loss_gap"] > 0.0 and record["loss_gap_anchors"] == 256 * (3 if record["window"] == 0
                                                                             else 2)
    assert record["global_loss"] == pytest.approx(record["train_loss"] + record["loss_gap"], abs=1e-5)
  assert [(h["epoch"], "knn_accuracy" in h) for h in results["history"] if h["event"] == "epoch"] == [
      (1, True), (2, True)]
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk["knn_accuracy"] == results["knn_accuracy"]
  assert checkpoint.Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 10
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))


def test_a_sampler_reading_only_the_first_view_trains_end_to_end(tmp_path):
  results = train.train_and_evaluate(tiny_config(**{"sampler.bank_view": "first_view"}), str(tmp_path))
  assert results["steps"] == 10 and results["knn_accuracy"] > 0.2
  for record in refreshes(results):  # hardness from the first views; no pair, so no loss gap
    assert 0.0 < record["mean_neg_cos"] < 1.0 and "loss_gap" not in record


def test_false_negative_control_reaches_the_loss_and_the_window_statistics(tmp_path):
  """Same-label exclusion and the margin change what trains, and each refresh logs the share of
  in-batch negatives the margin drops."""
  plain = train.train_and_evaluate(tiny_config(), str(tmp_path / "plain"))
  controlled = train.train_and_evaluate(
      tiny_config(loss_gap_scores=0,
                  **{"loss.false_negative_margin": 0.5, "loss.exclude_same_label": True}),
      str(tmp_path / "controlled"))
  # Epoch 0 trained with another loss, so the bank the first refresh reads differs.
  assert refreshes(plain)[0]["mean_neg_cos"] != pytest.approx(refreshes(controlled)[0]["mean_neg_cos"],
                                                             abs=1e-4)
  for record in refreshes(controlled):
    assert 0.0 < record["margin_dropped_rate"] < 1.0
    assert "loss_gap" not in record  # loss_gap_scores=0: the gap is not logged
  assert all("margin_dropped_rate" not in record for record in refreshes(plain))


def test_simclr_labels_travel_with_the_batch_into_the_loss():
  config = tiny_config(**{"loss.exclude_same_label": True, "loss.temperature": 0.2})
  task = tasks.make_task(config)
  ids = np.unique(task.pretrain_labels, return_inverse=True)[1]
  items = np.concatenate([np.flatnonzero(ids == 1)[:4], np.flatnonzero(ids == 2)[:4]]).astype(np.int32)
  element = next(task.pretrain_batches(items[None], window=0, start_batch=0))
  np.testing.assert_array_equal(element["inputs"]["label"], ids[items])
  outputs = task.forward(task.make_model(), jax.tree.map(jnp.asarray, element["inputs"]))
  np.testing.assert_array_equal(outputs[2], ids[items])  # forward hands them on to loss_and_rows
  z1, z2 = np.random.default_rng(0).normal(size=(2, 8, 16)).astype(np.float32)
  loss, _ = task.loss_and_rows((z1, z2, element["inputs"]["label"]), axis_name=None)
  assert float(loss) == pytest.approx(float(losses_lib.nt_xent(z1, z2, temperature=0.2,
                                                                labels=ids[items])), rel=1e-6)
  assert float(loss) != pytest.approx(float(losses_lib.nt_xent(z1, z2, temperature=0.2)), rel=1e-3)
  unlabelled = next(tasks.make_task(tiny_config()).pretrain_batches(items[None], window=0,
                                                                     start_batch=0))
  assert "label" not in unlabelled["inputs"]


def test_a_bank_split_over_the_devices_trains_exactly_like_a_replicated_one_and_bf16_halves_it(tmp_path):
  """config.bank_sharding='data' keeps 1/4 of the bank's columns per device through steps, fills and
  checkpoints, and the run samples the same batches as the replicated bank; bfloat16 storage trains."""
  base = {"sampler.name": "proximity", "num_epochs": 2}
  replicated = train.train_and_evaluate(tiny_config(**base), str(tmp_path / "replicated"))
  split = train.train_and_evaluate(tiny_config(**base, bank_sharding="data"), str(tmp_path / "split"))
  assert split["batch_sequence_sha1"] == replicated["batch_sequence_sha1"]
  assert split["knn_accuracy"] == pytest.approx(replicated["knn_accuracy"], abs=0.02)
  half = train.train_and_evaluate(tiny_config(**base, bank_sharding="data", bank_dtype="bfloat16"),
                                  str(tmp_path / "bf16"))
  assert half["knn_accuracy"] > 0.2 and refreshes(half)[0]["mean_neg_cos"] > 0.0

  mesh = parallel.make_data_mesh()
  for workdir, dtype in (("split", jnp.float32), ("bf16", jnp.bfloat16)):
    config = tiny_config(**base, bank_sharding="data", bank_dtype=jnp.dtype(dtype).name)
    task = tasks.make_task(config)
    _, state = train.init_state(task.make_model(), optim.make_optimizer(config, 100), task.num_examples,
                                task.bank_dim, config.seed, mesh, bank_dtype=config.bank_dtype,
                                bank_sharding="data")
    ckpt = checkpoint.Checkpointer(str(tmp_path / workdir / "checkpoints"))
    bank = ckpt.restore(ckpt.latest_step(), checkpoint.abstract_like(state))[0].bank
    assert bank.dtype == dtype and bank.sharding.spec == parallel.bank_sharding(mesh, "data", 32).spec
    assert task.bank_dim == 32 and {s.data.shape for s in bank.addressable_shards} == {(1437, 8)}


def test_simclr_views_travel_as_uint8_and_are_normalised_on_the_device():
  """SimCLR's pipeline sends uint8 pixels (the augmented views, rounded); the task's forward normalises
  them on the device with the dataset's per-channel mean and std."""
  config = tiny_config()
  task = tasks.make_task(config)
  element = next(task.pretrain_batches(np.arange(256, dtype=np.int32).reshape(1, 256), window=0,
                                       start_batch=0))
  views = element["inputs"]
  assert views["view1"].dtype == views["view2"].dtype == np.uint8
  model = task.make_model()
  got = task.forward(model, {k: jnp.asarray(v) for k, v in views.items()})
  mean, std = np.asarray(task.pixel_mean), np.asarray(task.pixel_std)
  floats = {k: jnp.asarray((v / 255.0 - mean) / std, jnp.float32) for k, v in views.items()}
  x = jnp.stack([floats["view1"], floats["view2"]], axis=1).reshape(512, 8, 8, 1)
  want = model(x)[1].reshape(256, 2, -1)
  np.testing.assert_allclose(got[0], want[:, 0], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(got[1], want[:, 1], rtol=1e-4, atol=1e-5)


def test_simclr_evaluation_batches_hold_only_this_processs_rows(monkeypatch):
  """With 2 processes each reads (and decodes) only its half of every evaluation batch, with the same
  item indices, labels and pixels as those columns of the one-process batch."""
  task = tasks.make_task(tiny_config())
  whole = list(task._eval_batches("test"))
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  for process in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda process=process: process)
    part = list(task._eval_batches("test"))
    assert len(part) == len(whole)
    for mine, full in zip(part, whole):
      half = full["index"].shape[0] // 2
      columns = slice(process * half, (process + 1) * half)
      for key in ("index", "label", "inputs"):
        np.testing.assert_array_equal(mine[key], full[key][columns])


def test_fill_encodes_exactly_the_unwritten_rows_with_whole_distinct_rows(vector_task):
  mesh = parallel.make_data_mesh()
  config = tiny_tasks.tiny_loop_config()
  graphdef, _, state = make_state(vector_task, config, mesh)
  fill_step = train.make_fill_step(graphdef, vector_task, mesh)
  written = np.arange(0, vector_task.num_examples, 3)  # a third written at step 2, the rest never
  state = state.replace(step=jnp.int32(7), bank_written_at=state.bank_written_at.at[written].set(2))
  before = np.asarray(state.bank)
  vector_task.pipeline_calls.clear()
  filled = train.fill_unwritten_rows(state, fill_step, vector_task, mesh, batch_size=64, seed=0)
  written_at = np.asarray(filled.bank_written_at)
  assert (written_at >= 0).all() and int(filled.step) == 7  # every row written, no optimiser step
  missing = np.setdiff1d(np.arange(vector_task.num_examples), written)
  assert (written_at[missing] == 7).all()
  assert not np.allclose(np.asarray(filled.bank)[missing], before[missing], atol=1e-3)
  (window, start, shape), = vector_task.pipeline_calls
  assert window == train.FILL_WINDOW_BASE + 7 and shape == (-(-missing.size // 64), 64)
  # With nothing written at all, every row is encoded and no pass holds an item twice.
  _, _, fresh = make_state(vector_task, config, mesh)  # fill_step donated the first state
  empty = fresh.replace(step=jnp.int32(7))
  rows = []
  original = vector_task.pretrain_batches
  vector_task.pretrain_batches = lambda b, **kw: (rows.append(b), original(b, **kw))[1]
  try:
    filled = train.fill_unwritten_rows(empty, fill_step, vector_task, mesh, batch_size=64, seed=0)
  finally:
    vector_task.pretrain_batches = original
  assert (np.asarray(filled.bank_written_at) == 7).all()
  assert all(len(set(row)) == 64 for row in rows[0])


def test_without_warmup_the_first_window_is_sampled_from_a_fully_encoded_bank(tmp_path):
  config = tiny_config(**{"sampler.warmup_epochs": 0, "num_epochs": 1, "sampler.refresh_steps": 0})
  results = train.train_and_evaluate(config, str(tmp_path))
  (record,) = refreshes(results)
  assert (record["step"], record["bank_written_fraction"]) == (0, 1.0)
  assert record["bank_staleness_steps"] == 0.0  # every row encoded just before sampling


@pytest.mark.parametrize("sampler", ["proximity", "tail"])
def test_resume_restores_the_sampler_state_and_the_pending_window(tmp_path, vector_task, monkeypatch,
                                                                   sampler):
  """Windows of 8, 8, 6 steps; (1, 2) prefers items (1, 0) and (1, 1) did not cover, so a run that lost
  the sampler's covered mask on resume would sample other batches (and Tail Batch Sampling's (1, 1) and
  (1, 2) continue the order made at (1, 0): a run that lost it would order another bank). The
  precompile pass runs only in a run that starts inside the warm-up epoch."""
  config = lambda **kw: tiny_tasks.tiny_loop_config(**{"sampler.name": sampler, **kw})
  straight = train.train_and_evaluate(config(), str(tmp_path / "straight"), task=vector_task)
  precompiled = []
  original = feeder_lib.BatchFeeder.precompile
  monkeypatch.setattr(feeder_lib.BatchFeeder, "precompile",
                      lambda self, bank: precompiled.append(True) or original(self, bank))
  run = lambda stop: train.train_and_evaluate(config(stop_after_steps=stop), str(tmp_path / "resumed"),
                                              task=vector_task)
  stopped = lambda steps: {"steps": steps, "stopped_early": True, "stop_reason": "stop_after_steps"}
  assert run(20) == stopped(20)  # in the warm-up epoch (steps 0-21): precompiled
  assert run(13) == stopped(33)  # resumed in the warm-up epoch: precompiled; stops inside (1, 1)
  assert len(precompiled) == 2
  assert run(5) == stopped(38)   # (1, 2) sampled at step 37: pending
  assert len(precompiled) == 2   # resumed after warm-up: no throw-away sampler pass
  _, host, meta = checkpoint.Checkpointer(str(tmp_path / "resumed" / "checkpoints")).restore(38)
  assert meta["pending"] == [1, 2] and host["next_batches"].shape == (8, 64)
  resumed = train.train_and_evaluate(config(), str(tmp_path / "resumed"), task=vector_task)
  assert resumed["batch_sequence_sha1"] == straight["batch_sequence_sha1"]
  assert resumed["steps"] == straight["steps"] == 44
  timers = ("train_seconds", "sampler_seconds", "train_steps")
  untimed = lambda history: [{k: v for k, v in h.items() if k not in timers} for h in history]
  assert untimed(resumed["history"]) == untimed(straight["history"])  # same refreshes, same kNN
  # Throughput counts the steps each process ran: epoch 1 was finished by the run resumed at step 20
  # (2 steps), epoch 2 by the one resumed at step 38 (6 steps).
  steps_run = lambda results: [h["train_steps"] for h in results["history"] if h["event"] == "epoch"]
  assert steps_run(straight) == [22, 22] and steps_run(resumed) == [2, 6]

  def final_state(workdir):
    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"))
    return ckpt.restore(ckpt.latest_step())[0]

  a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "resumed")
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


class _FailingEvaluationTask(tiny_tasks.DigitVectorsTask):
  def evaluate(self, encode, *, final):
    raise RuntimeError("evaluation broke")


def test_an_exception_still_closes_the_checkpointer_the_best_model_keeper_and_the_writer(
    tmp_path, monkeypatch):
  closed = []
  for cls in (checkpoint.Checkpointer, train._SummaryWriter, selection.BestModel):
    original = cls.close
    monkeypatch.setattr(cls, "close", lambda self, original=original, name=cls.__name__: (
        closed.append(name), original(self))[1])
  with pytest.raises(RuntimeError, match="evaluation broke"):
    train.train_and_evaluate(tiny_tasks.tiny_loop_config(num_epochs=1), str(tmp_path),
                             task=_FailingEvaluationTask())
  assert sorted(set(closed)) == ["BestModel", "Checkpointer", "_SummaryWriter"]
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))


def test_a_dropout_model_trains_end_to_end(tmp_path, vector_task):
  config = tiny_tasks.tiny_loop_config(**{"num_epochs": 3, "transfer_guard": "disallow"})
  results = train.train_and_evaluate(config, str(tmp_path), task=vector_task)
  assert results["steps"] == 66 and results["knn_accuracy"] > 0.5
  # The loss of one fixed batch (fixed dropout key) falls from the initial to the trained parameters.
  mesh = parallel.make_data_mesh()
  graphdef, _, initial = make_state(vector_task, config, mesh)
  ckpt = checkpoint.Checkpointer(str(tmp_path / "checkpoints"))
  trained = ckpt.restore(ckpt.latest_step(), checkpoint.abstract_like(initial))[0]
  inputs, _ = one_batch(vector_task, mesh, np.arange(64))
  objective = jax.jit(train.make_objective(graphdef, vector_task, mesh))
  loss = lambda state: float(objective(state.params, state.model_state, inputs, initial.rng)[0])
  assert loss(trained) < loss(initial) - 0.5, (loss(initial), loss(trained))
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(trained.model_state)]
  assert any("dropout" in p and "key" in p for p in paths), paths  # the RNG stream is checkpointed


def test_tfds_dataset_end_to_end_with_mock_data(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = tiny_config(dataset="cifar10", num_epochs=1, batch_size=32, eval_batch_size=64,
                       **{"sampler.name": "proximity", "sampler.warmup_epochs": 0,
                          "sampler.refresh_steps": 0})
  with tfds.testing.mock_data(num_examples=96):
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results["dataset"] == "cifar10" and results["steps"] == 3
  assert set(results) >= {"knn_accuracy", "linear_accuracy"}
  assert refreshes(results)[0]["bank_written_fraction"] == 1.0


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, match", [
    ("dataset", "mnist3d", "config.dataset"),
    ("sampler.name", "hardest", "config.sampler.name"),
    ("loss.name", "triplet", "config.loss.name"),
    ("loss.temperature", 0.0, "config.loss.temperature"),
    ("batch_size", 66, "config.batch_size"),
    ("eval_batch_size", 510, "config.eval_batch_size"),
    ("num_epochs", 0, "config.num_epochs"),
    ("optimizer.name", "adagrad", "config.optimizer.name"),
    ("optimizer.learning_rate", -1.0, "config.optimizer.learning_rate"),
    ("bank_dtype", "float16", "config.bank_dtype='float16'.*'float32', 'bfloat16'"),
    ("bank_sharding", "rows", "config.bank_sharding='rows'.*'replicated', 'data'"),
    ("loss.false_negative_margin", 0.0, r"config.loss.false_negative_margin=0 is out of range"),
    ("loss_gap_scores", -1, r"config.loss_gap_scores=-1 is out of range"),
    ("transfer_guard", "off", r"config.transfer_guard='off'.*'allow', 'log', 'disallow'"),
    ("sampler.bank_view", "second_view", r"config.sampler.bank_view='second_view'.*'rows', 'first_view'"),
])
def test_bad_config_values(tmp_path, key, value, match):
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(tiny_config(**{key: value}), str(tmp_path))


def test_a_bank_width_that_does_not_split_over_the_devices_is_one_clear_error(tmp_path):
  config = tiny_config(bank_sharding="data", **{"model.projection_dim": 17})  # bank: 2 × 17 wide
  with pytest.raises(ValueError, match="config.bank_sharding='data' splits the bank's 34 columns over 4"):
    train.train_and_evaluate(config, str(tmp_path))


def test_missing_dataset_offline_is_one_clear_error(tmp_path):
  from prosampler_jax import data  # pylint: disable=g-import-not-at-top
  config = tiny_config(dataset="cifar10", data_dir=str(tmp_path / "empty"))
  with pytest.raises(data.DatasetNotFoundError, match="data_dir"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_wrong_config_key_fails():
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", "experiments/configs/simclr_digits.py", "",
                                  flag_values=flag_values, lock_config=True)
  with pytest.raises(Exception, match="sampler.restart_probability"):
    flag_values(["prog", "--config.sampler.restart_probability=0.3"])


def test_throughput_does_not_depend_on_the_checkpoint_cadence(tmp_path, monkeypatch):
  """Checkpoint writes are left out of the epoch's clock, but the sampling a save waits for is training
  time, in whichever epoch it happens (a save at an epoch's end waits for the next epoch's first window).
  Each window's sampling is made slow (1 s, three windows an epoch, one step of look-ahead: longer than
  the epoch's steps on any machine); with a checkpoint every 2 steps a save waits for the pending window,
  and the rate must not look faster than with one checkpoint at the end (it looked up to 15× faster when
  that wait counted as checkpoint time, and 1.7× when the wait at an epoch's end was in no epoch)."""
  original = samplers.UniformSampler.sample

  def slow_sample(self, epoch, embeddings=None, **kwargs):
    time.sleep(1.0)
    return original(self, epoch, embeddings, **kwargs)

  monkeypatch.setattr(samplers.UniformSampler, "sample", slow_sample)
  rate = lambda cadence: train.train_and_evaluate(
      tiny_config(checkpoint_steps=cadence, num_epochs=3, batch_size=64, **{
          "sampler.name": "uniform", "sampler.refresh_steps": 8, "sampler.lookahead_steps": 8,
          "eval_every_epochs": 0}), str(tmp_path / str(cadence)))["train_steps_per_second"]
  often, rarely = rate(2), rate(1000)
  assert often < 1.5 * rarely, (often, rarely)


class _RelabelledVectorsTask(tiny_tasks.DigitVectorsTask):
  """The same digits, same size, other labels: "a different dataset of the same size"."""

  def __init__(self):
    super().__init__(dropout=0.2)
    self.pretrain_labels = np.roll(self.pretrain_labels, 1)


class _SmallerVectorsTask(tiny_tasks.DigitVectorsTask):
  def __init__(self):
    super().__init__(dropout=0.2)
    self._train = self._train[:1000]
    self.num_examples, self.pretrain_labels = 1000, self._y[self._train]


@pytest.mark.parametrize("other, key, old, new", [
    (_RelabelledVectorsTask, "data.labels_sha1", None, None),
    (_SmallerVectorsTask, "data.num_examples", 1437, 1000),
])
def test_resuming_on_other_data_is_refused_by_name_before_any_restore(tmp_path, other, key, old, new):
  config = lambda: tiny_tasks.tiny_loop_config(stop_after_steps=5)
  first = train.train_and_evaluate(config(), str(tmp_path), task=tiny_tasks.DigitVectorsTask(dropout=0.2))
  assert first["steps"] == 5
  with pytest.raises(ValueError, match=r"Refusing to resume .* with other data") as error:
    train.train_and_evaluate(config(), str(tmp_path), task=other())
  assert f"  {key}: " in str(error.value)
  if old is not None:
    assert f"{key}: {old!r} -> {new!r}" in str(error.value)
  # The same data resumes.
  assert train.train_and_evaluate(config(), str(tmp_path),
                                  task=tiny_tasks.DigitVectorsTask(dropout=0.2))["steps"] == 10


def test_the_first_log_after_a_resume_averages_the_whole_interval(tmp_path, vector_task, monkeypatch):
  # Logs every 4 steps; the run stops at steps 10 and 19 (between logs) and resumes: its train/* figures
  # are those of the uninterrupted run, the steps before each stop included.
  logged = []
  writer = train._SummaryWriter  # pylint: disable=protected-access
  original = writer.scalars
  monkeypatch.setattr(writer, "scalars", lambda self, step, values: (
      logged.append({(step, k): v for k, v in values.items()
                     if k.startswith("train/") and k != "train/steps_per_second"}),
      original(self, step, values))[1])
  config = lambda **kw: tiny_tasks.tiny_loop_config(log_every_steps=4, num_epochs=1, **kw)

  def figures(*stops):
    logged.clear()
    for stop in stops:
      train.train_and_evaluate(config(stop_after_steps=stop), str(tmp_path / str(stops)), task=vector_task)
    train.train_and_evaluate(config(), str(tmp_path / str(stops)), task=vector_task)
    return {k: v for entry in logged for k, v in entry.items()}

  straight, resumed = figures(), figures(10, 9)
  assert sorted(straight) == sorted(resumed) and (12, "train/loss") in straight
  for key, value in straight.items():
    assert resumed[key] == pytest.approx(value, rel=1e-5), key
