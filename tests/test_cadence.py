"""The loop's cadence rule and its epoch clock, on a fake time source."""

import pytest

from prosampler_jax import cadence


@pytest.mark.parametrize("count, period, due", [
    (4, 2, True), (5, 2, False), (0, 3, True), (7, 1, True), (7, 0, False), (0, 0, False), (3, -1, False),
])
def test_is_due(count, period, due):
  assert cadence.is_due(count, period) is due


class FakeTime:
  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


def test_paused_spans_are_left_out_and_the_rest_is_counted():
  now = FakeTime()
  clock = cadence.EpochClock(step=0, now=now)
  now.t += 2.0                  # training
  with clock.paused():
    now.t += 30.0               # evaluation
  now.t += 1.0                  # training
  with clock.paused():
    now.t += 5.0                # checkpoint write
  assert clock.lap(step=10) == {"train_seconds": 3.0, "train_steps": 10}


def test_a_lap_starts_the_next_epoch_at_once():
  """What happens between the lap and the next pause (a save waiting for the next window) is the next
  epoch's training time, and the previous epoch's pauses do not carry over."""
  now = FakeTime()
  clock = cadence.EpochClock(step=5, now=now)
  with clock.paused():
    now.t += 7.0
  now.t += 1.0
  assert clock.lap(step=15) == {"train_seconds": 1.0, "train_steps": 10}
  now.t += 0.5                  # waiting for the next window: training
  with clock.paused():
    now.t += 4.0                # the write itself
  now.t += 2.0
  assert clock.lap(step=25) == {"train_seconds": 2.5, "train_steps": 10}


def test_a_pause_that_raises_is_still_left_out():
  now = FakeTime()
  clock = cadence.EpochClock(step=0, now=now)
  with pytest.raises(OSError), clock.paused():
    now.t += 9.0
    raise OSError("disk full")
  now.t += 1.0
  assert clock.lap(step=1)["train_seconds"] == 1.0
