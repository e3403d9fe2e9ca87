"""Tests for config checks before data loads and for the resume fingerprint."""

import dataclasses
import importlib

import pytest
from absl import flags
from ml_collections import config_flags

import tiny_tasks
from experiments.configs import simclr_digits
from prosampler_jax import run_config
from prosampler_jax import train


def digits_config(**overrides):
  return tiny_tasks.with_overrides(simclr_digits.get_config(), **overrides)


@pytest.fixture
def data_never_loads(monkeypatch):
  """Makes any image-data load fail the test: checks must reject bad values before it."""
  from prosampler_jax import data  # pylint: disable=g-import-not-at-top

  def load(*args, **kwargs):
    raise AssertionError("data was loaded before the bad config value was rejected")

  monkeypatch.setattr(data, "load_image_source", load)


@pytest.mark.parametrize("key, value, match", [
    # the loop's keys (run_config.validate)
    ("optimizer.learning_rate", -1.0, r"config.optimizer.learning_rate=-1 is out of range; allowed: \(0"),
    ("model.dtype", "bogus", "config.model.dtype='bogus' is not supported; allowed: 'float32'"),
    ("sampler.num_neighbors", 0, r"config.sampler.num_neighbors=0 is out of range"),
    ("sampler.num_candidates", 10, r"config.sampler.num_candidates=10 is out of range; allowed: \[50"),
    ("sampler.restart_prob", 1.5, "config.sampler.restart_prob=1.5"),
    ("sampler.graph_backend", "faiss", "config.sampler.graph_backend='faiss'"),
    ("stop_after_steps", -1, "config.stop_after_steps"),
    ("data.loader", "grain", "config.data.loader='grain' is not supported; allowed: 'auto', 'tf', 'numpy'"),
    ("data.loader", "numpy", "config.data.loader='numpy' serves text and graph rows; allowed for task "
                             "'simclr': auto, tf"),
    # the task's keys (SimCLRTask, before its data loads)
    ("loss.temperature", 0.0, r"config.loss.temperature=0 is out of range; allowed: \(0"),
    ("loss.tau_plus", 1.0, r"config.loss.tau_plus=1 is out of range; allowed: \[0, 1\)"),
    ("dataset", "mnist3d", "config.dataset='mnist3d' is not supported"),
    ("augment.crop_scale", (0.9, 0.5), r"config.augment.crop_scale\[1\]=0.5 is out of range"),
    ("augment.jitter_prob", 2.0, "config.augment.jitter_prob=2"),
    ("eval.knn_k", 0, "config.eval.knn_k=0"),
])
def test_every_bad_value_is_rejected_by_key_before_data_loads(tmp_path, data_never_loads, key, value,
                                                              match):
  config = digits_config(**{key: value})
  if key == "loss.tau_plus":
    config.loss.name = "dcl"  # the SimCLR default nt_xent has no τ⁺
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(config, str(tmp_path))


def test_tail_sampler_values_are_checked_too(tmp_path, data_never_loads):
  config = digits_config(**{"sampler.name": "tail", "sampler.quantile": 1.0})
  with pytest.raises(ValueError, match=r"config.sampler.quantile=1 is out of range; allowed: \(0, 1\)"):
    train.train_and_evaluate(config, str(tmp_path))


def test_every_augmentation_field_is_a_config_key_settable_from_the_command_line(monkeypatch):
  from prosampler_jax import data  # pylint: disable=g-import-not-at-top
  from prosampler_jax.tasks import simclr  # pylint: disable=g-import-not-at-top
  fields = [f.name for f in dataclasses.fields(data.AugmentConfig)]
  assert sorted(simclr_digits.get_config().augment) == sorted(fields)
  for override, expected in (("crop_scale=(0.2,1.0)", {"crop_scale": (0.2, 1.0)}),
                             ("blur_prob=0.5", {"blur_prob": 0.5}), ("flip=True", {"flip": True})):
    argv = ["prog", "--config=experiments/configs/simclr_digits.py", f"--config.augment.{override}"]
    monkeypatch.setattr("sys.argv", argv)  # config_flags finds the override flags in sys.argv
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values, lock_config=True)
    flag_values(argv)
    augment = simclr._augment_config(data, flag_values.config)  # pylint: disable=protected-access
    defaults = data.augment_config_for("digits")
    assert augment == dataclasses.replace(defaults, **expected) and augment != defaults


