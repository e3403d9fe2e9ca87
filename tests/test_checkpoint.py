"""Tests for orbax checkpoints of the train state plus host-side loop state: round trip, checksums written
with every step, and damaged steps reported, moved aside and skipped in favour of the newest intact one."""

import glob
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from prosampler_jax import checkpoint


def _state(value: float):
  model = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.BatchNorm(4, rngs=nnx.Rngs(0)))
  _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return {"params": params, "batch_stats": stats, "bank": jnp.full((500, 20), value),
          "step": jnp.int32(value)}


HOST = {"batches": np.arange(6, dtype=np.int32).reshape(2, 3), "empty": np.zeros((0, 3), np.int32),
        "sampler/covered": np.array([True, False, True])}


def _saved(directory, steps=(1, 2, 3), max_to_keep=3):
  ckpt = checkpoint.Checkpointer(str(directory), max_to_keep=max_to_keep)
  for step in steps:
    ckpt.save(step, _state(float(step)), HOST, {"digest": f"d{step}", "window": [0, step]},
              {"loss.name": "nt_xent", "seed": step})
  return ckpt


def test_round_trip_keeps_every_item_and_only_the_last_k(tmp_path):
  ckpt = _saved(tmp_path, max_to_keep=2)
  assert ckpt.latest_step() == 3
  assert sorted(os.listdir(tmp_path)) == ["2", "3"]  # complete steps only: no temporary directories left
  state, restored_host, meta = ckpt.restore(3, checkpoint.abstract_like(_state(0.0)))
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(_state(3.0)), strict=True):
    np.testing.assert_array_equal(a, b)
  assert isinstance(state["params"], nnx.State)
  assert set(restored_host) == {"batches", "sampler/covered"}  # empty arrays are left out
  np.testing.assert_array_equal(restored_host["sampler/covered"], HOST["sampler/covered"])
  assert meta == {"digest": "d3", "window": [0, 3]}
  assert ckpt.read_config(3) == {"loss.name": "nt_xent", "seed": 3}
  assert [ckpt.verify(step) for step in (2, 3)] == [None, None]  # still intact after later saves


def _largest_file(step_dir, item):
  files = [f for f in glob.glob(os.path.join(step_dir, item, "**", "*"), recursive=True)
           if os.path.isfile(f)]
  return max(files, key=os.path.getsize)


def _overwrite_4kb(path):  # same size, other bytes: what a bad disk or a broken copy does
  with open(path, "r+b") as f:
    f.seek(min(64, max(os.path.getsize(path) - 4096, 0)))
    f.write(os.urandom(min(4096, os.path.getsize(path))))


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _garble_json(path):
  text = open(path).read()
  open(path, "w").write(text[:-1] + "#")  # same size, no longer JSON


