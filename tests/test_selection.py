"""Tests for model selection: the final evaluation uses the model of the best monitor evaluation."""

import os

import pytest

import tiny_tasks
from prosampler_jax import checkpoint
from prosampler_jax import train

pytestmark = pytest.mark.slow


class SelectingTask(tiny_tasks.DigitVectorsTask):
  selection_metric = "knn_accuracy"


def config(**overrides):
  # A high learning rate makes the kNN monitor move between evaluations; with seed 1 the best of them
  # (step 25) is well above the last one, which the test needs.
  return tiny_tasks.tiny_loop_config(**{"eval_every_epochs": 0, "eval_every_steps": 5, "seed": 1,
                                        "optimizer.learning_rate": 3e-2, **overrides})


@pytest.fixture(scope="module")
def task():
  return SelectingTask(dropout=0.2)


def test_the_final_evaluation_is_of_the_best_monitored_model_and_survives_resume(tmp_path, task):
  straight = train.train_and_evaluate(config(), str(tmp_path / "straight"), task=task)
  evals = [h for h in straight["history"] if "knn_accuracy" in h]
  assert [h["step"] for h in evals] == list(range(5, 44, 5)) + [44]  # the last step is a candidate
  best = max(evals, key=lambda h: (h["knn_accuracy"], -h["step"]))
  assert straight["selected_step"] == best["step"] and straight["selection_metric"] == "knn_accuracy"
  assert straight["knn_accuracy"] == pytest.approx(best["knn_accuracy"], abs=1e-9)
  assert best["step"] != 44, "the test needs a run whose best model is not its last"
  best_dir = checkpoint.Checkpointer(str(tmp_path / "straight" / "checkpoints_best"))
  assert best_dir.all_steps() == [best["step"]] and best_dir.verify(best["step"]) is None

  train.train_and_evaluate(config(stop_after_steps=best["step"] + 6), str(tmp_path / "resumed"),
                           task=task)
  resumed = train.train_and_evaluate(config(), str(tmp_path / "resumed"), task=task)
  assert resumed["selected_step"] == straight["selected_step"]
  assert resumed["knn_accuracy"] == pytest.approx(straight["knn_accuracy"], abs=1e-9)


def test_tasks_without_a_selection_metric_are_evaluated_on_their_last_model(tmp_path):
  results = train.train_and_evaluate(config(), str(tmp_path), task=tiny_tasks.DigitVectorsTask())
  assert "selected_step" not in results
  assert not os.path.exists(tmp_path / "checkpoints_best")


def test_a_damaged_best_model_is_moved_aside_and_the_rerun_finishes_on_the_last_model(tmp_path, task):
  """A damaged checkpoints_best step no longer blocks every rerun: it is moved aside like a damaged
  training step, and results.json says the last model was evaluated and why."""
  first = train.train_and_evaluate(config(stop_after_steps=31), str(tmp_path), task=task)
  assert first["stopped_early"]
  best_dir = tmp_path / "checkpoints_best"
  (best_step,) = checkpoint.Checkpointer(str(best_dir)).all_steps()
  victim = max((p for p in (best_dir / str(best_step)).rglob("*") if p.is_file() and p.name != "checksums.json"),
               key=lambda p: p.stat().st_size)
  victim.write_bytes(victim.read_bytes()[:-7])  # truncated
  results = train.train_and_evaluate(config(), str(tmp_path), task=task)
  assert results["selected_step"] == results["steps"] == 44
  assert results["selection_fallback"].startswith(f"the best model (step {best_step}) in {best_dir} is damaged")
  assert "the last model was evaluated instead" in results["selection_fallback"]
  assert os.path.isdir(tmp_path / "checkpoints_best_broken" / str(best_step))
