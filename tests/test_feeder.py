"""Tests for the feeder: window schedule, look-ahead rule, which windows are sampled when, from which
bank snapshot, and exact resume of the feeder's own state (a real sampler and a real task, no TF)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_tasks
from prosampler_jax import cadence
from prosampler_jax import feeder as feeder_lib
from prosampler_jax import parallel
from prosampler_jax import samplers


class RecordingSampler(samplers.ProximitySampler):
  """A real ProSampler that also records each call's (epoch, window, embeddings)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.calls = []
    self.banks_seen = []  # the embeddings argument itself: where it lives and how it is laid out

  def sample(self, epoch, embeddings=None, *, num_batches=None, window=0):
    batches = super().sample(epoch, embeddings, num_batches=num_batches, window=window)
    self.calls.append((epoch, window, None if embeddings is None else np.array(embeddings), batches))
    self.banks_seen.append(embeddings)
    return batches


def make_feeder(task, *, steps_per_epoch=20, refresh_steps=8, lookahead_steps=2, warmup_epochs=1,
                num_epochs=3):
  sampler = RecordingSampler(task.num_examples, 64, num_neighbors=5, num_candidates=20, seed=3)
  schedule = cadence.WindowSchedule(steps_per_epoch, refresh_steps)
  mesh = parallel.make_data_mesh()
  feeder = feeder_lib.BatchFeeder(task, sampler, schedule, mesh, warmup_epochs=warmup_epochs,
                                  lookahead_steps=lookahead_steps,
                                  total_steps=num_epochs * steps_per_epoch)
  return feeder, sampler, mesh


def bank_at(step: int, task, mesh, layout: str = "replicated") -> jax.Array:
  """A distinct, recognisable bank per step: rows are random unit vectors seeded by the step."""
  rows = np.random.default_rng(step).normal(size=(task.num_examples, task.bank_dim)).astype(np.float32)
  return jax.device_put(jnp.asarray(rows), parallel.bank_sharding(mesh, layout, task.bank_dim))


def drive(feeder, task, mesh, steps, layout="replicated"):
  """Plays the loop's part: submit what is due (with that step's bank), then take the step's batch."""
  submitted, indices = [], []
  for step in steps:
    window = feeder.due(step)
    if window is not None:
      bank = bank_at(step, task, mesh, layout) if feeder.uses_bank(window) else None
      feeder.submit(window, bank, None if bank is None else {"bank_written_fraction": 1.0})
      if bank is not None:
        bank.delete()  # the train step donates the bank: the feeder must have taken its own copy
      submitted.append((step, window))
    _, index = feeder.next_batch(step)
    indices.append(np.asarray(index))
  return submitted, indices


@pytest.fixture(scope="module")
def task():
  return tiny_tasks.DigitVectorsTask()


def test_window_schedule_splits_epochs_into_refresh_windows():
  schedule = cadence.WindowSchedule(steps_per_epoch=11, refresh_steps=4)
  assert schedule.windows_per_epoch == 3
  assert [schedule.locate(s) for s in (0, 5, 10, 11)] == [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 0)]
  assert [schedule.window_length(w) for w in range(3)] == [4, 4, 3]
  assert schedule.window_start(1, 2) == 19
  assert schedule.next_window(0, 2) == (1, 0) and schedule.next_window(0, 1) == (0, 2)
  assert schedule.global_window(1, 2) == 5


@pytest.mark.parametrize("requested, refresh, expected", [
    (8, 100, 8), (8, 40, 5), (8, 11, 1), (8, 7, 0), (0, 100, 0), (2, 16, 2)])
def test_lookahead_is_at_most_an_eighth_of_a_window(requested, refresh, expected):
  assert feeder_lib.effective_lookahead(requested, refresh) == expected


@pytest.mark.parametrize("warmup_epochs,num_epochs,due_until", [
    (1, 3, 20),  # warm-up steps 0-19, then bank windows: precompile while in warm-up
    (2, 3, 40),
    (0, 3, 0),   # no warm-up: nothing to hide the first window's compilation behind
    (3, 3, 0),   # only warm-up: no bank window ever comes
])
def test_the_precompile_pass_is_due_only_while_a_warmup_epoch_is_ahead(task, warmup_epochs, num_epochs,
                                                                       due_until):
  feeder, _, _ = make_feeder(task, warmup_epochs=warmup_epochs, num_epochs=num_epochs)
  try:
    assert [s for s in range(60) if feeder.warmup_ahead(s)] == list(range(due_until))
  finally:
    feeder.close()


