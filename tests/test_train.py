"""End-to-end tests of the one training loop (SimCLR on real digits, and a tfds dataset via mock_data)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from experiments.configs import simclr_digits
from prosampler_jax import checkpoint
from prosampler_jax import parallel
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
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


@pytest.mark.parametrize("sampler", ["uniform", "proximity", "knn", "tail"])
def test_end_to_end_each_sampler(tmp_path, sampler):
  results = train.train_and_evaluate(tiny_config(**{"sampler.name": sampler}), str(tmp_path))
  assert results["sampler"] == sampler and results["steps"] == 10
  assert 0.0 <= results["knn_accuracy"] <= 1.0 and 0.0 <= results["linear_accuracy"] <= 1.0
  assert results["knn_accuracy"] > 0.2  # 10 classes: chance is 0.1; even 10 steps learn something
  stats = results["batch_stats"]
  assert 0.0 < stats["coverage"] <= 1.0 and 0.0 <= stats["false_negative_rate"] <= 1.0
  assert [h["epoch"] for h in results["history"]] == [1, 2]
  on_disk = json.loads((tmp_path / "results.json").read_text())
  assert on_disk["knn_accuracy"] == results["knn_accuracy"]
  assert checkpoint.Checkpointer(str(tmp_path / "checkpoints")).latest_step() == 10
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))


def test_resume_gives_the_same_batches_and_params(tmp_path):
  config = tiny_config(**{"sampler.name": "proximity", "checkpoint_steps": 100})
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  # Leave at step 7: inside epoch 1's first window (steps 5-7), after the next window's sampling was
  # started in the background (lookahead 2), so the checkpoint must carry that pending index array.
  partial = train.train_and_evaluate(
      tiny_config(**{"sampler.name": "proximity", "checkpoint_steps": 100,
                     "stop_after_steps": 7}), str(tmp_path / "resumed"))
  assert partial == {"steps": 7, "stopped_early": True}
  _, host, meta = checkpoint.Checkpointer(str(tmp_path / "resumed" / "checkpoints")).restore(7)
  assert meta["pending"] == [1, 1] and host["next_batches"].shape == (3, 256)
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert resumed["batch_sequence_sha1"] == straight["batch_sequence_sha1"]
  assert resumed["steps"] == straight["steps"] == 10
  knn = lambda result: [h["knn_accuracy"] for h in result["history"]]
  assert knn(resumed) == knn(straight) and len(knn(straight)) == 2

  def final_state(workdir):
    ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"))
    return ckpt.restore(ckpt.latest_step())[0]

  a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "resumed")
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  assert resumed["knn_accuracy"] == pytest.approx(straight["knn_accuracy"], abs=1e-6)


def test_sharded_step_matches_one_device():
  """4 simulated devices: loss, gradients and BatchNorm statistics equal the 1-device computation."""
  assert jax.device_count() == 4
  from prosampler_jax import tasks  # pylint: disable=g-import-not-at-top
  config = tiny_config()
  task = tasks.make_task(config)
  model = task.make_model()
  graphdef, params, stats = __import__("flax").nnx.split(model, __import__("flax").nnx.Param,
                                                          __import__("flax").nnx.BatchStat)
  batch = next(task.pretrain_batches(np.arange(64, dtype=np.int32).reshape(1, 64), window=0,
                                     start_batch=0))
  outputs = {}
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_data_mesh(devices)
    views = parallel.interleave_views(batch["view1"], batch["view2"], len(devices))
    x = parallel.to_global(views, mesh)
    fn = jax.jit(train.make_loss_and_grad(graphdef, train.make_loss(config), mesh))
    (loss, (rows, new_stats)), grads = fn(jax.device_put(params, parallel.replicated(mesh)),
                                          jax.device_put(stats, parallel.replicated(mesh)), x)
    outputs[len(devices)] = (loss, np.asarray(rows), new_stats, grads)
  one, four = outputs[1], outputs[4]
  np.testing.assert_allclose(one[0], four[0], rtol=1e-5)
  np.testing.assert_allclose(one[1], four[1], atol=1e-5)
  for x, y in zip(jax.tree.leaves(one[2]) + jax.tree.leaves(one[3]),
                  jax.tree.leaves(four[2]) + jax.tree.leaves(four[3])):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)


def test_tfds_dataset_end_to_end_with_mock_data(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = tiny_config(dataset="cifar10", num_epochs=1, batch_size=32, eval_batch_size=64,
                       **{"sampler.name": "proximity", "sampler.warmup_epochs": 0,
                          "sampler.refresh_steps": 0})
  with tfds.testing.mock_data(num_examples=96):
    results = train.train_and_evaluate(config, str(tmp_path))
  assert results["dataset"] == "cifar10" and results["steps"] == 3
  assert 0.0 <= results["linear_accuracy"] <= 1.0


# -- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, match", [
    ("dataset", "mnist3d", "config.dataset"),
    ("sampler.name", "hardest", "config.sampler.name"),
    ("loss.name", "triplet", "config.loss.name"),
    ("batch_size", 66, "config.batch_size"),
    ("eval_batch_size", 510, "config.eval_batch_size"),
    ("num_epochs", 0, "config.num_epochs"),
])
def test_bad_config_values(tmp_path, key, value, match):
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(tiny_config(**{key: value}), str(tmp_path))


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


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = tiny_config(**{"optimizer.learning_rate": 1e30, "checkpoint_steps": 1,
                          "log_every_steps": 1})
  with pytest.raises(FloatingPointError, match="Non-finite loss") as error:
    train.train_and_evaluate(config, str(tmp_path))
  good = checkpoint.Checkpointer(str(tmp_path / "checkpoints")).latest_step()
  assert good is not None and f"step {good}" in str(error.value)


def test_window_schedule_splits_epochs_into_refresh_windows():
  schedule = train.WindowSchedule(steps_per_epoch=11, refresh_steps=4)
  assert schedule.windows_per_epoch == 3
  assert [schedule.locate(s) for s in (0, 5, 10, 11)] == [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 0)]
  assert [schedule.window_length(w) for w in range(3)] == [4, 4, 3]
  assert schedule.window_start(1, 2) == 19
  assert schedule.next_window(0, 2) == (1, 0) and schedule.next_window(0, 1) == (0, 2)
