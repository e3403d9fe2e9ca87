"""The package as users install it: `pip install prosampler_jax` (the core, no extras) into a fresh venv
gives every sampler, the plan CLI (with plan compare) as a console script, and no trainer dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_DRAW = """
import importlib.util, json, sys
import numpy as np
from prosampler_jax import samplers
absent = [m for m in ("flax", "tensorflow", "ml_collections", "absl", "optax", "orbax", "torch")
          if importlib.util.find_spec(m) is not None]
assert not absent, f"the core pulled in {absent}"
x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
options = {"proximity": {"num_neighbors": 8, "num_candidates": 40}}
drawn = {}
for name in samplers.SAMPLERS:
  batches = samplers.make_sampler(name, 300, 16, seed=0, **options.get(name, {})).sample(0, x)
  assert batches.shape == (18, 16) and all(len(set(row)) == 16 for row in batches.tolist()), name
  drawn[name] = batches.tolist()
np.save("x.npy", x)
print(json.dumps(sorted(drawn)))
"""


@pytest.mark.slow
def test_the_core_install_draws_batches_with_every_sampler_and_runs_the_plan_cli(tmp_path):
  source = tmp_path / "source"  # a copy: building in the repository would leave build/ there
  source.mkdir()
  for name in ("pyproject.toml", "README.md"):
    shutil.copy(os.path.join(REPO, name), source / name)
  shutil.copytree(os.path.join(REPO, "prosampler_jax"), source / "prosampler_jax",
                  ignore=shutil.ignore_patterns("__pycache__"))
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
  python, bindir = str(venv / "bin" / "python"), venv / "bin"
  # At the tested versions (constraints.txt), as run.sh installs them: the test checks what the core
  # declares, not whatever the index holds today.
  install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-input", "-c",
                            os.path.join(REPO, "constraints.txt"), str(source)],
                           capture_output=True, text=True, timeout=900)
  assert install.returncode == 0, install.stderr[-3000:]
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  work = tmp_path / "work"
  work.mkdir()
  draw = subprocess.run([python, "-c", _DRAW], cwd=work, env=env, capture_output=True, text=True,
                        timeout=600)
  assert draw.returncode == 0, draw.stderr[-3000:]
  import json  # pylint: disable=g-import-not-at-top
  from prosampler_jax import samplers  # pylint: disable=g-import-not-at-top
  assert json.loads(draw.stdout.splitlines()[-1]) == sorted(samplers.SAMPLERS)
  plan = subprocess.run([str(bindir / "prosampler-plan"), "--embeddings=x.npy", "--sampler=tail",
                         "--batch-size=16", "--out=plan.npy"], cwd=work, env=env, capture_output=True,
                        text=True, timeout=600)
  assert plan.returncode == 0, plan.stderr[-3000:]
  assert (work / "plan.npy").exists() and (work / "plan.json").exists()
  compare = subprocess.run([str(bindir / "prosampler-plan"), "compare", "--embeddings=x.npy",
                            "--batch-size=16", "--samplers=uniform,knn", "--out=cmp"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
  assert compare.returncode == 0, compare.stderr[-3000:]
  assert (work / "cmp" / "compare.md").exists() and (work / "cmp" / "compare.png").exists()