def test_resuming_with_a_different_config_lists_each_differing_key():
  saved = run_config.flatten(digits_config())
  changed = digits_config(**{"loss.name": "dcl", "optimizer.learning_rate": 1e-2,
                             "sampler.refresh_steps": 5, "model.width": 64})
  with pytest.raises(ValueError, match="different config") as error:
    run_config.check_resume(saved, changed, step=40, checkpoint_dir="/w/checkpoints", total_steps=330)
  message = str(error.value)
  for line in ("loss.name: 'nt_xent' -> 'dcl'", "optimizer.learning_rate: 0.001 -> 0.01",
               "sampler.refresh_steps: 0 -> 5", "model.width: 32 -> 64", "4 key(s)", "step 40"):
    assert line in message, message


def test_resumable_keys_may_change_and_a_saved_json_round_trip_matches():
  import json  # pylint: disable=g-import-not-at-top
  saved = json.loads(json.dumps(run_config.flatten(digits_config(**{"augment.crop_scale": (0.2, 1.0)}))))
  resumed = digits_config(num_epochs=60, data_dir="/elsewhere", log_every_steps=7, checkpoint_steps=3,
                          keep_checkpoints=9, stop_after_steps=5,
                          **{"augment.crop_scale": (0.2, 1.0)})
  run_config.check_resume(saved, resumed, step=40, checkpoint_dir="/w", total_steps=660)
  with pytest.raises(ValueError, match="fewer than the 40 steps"):
    run_config.check_resume(saved, digits_config(num_epochs=3, **{"augment.crop_scale": (0.2, 1.0)}),
                            step=40, checkpoint_dir="/w", total_steps=33)


@pytest.mark.parametrize("name", ["simclr_digits", "simclr_cifar10", "simclr_cifar100", "simclr_stl10",
                                  "simclr_imagenet100", "simcse_minilm_stsb", "simcse_unsup_bert",
                                  "simcse_sup_bert"])
def test_every_launchable_config_passes_the_checks(name):
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  run_config.validate(config)
  assert config.task in ("simclr", "simcse")


def test_the_readme_lists_exactly_the_keys_a_resumed_run_may_change():
  import pathlib  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
  paragraph = readme.split("These keys may change (`run_config.RESUMABLE_KEYS`):", 1)[1].split(
      "(a test keeps", 1)[0]
  assert set(re.findall(r"`([a-z_.]+)`", paragraph)) == set(run_config.RESUMABLE_KEYS)


def test_a_checkpoint_without_a_data_fingerprint_still_resumes_but_a_changed_one_is_refused():
  config = digits_config()
  saved = run_config.flatten(config)
  data = {"data.num_examples": 10, "data.labels_sha1": "abc"}
  run_config.check_resume(saved, config, step=1, checkpoint_dir="/w", total_steps=100, data=data)
  run_config.check_resume({**saved, **data}, config, step=1, checkpoint_dir="/w", total_steps=100,
                          data=data)
  with pytest.raises(ValueError, match=r"with other data.*\n  data.labels_sha1: 'abc' -> 'abd'"):
    run_config.check_resume({**saved, **data}, config, step=1, checkpoint_dir="/w", total_steps=100,
                            data={**data, "data.labels_sha1": "abd"})


@pytest.mark.parametrize("name", ["simclr_imagenet1k", "simcse_unsup_bert", "simcse_sup_bert"])
def test_full_scale_configs_keep_a_bf16_bank_split_over_the_devices(name):
  """Their float32 replicated banks are 1.3–5.9 GB on every device (experiments/bench/bank_memory.py)."""
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  assert (config.bank_dtype, config.bank_sharding) == ("bfloat16", "data")


def test_keys_the_sampler_does_not_read_are_named_and_refused_as_overrides():
  config = simclr_digits.get_config()
  config.sampler.name = "tail"
  unread = run_config.unread_keys(config)
  assert "sampler.num_candidates" in unread and "sampler.restart_prob" in unread
  assert not {"sampler.quantile", "sampler.max_neighbors", "sampler.graph", "sampler.refresh_steps",
              "sampler.warmup_epochs", "sampler.lookahead_steps", "sampler.name"} & set(unread)
  run_config.check_overrides_read(config, ["sampler.name", "sampler.quantile", "num_epochs"])
  with pytest.raises(ValueError, match=r"config.sampler.num_candidates would change nothing: sampler 'tail' "
                                       r"does not read it; allowed for 'tail': .*config.sampler.quantile"):
    run_config.check_overrides_read(config, ["sampler.name", "sampler.num_candidates"])
  config.sampler.name = "proximity"
  run_config.check_overrides_read(config, ["sampler.num_candidates", "sampler.restart_prob"])
  assert "sampler.quantile" in run_config.unread_keys(config)
  config.sampler.name = "uniform"
  assert "sampler.num_neighbors" in run_config.unread_keys(config)


