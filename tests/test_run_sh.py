"""``./run.sh python …`` runs where it was typed: relative paths in its arguments are the caller's."""

import pathlib
import subprocess

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_python_arguments_resolve_against_the_callers_directory(tmp_path):
  np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32))
  where = subprocess.run([str(REPO / "run.sh"), "python", "-c", "import os; print(os.getcwd())"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
  assert where.returncode == 0 and where.stdout.strip() == str(tmp_path), where.stderr[-1000:]
  plan = subprocess.run([str(REPO / "run.sh"), "python", "-m", "prosampler_jax.plan",
                         "--embeddings=emb.npy", "--sampler=uniform", "--batch-size=8", "--out=plan.npy"],
                        cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert plan.returncode == 0, plan.stderr[-1000:]
  assert np.load(tmp_path / "plan.npy").shape == (1, 5, 8)
