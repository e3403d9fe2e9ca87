"""The accelerator benchmark's --small mode runs every part on this CPU (so the script never rots before a
GPU is at hand), a failing part is reported without stopping the others, and the CLI writes its JSON."""

import json
import os
import subprocess
import sys

import pytest

from experiments.bench import accelerator

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_part_runs_small_and_reports_its_figures(tmp_path):
  out = tmp_path / "small.json"
  report = accelerator.run(small=True, out=str(out))
  assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=float))
  parts = report["parts"]
  assert list(parts) == list(accelerator.PARTS)
  assert not [name for name, part in parts.items() if "error" in part], parts
  assert parts["environment"]["device_count"] == 4 and "jax" in parts["environment"]["versions"]
  walk = parts["graph_walk"]["2000"]
  assert walk["num_batches"] == 2000 // 64 and 0 < walk["walk_epoch_seconds"] < walk["walk_first_call_seconds"]
  assert set(parts["tbs_epoch"]) == {"2000/exact", "2000/knn", "part_seconds"}
  assert parts["tbs_epoch"]["2000/knn"]["num_batches"] == 31
  assert {f"{loss}/256" for loss in ("nt_xent", "dcl", "hcl")} <= set(parts["losses"])
  step = parts["train_step"]
  assert step["ratio_proximity_over_uniform"] > 0 and step["proximity"]["sampler_seconds_per_window"] > 0
  # bf16 and sharded over the 4 simulated devices: an eighth of a float32 replicated bank per device
  assert parts["bank_memory"]["bank_over_float32_replicated"]["bfloat16/data"] == pytest.approx(0.125, abs=5e-3)  # MiB rounded
  assert parts["loop"]["dataset"] == "MUTAG" and parts["loop"]["steps"] == 10
  assert parts["loop"]["loader"] == "numpy"  # the TF-free path, though TensorFlow is installed here
  assert 0.6 < parts["loop"]["svm_acc"] <= 1.0


def test_a_failing_part_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
  def broken(small):
    raise RuntimeError("out of device memory")

  monkeypatch.setattr(accelerator, "bank_memory", broken)
  report = accelerator.run(small=True, out=str(tmp_path / "r.json"), parts=("bank_memory", "environment"))
  assert report["parts"]["bank_memory"]["error"] == "RuntimeError: out of device memory"
  assert report["parts"]["environment"]["device_kind"]  # ran after the failure
  with pytest.raises(ValueError, match=r"--parts has \['gpu'\]; allowed: environment, graph_walk"):
    accelerator.run(small=True, out=None, parts=("gpu",))


def test_the_command_line_writes_the_json_it_prints(tmp_path):
  out = tmp_path / "cli.json"
  done = subprocess.run([sys.executable, "-m", "experiments.bench.accelerator", "--small",
                         "--parts=environment,bank_memory", f"--out={out}"], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert json.loads(done.stdout) == json.loads(out.read_text())
  assert list(json.loads(done.stdout)["parts"]) == ["environment", "bank_memory"]