def test_each_window_is_sampled_once_at_the_right_step_from_that_steps_bank(task):
  feeder, sampler, mesh = make_feeder(task)   # windows of 8, 8, 4 steps; look-ahead min(2, 8 // 8) = 1
  submitted, indices = drive(feeder, task, mesh, range(60))
  expected = [(0, (0, 0)), (7, (0, 1)), (15, (0, 2)), (19, (1, 0)), (27, (1, 1)), (35, (1, 2)),
              (39, (2, 0)), (47, (2, 1)), (55, (2, 2))]
  assert submitted == expected
  assert [call[:2] for call in sampler.calls] == [w for _, w in expected]
  for (step, (epoch, _)), (_, _, seen, _) in zip(submitted, sampler.calls, strict=True):
    if epoch < 1:  # warm-up: uniform batches, no bank
      assert seen is None
    else:  # exactly the bank of the step at which the window was submitted
      np.testing.assert_array_equal(seen, np.asarray(bank_at(step, task, mesh)))
  # Each step trains on its row of the window it belongs to.
  rows = {call[:2]: call[3] for call in sampler.calls}
  schedule = cadence.WindowSchedule(20, 8)
  for step, index in enumerate(indices):
    epoch, window, offset = schedule.locate(step)
    np.testing.assert_array_equal(index, rows[epoch, window][offset])
  assert feeder.window_stats["bank_written_fraction"] == 1.0  # freshness travels with the window
  feeder.close()


def test_steps_train_on_the_rows_of_the_sampled_windows(task):
  feeder, sampler, mesh = make_feeder(task, lookahead_steps=0)
  submitted, indices = drive(feeder, task, mesh, range(20))
  assert [s for s, _ in submitted] == [0, 8, 16]  # no look-ahead: each window at its first step
  replay = RecordingSampler(task.num_examples, 64, num_neighbors=5, num_candidates=20, seed=3)
  expected = np.concatenate([replay.sample(0, None, num_batches=8, window=w)[:length]
                             for w, length in ((0, 8), (1, 8), (2, 4))])
  np.testing.assert_array_equal(np.stack(indices), expected)
  assert task.pipeline_calls[-3:] == [(0, 0, (8, 64)), (1, 0, (8, 64)), (2, 0, (8, 64))]
  feeder.close()


def test_a_step_whose_window_was_never_submitted_fails_loudly(task):
  feeder, _, _ = make_feeder(task)
  with pytest.raises(RuntimeError, match="never submitted"):
    feeder.next_batch(0)
  feeder.close()


