"""Tests for the divergence monitor: the first unhealthy step, found without syncing every step."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from prosampler_jax import divergence


def _metrics(step, loss=1.0, grad_norm=2.0, param_norm=3.0):
  return {"loss": jnp.float32(loss), "grad_norm": jnp.float32(grad_norm),
          "param_norm": jnp.float32(param_norm), "step": jnp.int32(step)}


def _monitor():
  return divergence.DivergenceMonitor(advice="Lower the rate.", last_good=lambda: (4, "/ck"))


def test_healthy_steps_return_the_last_loss_and_are_forgotten():
  monitor = _monitor()
  assert monitor.check() is None
  for step in (1, 2, 3):
    monitor.record(step, _metrics(step, loss=float(step)))
  assert monitor.check() == 3.0 and int(monitor.first_bad) == -1


@pytest.mark.parametrize("bad", [{"loss": np.nan}, {"grad_norm": np.inf}, {"param_norm": np.inf}])
def test_the_first_unhealthy_step_is_named_with_its_figures_and_the_last_good_checkpoint(bad):
  monitor = _monitor()
  monitor.record(5, _metrics(5))
  monitor.record(6, _metrics(6, **bad))
  monitor.record(7, _metrics(7, loss=np.nan, grad_norm=np.nan, param_norm=np.nan))
  assert int(monitor.first_bad) == 6  # a device scalar the sampler thread can read
  with pytest.raises(divergence.TrainingDiverged, match="diverged at step 6: ") as error:
    monitor.check()
  message = str(error.value)
  assert f"{next(iter(bad))} {next(iter(bad.values()))}" in message
  assert "last good checkpoint is step 4 under /ck" in message and message.endswith("Lower the rate.")
  assert error.value.step == 6


def test_interval_means_average_every_step_since_the_last_log_across_checks():
  monitor = _monitor()
  assert monitor.interval_means() == {}
  for step, loss in ((1, 1.0), (2, 2.0)):
    monitor.record(step, {**_metrics(step, loss=loss), "contrastive_accuracy": jnp.float32(step / 4)})
  assert monitor.check() == 2.0  # e.g. a checkpoint between two logs
  monitor.record(3, {**_metrics(3, loss=6.0), "contrastive_accuracy": jnp.float32(0.75)})
  monitor.check()
  means = monitor.interval_means()
  assert means["loss"] == pytest.approx(3.0) and means["contrastive_accuracy"] == pytest.approx(0.5)
  assert means["grad_norm"] == pytest.approx(2.0) and monitor.interval_means() == {}
  assert "step" not in means  # the step number is not a metric to average


def test_a_checkpointed_interval_resumes_into_the_same_means():
  # A run saved between two logs (steps 1-2 recorded), resumed in a new process (step 3 recorded there):
  # its next log averages steps 1-3, exactly as the uninterrupted run's did.
  losses = (0.1, 0.7, 1.3)
  straight, saved = _monitor(), _monitor()
  for step, loss in enumerate(losses, 1):
    straight.record(step, _metrics(step, loss=loss, grad_norm=loss / 3))
  for step, loss in enumerate(losses[:2], 1):
    saved.record(step, _metrics(step, loss=loss, grad_norm=loss / 3))
  saved.check()
  state = json.loads(json.dumps(saved.interval_state()))  # it travels in the checkpoint's JSON meta
  resumed = _monitor()
  resumed.record(3, _metrics(3, loss=losses[2], grad_norm=losses[2] / 3))
  resumed.restore_interval(state)
  assert resumed.interval_means() == straight.interval_means()  # bit for bit: same values, same order
  older = _monitor()  # a checkpoint saved before the interval was kept: only its own steps
  older.restore_interval({})
  older.record(3, _metrics(3, loss=2.0))
  assert older.interval_means()["loss"] == 2.0