DAMAGE = {
    "4 KB of the params data overwritten": lambda d: _overwrite_4kb(_largest_file(d, "state")),
    "params data truncated": lambda d: _truncate(_largest_file(d, "state")),
    "meta item deleted": lambda d: shutil.rmtree(os.path.join(d, "meta")),
    "state item deleted": lambda d: shutil.rmtree(os.path.join(d, "state")),
    "meta JSON garbled": lambda d: _garble_json(os.path.join(d, "meta", "metadata")),
    "killed before the checksums were written": lambda d: os.remove(os.path.join(d, "checksums.json")),
}
EXPECTED = {
    "4 KB of the params data overwritten": "does not match its SHA-256",
    "params data truncated": "bytes",
    "meta item deleted": "meta/",
    "state item deleted": "state/",
    "meta JSON garbled": "meta/metadata does not match",
    "killed before the checksums were written": "no checksums.json",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_step_is_reported_moved_aside_and_the_newest_intact_one_used(
    tmp_path, damage, caplog):
  ckpt = _saved(tmp_path / "checkpoints")
  DAMAGE[damage](str(tmp_path / "checkpoints" / "3"))
  assert EXPECTED[damage] in ckpt.verify(3)
  with pytest.raises(checkpoint.CheckpointError, match=r"step 3 at .*checkpoints/3 is broken"):
    ckpt.restore(3, checkpoint.abstract_like(_state(0.0)))
  with caplog.at_level("WARNING"):
    assert ckpt.newest_intact_step() == 2
  assert "step 3" in caplog.text and str(tmp_path / "checkpoints" / "3") in caplog.text
  assert ckpt.all_steps() == [1, 2] and os.path.isdir(tmp_path / "checkpoints_broken" / "3")
  state, _, meta = ckpt.restore(2, checkpoint.abstract_like(_state(0.0)))
  assert meta["digest"] == "d2" and float(state["bank"][0, 0]) == 2.0
  ckpt.save(3, _state(3.5), HOST, {"digest": "again"}, {})  # step 3 can be written again
  assert ckpt.verify(3) is None and ckpt.restore(3)[2] == {"digest": "again"}


def test_without_any_intact_step_one_error_lists_every_step(tmp_path):
  ckpt = _saved(tmp_path / "checkpoints", steps=(4, 8))
  for step in (4, 8):
    _overwrite_4kb(_largest_file(str(tmp_path / "checkpoints" / str(step)), "state"))
  with pytest.raises(checkpoint.CheckpointError, match="None of the 2 checkpoint") as error:
    ckpt.newest_intact_step()
  assert "step 8 at" in str(error.value) and "step 4 at" in str(error.value)
  assert ckpt.all_steps() == [] and checkpoint.Checkpointer(str(tmp_path / "c2")).newest_intact_step() is None


def test_a_step_without_host_arrays_round_trips(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  ckpt.save(5, _state(5.0), {"empty": np.zeros((0, 2), np.int32)}, {"m": 1})
  _, host, meta = ckpt.restore(5, checkpoint.abstract_like(_state(0.0)))
  assert host == {} and meta == {"m": 1} and ckpt.verify(5) is None


@pytest.mark.parametrize("phase", ["orbax_write", "checksums", "deleting_old_steps"])
def test_a_save_killed_at_any_phase_leaves_a_verified_step_even_with_max_to_keep_1(tmp_path, monkeypatch,
                                                                                   phase):
  """A kill is an exception at that point of the save (nothing after it runs); then a fresh process,
  here a new Checkpointer, resumes from a verified step > 0."""
  ckpt = _saved(tmp_path, steps=(1,), max_to_keep=1)

  def killed(*args, **kwargs):
    raise KeyboardInterrupt(f"killed during {phase}")

  target = {"orbax_write": (ckpt._manager, "save"), "checksums": (checkpoint, "_write_json_atomically"),
            "deleting_old_steps": (ckpt._manager, "delete")}[phase]
  monkeypatch.setattr(*target, killed)
  with pytest.raises(KeyboardInterrupt):
    ckpt.save(2, _state(2.0), HOST, {"digest": "d2", "window": [0, 2]}, {"seed": 2})
  monkeypatch.undo()
  fresh = checkpoint.Checkpointer(str(tmp_path), max_to_keep=1)
  step = fresh.newest_intact_step()
  assert step == (2 if phase == "deleting_old_steps" else 1)
  state, _, meta = fresh.restore(step, checkpoint.abstract_like(_state(0.0)))
  assert float(state["bank"][0, 0]) == float(step) and meta["digest"] == f"d{step}"
  # The next save prunes back to one step, the newest.
  fresh.save(3, _state(3.0), HOST, {"digest": "d3", "window": [0, 3]}, {"seed": 3})
  assert fresh.all_steps() == [3] and fresh.verify(3) is None


@pytest.mark.parametrize("phase", ["orbax_write", "checksums"])
def test_a_failed_save_is_one_error_naming_step_path_cause_and_the_last_good_step(tmp_path, monkeypatch,
                                                                                  phase):
  ckpt = _saved(tmp_path, steps=(1, 2), max_to_keep=3)

  def full_disk(*args, **kwargs):
    raise OSError(28, "No space left on device")

  target = {"orbax_write": (ckpt._manager, "save"), "checksums": (checkpoint, "_write_json_atomically")}[phase]
  monkeypatch.setattr(*target, full_disk)
  with pytest.raises(checkpoint.CheckpointSaveError,
                     match=rf"^step 3 could not be written to {tmp_path}/3: OSError: \[Errno 28\] No space left "
                           rf"on device; the last good step is 2 \({tmp_path}/2\): a rerun resumes from it$"):
    ckpt.save(3, _state(3.0), HOST, {"digest": "d3", "window": [0, 3]}, {"seed": 3})
  monkeypatch.undo()
  assert checkpoint.Checkpointer(str(tmp_path)).newest_intact_step() == 2


def test_a_failed_first_save_says_a_rerun_starts_from_step_0(tmp_path, monkeypatch):
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  monkeypatch.setattr(checkpoint, "_write_json_atomically", lambda *a: (_ for _ in ()).throw(OSError("EIO")))
  with pytest.raises(checkpoint.CheckpointSaveError, match="step 1 could not be written.*EIO; no earlier step "
                                                           "was saved: a rerun starts from step 0"):
    ckpt.save(1, _state(1.0), HOST, {"digest": "d1", "window": [0, 1]}, {"seed": 1})


def test_asynchronous_saves_round_trip_copy_what_they_write_and_prune_only_verified_steps(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), max_to_keep=2, asynchronous=True)
  history = [{"event": "epoch", "epoch": 1}]
  host = {"batches": np.arange(6, dtype=np.int32).reshape(2, 3)}
  for step in (1, 2, 3):
    ckpt.save(step, _state(float(step)), host, {"history": history}, {"seed": step})
    # The loop goes on while the step is written: what was saved must not change with it.
    history.append({"event": "epoch", "epoch": step + 1})
    host["batches"][:] = -step
  assert 1 in ckpt.all_steps()  # step 3 is in flight: step 1 is not deleted before 3 is verified
  ckpt.close()
  fresh = checkpoint.Checkpointer(str(tmp_path))
  assert fresh.all_steps() == [2, 3] and fresh.verify(2) is None and fresh.verify(3) is None
  state, saved_host, meta = fresh.restore(2, checkpoint.abstract_like(_state(0.0)))
  assert float(state["bank"][0, 0]) == 2.0 and len(meta["history"]) == 2
  np.testing.assert_array_equal(saved_host["batches"], np.full((2, 3), -1))


def test_an_asynchronous_save_that_fails_raises_at_the_next_save_and_keeps_the_last_good_step(
    tmp_path, monkeypatch):
  ckpt = checkpoint.Checkpointer(str(tmp_path), max_to_keep=1, asynchronous=True)
  ckpt.save(1, _state(1.0), HOST, {"digest": "d1"}, {"seed": 1})
  ckpt.wait()
  original = checkpoint._write_json_atomically

  def full_disk(*args, **kwargs):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(checkpoint, "_write_json_atomically", full_disk)
  ckpt.save(2, _state(2.0), HOST, {"digest": "d2"}, {"seed": 2})  # returns: the failure is in flight
  with pytest.raises(checkpoint.CheckpointSaveError, match=r"step 2 could not be written .*No space left on "
                                                           r"device; the last good step is 1"):
    ckpt.save(3, _state(3.0), HOST, {"digest": "d3"}, {"seed": 3})
  monkeypatch.setattr(checkpoint, "_write_json_atomically", original)
  ckpt.close()
  assert checkpoint.Checkpointer(str(tmp_path)).newest_intact_step() == 1


def test_a_save_hands_orbax_copies_of_the_callers_meta_config_and_host_arrays(tmp_path, monkeypatch):
  """Deterministic companion of the round trip above (whose race shows 1 run in 6 without copies)."""
  handed = []
  original = checkpoint.ocp.args.JsonSave
  monkeypatch.setattr(checkpoint.ocp.args, "JsonSave", lambda item: handed.append(item) or original(item))
  original_standard = checkpoint.ocp.args.StandardSave
  monkeypatch.setattr(checkpoint.ocp.args, "StandardSave",
                      lambda item: handed.append(item) or original_standard(item))
  meta, config, host = {"history": [{"epoch": 1}]}, {"seed": 1}, {"batches": np.arange(3, dtype=np.int32)}
  ckpt = checkpoint.Checkpointer(str(tmp_path), asynchronous=True)
  ckpt.save(1, _state(1.0), host, meta, config)
  ckpt.close()
  saved_host, saved_meta, saved_config = handed[1], handed[2], handed[3]
  assert saved_meta == meta and saved_meta is not meta and saved_meta["history"] is not meta["history"]
  assert saved_config == config and saved_config is not config
  assert saved_host["batches"] is not host["batches"]
  assert not np.shares_memory(saved_host["batches"], host["batches"])
