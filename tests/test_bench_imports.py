"""The benchmarks meant for accelerator machines (which have no TensorFlow) import without it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.parametrize("module", ["samplers", "candidate_draws", "losses", "train_step",
                                    "bank_memory", "tail", "loss_gap", "checkpoint_cost",
                                    "sampler_view", "accelerator", "synthetic_task"])
def test_accelerator_benchmark_imports_without_tensorflow(module):
  # One process per module: each defines its own absl flags.
  code = textwrap.dedent(f"""
      import importlib, importlib.abc, sys

      class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
          if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ImportError("blocked: " + name)

      sys.meta_path.insert(0, Block())
      importlib.import_module("experiments.bench.{module}")
      """)
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