@pytest.mark.parametrize("name, key, reader", [
    ("graphcl_mutag", "augment.blur_prob", "task 'graphcl'"),   # a SimCLR augmentation
    ("simcse_minilm_stsb", "eval.knn_k", "task 'simcse'"),      # SimCLR's monitor
    ("simcse_minilm_stsb", "model.width", "task 'simcse'"),     # a ResNet's width: SimCSE loads BERT
    ("simclr_digits", "graph.max_degree", "task 'simclr'"),
    ("simclr_digits", "max_examples", "task 'simclr'"),
    ("simclr_digits", "loss.beta", "loss 'nt_xent'"),          # HCL's hardness under NT-Xent
    ("graphcl_mutag", "loss.tau_plus", "loss 'graphcl'")])
def test_keys_the_task_or_the_loss_does_not_read_are_named_and_refused_as_overrides(name, key, reader):
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  if "." in key and key.split(".")[0] not in config:
    config[key.split(".")[0]] = {}
  if key.split(".")[-1] not in (config[key.split(".")[0]] if "." in key else config):
    (config[key.split(".")[0]] if "." in key else config)[key.split(".")[-1]] = 1
  assert key in run_config.unread_keys(config)
  with pytest.raises(ValueError, match=rf"config.{key} would change nothing: {reader} does not read it; "
                                       rf"allowed for '\w+': config\."):
    run_config.check_overrides_read(config, [key, "num_epochs"])


def test_keys_each_task_reads_are_allowed_and_the_loss_reads_its_own_hyperparameters():
  for name in ("simclr_digits", "simcse_minilm_stsb", "graphcl_mutag"):
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    read = [key for key in run_config.flatten(config) if key not in run_config.unread_keys(config)]
    run_config.check_overrides_read(config, read)
  config = digits_config(**{"loss.name": "hcl"})
  assert not {"loss.beta", "loss.tau_plus"} & set(run_config.unread_keys(config))
  assert {"model.encoder", "augment.blur_prob", "eval.knn_k", "data_reader"}.isdisjoint(
      run_config.unread_keys(config))


def _config_reads(module_path: str) -> set[str]:
  """The dotted task-specific keys a module's source reads as ``config.<section>.<key>``/``config.<key>``."""
  import re  # pylint: disable=g-import-not-at-top
  from prosampler_jax import tasks  # pylint: disable=g-import-not-at-top
  with open(module_path, encoding="utf-8") as f:
    source = f.read()
  reads = set()
  for section, key in re.findall(r"config\.(\w+)(?:\.(\w+))?", source):
    if section in tasks.TASK_SECTIONS and key:  # config.<section>.items(): the whole section
      reads.add(f"{section}.{key}" if key != "items" else f"{section}.*")
    elif section in tasks.TASK_TOP_KEYS:
      reads.add(section)
  return reads


@pytest.mark.parametrize("task", ["simclr", "simcse", "graphcl"])
def test_the_task_keys_table_lists_exactly_what_each_task_module_reads(task):
  """tasks.TASK_KEYS is what unread_keys trusts: a task that starts reading another key (or stops
  reading one) must change the table, or a key it reads would be refused as an override."""
  import os  # pylint: disable=g-import-not-at-top
  from prosampler_jax import tasks  # pylint: disable=g-import-not-at-top
  reads = _config_reads(os.path.join(os.path.dirname(tasks.__file__), f"{task}.py"))
  assert reads == set(tasks.TASK_KEYS[task])


def test_runs_saved_before_a_key_existed_resume_at_its_neutral_value_and_not_at_another():
  config = digits_config()
  saved = {k: v for k, v in run_config.flatten(config).items() if k not in run_config.ADDED_KEYS}
  assert run_config.differences(saved, run_config.flatten(config)) == []
  config.sampler.bank_view = "first_view"
  assert run_config.differences(saved, run_config.flatten(config)) == [
      ("sampler.bank_view", "rows", "first_view")]
  # Each neutral value is today's default: the digits config's, and for GraphCL's keys its paper recipe's
  # (what its runs trained before the released-code recipe existed).
  from experiments.configs import graphcl_mutag  # pylint: disable=g-import-not-at-top
  defaults = {**run_config.flatten(graphcl_mutag.get_config("paper")), **run_config.flatten(digits_config())}
  for key, neutral in run_config.ADDED_KEYS.items():
    assert defaults[key] == neutral, key
