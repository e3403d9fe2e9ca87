"""The README's PyTorch and sentence-transformers examples run as written (each in its own process, in
an empty directory), so the README cannot drift from the API."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_block_after(heading: str) -> str:
  """The first ```python block after the paragraph that starts with ``heading``."""
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  start = readme.index(heading)
  return re.search(r"```python\n(.*?)```", readme[start:], re.S).group(1)


def _run(code: str, tmp_path, marker: str) -> str:
  script = tmp_path / "example.py"
  script.write_text(code + f"\nprint({marker!r})\n")
  env = {**os.environ, "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
  done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-4000:]
  return done.stdout


def test_the_pytorch_example_trains_with_the_bank_path(tmp_path):
  pytest.importorskip("torch")
  code = _python_block_after("**PyTorch (or any loop that takes a batch sampler).**")
  assert "batches.update(index, z1)" in code
  # After the run: the bank is full, so epochs 1 and 2 were ProSampler's, not the uniform warm-up.
  out = _run(code + "\nprint('coverage', batches.bank_coverage)", tmp_path, "done")
  assert "coverage 1.0" in out and out.rstrip().endswith("done")


def test_the_sentence_transformers_example_runs_as_written(tmp_path):
  pytest.importorskip("sentence_transformers")
  pytest.importorskip("datasets")
  code = _python_block_after("**sentence-transformers.**")
  out = _run(code, tmp_path, "done")
  assert out.rstrip().endswith("done") and "train_loss" in out
