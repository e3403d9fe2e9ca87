"""SimCSE and GraphCL where TensorFlow cannot be imported (the GPU machine has none): both train end to end
in a subprocess whose ``import tensorflow`` fails, and their first pre-training batches equal, array by
array, what the tf.data path gives in this process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import test_graphcl
import test_simcse
from prosampler_jax import tasks

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a fresh interpreter: TensorFlow is made unimportable before anything else is imported.
SCRIPT = """
import json, sys
sys.modules["tensorflow"] = None           # `import tensorflow` raises ImportError,
sys.modules["tensorflow_datasets"] = None  # and importlib.util.find_spec says it is absent
sys.path[:0] = [{repo!r}, {tests!r}]
import numpy as np
import test_graphcl, test_simcse
from prosampler_jax import tasks, train
out = {{}}
for name, config in (("graphcl", test_graphcl.tiny_config(**{{"eval.svm_seeds": 1}})),
                     ("simcse", test_simcse.tiny_config())):
  task = tasks.make_task(config)
  batches = np.arange(task.num_examples)[::-1][:4 * config.batch_size].reshape(4, -1)
  first = next(iter(task.pretrain_batches(batches, window=3, start_batch=1)))
  np.savez({out_dir!r} + f"/{{name}}.npz", **{{"/".join(map(str, path)): np.asarray(leaf)
      for path, leaf in __import__("jax").tree_util.tree_flatten_with_path(first)[0]}})
  results = train.train_and_evaluate(config, {out_dir!r} + f"/{{name}}_run")
  out[name] = {{k: results[k] for k in ("steps", "svm_acc", "stsb") if k in results}}
assert all(sys.modules[m] is None for m in ("tensorflow", "tensorflow_datasets"))
print(json.dumps(out))
"""


def test_simcse_and_graphcl_train_without_tensorflow_on_the_same_batches(tmp_path, minilm_dir):
  script = SCRIPT.format(repo=REPO, tests=os.path.join(REPO, "tests"), out_dir=str(tmp_path))
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900,
                        cwd=REPO)
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.loads(done.stdout.strip().splitlines()[-1])
  assert results["graphcl"]["steps"] == 10 and 0.6 < results["graphcl"]["svm_acc"] <= 1.0
  assert results["simcse"]["steps"] == 6 and 70.0 < results["simcse"]["stsb"] < 95.0
  import jax  # pylint: disable=g-import-not-at-top
  for name, config in (("graphcl", test_graphcl.tiny_config(**{"data.loader": "tf"})),
                       ("simcse", test_simcse.tiny_config(**{"data.loader": "tf"}))):
    task = tasks.make_task(config)
    batches = np.arange(task.num_examples)[::-1][:4 * config.batch_size].reshape(4, -1)
    first = next(iter(task.pretrain_batches(batches, window=3, start_batch=1)))
    expected = {"/".join(map(str, path)): np.asarray(leaf)
                for path, leaf in jax.tree_util.tree_flatten_with_path(first)[0]}
    got = dict(np.load(tmp_path / f"{name}.npz"))
    assert set(got) == set(expected) and len(got) >= 3, (name, sorted(got))
    for key, value in expected.items():
      assert got[key].dtype == value.dtype, (name, key)
      np.testing.assert_array_equal(got[key], value, err_msg=f"{name} {key}")
    np.testing.assert_array_equal(got[next(k for k in got if "index" in k)], batches[1])