@pytest.mark.parametrize("stop, pending, offset", [(28, [1, 1], 0), (24, None, 4), (31, None, 3)])
def test_state_and_load_resume_the_same_batches_at_a_window_start_or_mid_window(task, stop, pending,
                                                                               offset):
  """Step 28 starts window (1, 1), which was submitted at step 27 (pending); 24 and 31 are steps 4 and 3
  of windows (1, 0) and (1, 1): the resumed pipeline starts at that row of the checkpointed window."""
  straight, _, mesh = make_feeder(task)
  _, expected = drive(straight, task, mesh, range(60))
  straight.close()

  first, _, _ = make_feeder(task)
  _, before = drive(first, task, mesh, range(stop))
  host, meta = first.state()
  assert meta["pending"] == pending and meta["window"] == [1, (stop - 1 - 20) // 8]
  first.close()

  resumed, sampler, _ = make_feeder(task)
  task.pipeline_calls.clear()
  resumed.load(host, meta)
  _, after = drive(resumed, task, mesh, range(stop, 60))
  np.testing.assert_array_equal(np.stack(before + after), np.stack(expected))
  if offset:  # the checkpointed window's pipeline, rebuilt from its row ``offset``
    assert task.pipeline_calls[0][1:] == (offset, (8, 64))
  # The covered mask came back: (1, 2) was sampled by the resumed sampler from epoch 1's state.
  assert sampler.calls[0][:2] == ((1, 2) if stop >= 28 else (1, 1))
  assert resumed.digest == straight.digest
  resumed.close()


@pytest.mark.parametrize("layout", ["replicated", "data"])
def test_the_sampler_and_batch_stats_read_the_bank_on_its_devices_never_on_the_host(task, layout,
                                                                                   monkeypatch):
  """The sampler gets the device snapshot (on one device, whatever the bank's layout), and a split bank
  gives exactly the batches and statistics of a replicated one."""
  # Step 40 trains on window (2, 0), submitted at step 39: every bank-reading window is sampled before
  # close() (stopping at 39 left it to the worker thread's timing whether the last one was).
  reference, _, mesh = make_feeder(task)
  _, expected = drive(reference, task, mesh, range(41))
  expected_stats = reference.window_stats
  reference.close()

  def no_host_copy(x):
    raise AssertionError("the feeder copied the bank to the host")

  monkeypatch.setattr(parallel, "to_host", no_host_copy)
  monkeypatch.setattr(feeder_lib.diagnostics, "batch_stats", _device_only(feeder_lib.diagnostics.batch_stats))
  feeder, sampler, _ = make_feeder(task)
  _, indices = drive(feeder, task, mesh, range(41), layout)
  feeder.close()
  np.testing.assert_array_equal(np.stack(indices), np.stack(expected))
  untimed = lambda stats: {k: v for k, v in stats.items() if k != "sampler_seconds"}
  assert untimed(feeder.window_stats) == pytest.approx(untimed(expected_stats), rel=1e-6)
  banks = [bank for bank in sampler.banks_seen if bank is not None]
  assert len(banks) == 4 and all(isinstance(bank, jax.Array) for bank in banks)
  assert all(bank.devices() == {jax.local_devices()[0]} for bank in banks)


def _device_only(batch_stats):
  def checked(batches, embeddings, labels=None):
    assert isinstance(embeddings, jax.Array), type(embeddings)
    return batch_stats(batches, embeddings, labels)
  return checked


class _PairedVectorsTask(tiny_tasks.DigitVectorsTask):
  """Digit vectors whose bank rows are declared a pair of views (as SimCSE's and GraphCL's are)."""

  def sampler_view(self, bank):
    half = bank.shape[1] // 2
    return bank[:, :half], bank[:, half:]


@pytest.mark.parametrize("sampler_name", ["tail", "proximity"])
def test_a_sampler_that_reads_pairs_gets_the_tasks_halves_and_the_others_the_rows(sampler_name):
  task = _PairedVectorsTask()
  seen = []

  class Recording(samplers.SAMPLERS[sampler_name]):
    def sample(self, epoch, embeddings=None, **kwargs):
      seen.append(embeddings)
      return super().sample(epoch, embeddings, **kwargs)

  options = {"tail": {"max_neighbors": 4}, "proximity": {"num_neighbors": 5, "num_candidates": 20}}
  sampler = Recording(task.num_examples, 64, seed=0, **options[sampler_name])
  mesh = parallel.make_data_mesh()
  feeder = feeder_lib.BatchFeeder(task, sampler, cadence.WindowSchedule(20, 20), mesh, warmup_epochs=0,
                                  lookahead_steps=0, total_steps=20)
  bank = bank_at(0, task, mesh)
  feeder.submit(feeder.due(0), bank)
  feeder.next_batch(0)
  feeder.close()
  (view,) = seen
  rows = np.asarray(bank)
  if sampler_name == "tail":
    assert isinstance(view, tuple)
    np.testing.assert_array_equal(np.concatenate([np.asarray(v) for v in view], axis=1), rows)
  else:
    np.testing.assert_array_equal(np.asarray(view), rows)


class _TwoViewVectorsTask(_PairedVectorsTask):
  """Rows declared as two views, with the pair the loss gap reads."""

  def bank_pair(self, bank):
    return self.sampler_view(bank)


def test_first_view_hands_the_sampler_only_each_rows_first_half_as_float32():
  task = _TwoViewVectorsTask()
  seen = []

  class Recording(samplers.ProximitySampler):
    def sample(self, epoch, embeddings=None, **kwargs):
      seen.append(embeddings)
      return super().sample(epoch, embeddings, **kwargs)

  sampler = Recording(task.num_examples, 64, num_neighbors=5, num_candidates=20, seed=0)
  mesh = parallel.make_data_mesh()
  feeder = feeder_lib.BatchFeeder(task, sampler, cadence.WindowSchedule(20, 20), mesh, warmup_epochs=0,
                                  lookahead_steps=0, total_steps=20, temperature=0.5,
                                  bank_view="first_view")
  bank = bank_at(0, task, mesh, "data").astype(jnp.bfloat16)
  feeder.submit(feeder.due(0), bank)
  feeder.next_batch(0)
  feeder.close()
  (view,) = seen
  assert view.dtype == np.float32 and view.shape == (task.num_examples, task.bank_dim // 2)
  np.testing.assert_array_equal(np.asarray(view), np.asarray(bank[:, :task.bank_dim // 2], np.float32))
  assert "loss_gap" not in feeder.window_stats and "mean_neg_cos" in feeder.window_stats


@pytest.mark.parametrize("sampler_cls, task_cls, match", [
    (samplers.TailSampler, _TwoViewVectorsTask, "no pair to read; allowed with it: 'rows'"),
    (samplers.ProximitySampler, tiny_tasks.DigitVectorsTask, "needs a task whose bank rows hold two views"),
])
def test_first_view_is_refused_where_it_cannot_work(sampler_cls, task_cls, match):
  task = task_cls()
  sampler = sampler_cls(task.num_examples, 64)
  with pytest.raises(ValueError, match=rf"config.sampler.bank_view='first_view' .*{match}"):
    feeder_lib.BatchFeeder(task, sampler, cadence.WindowSchedule(20, 20), parallel.make_data_mesh(),
                           warmup_epochs=0, lookahead_steps=0, total_steps=20, bank_view="first_view")
