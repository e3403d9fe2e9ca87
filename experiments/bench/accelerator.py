"""Every accelerator figure in one command and one JSON: run it first whenever a GPU is at hand.

  python -m experiments.bench.accelerator --out=$OUT/accelerator.json        # ≈ 7 min on one GPU
  python -m experiments.bench.accelerator --small --out=small.json           # CPU smoke run (the tests)

Each part runs inside its own guard: a part that fails reports ``{"error": …}`` and the others still run,
and the JSON is rewritten after every part, so a run stopped by its time limit still leaves what it
measured. Parts (full size / ``--small``), with the targets they are held to:

- ``environment``: device kind and count, platform, the versions of Python, JAX, jaxlib, Flax, Optax,
  Orbax, NumPy, and whether TensorFlow is importable.
- ``graph_walk``: ProSampler at N = 105,000 and 1,000,000, D = 256, K = 100, M = 1000, per-row candidate
  draws, B = 256: the proximity graph (first call, which compiles, and warm) and one epoch of walks from
  the graph on the device; target graph + walk ≤ 20 ms at 105k.
- ``tbs_epoch``: one Tail Batch Sampling epoch (B = 256, D = 256) with the exact and the k-means-cell
  (``knn``) backends at N = 100,000 and 1,000,000 (exact only up to 100k); target ≤ 0.5 s at 100k.
- ``losses``: NT-Xent, DCL and HCL forward + backward at B = 4096 and 16384 (D = 128): compile seconds
  and the best of 3 steps; target compile < 10 s at 16384.
- ``train_step``: the training loop's step time with uniform vs ProSampler batches (ResNet-50, ImageNet
  stem, bf16, B = 256 at 112 px on random images, t = 100 steps, one uniform warm-up epoch) and the
  sampler's share of an epoch; targets ratio ≤ 1.02 and share ≤ 1%.
- ``bank_memory``: bank MiB per device at N = 1,281,167, D = 256 for every bank dtype and layout.
- ``loop``: a short GraphCL run end to end with the NumPy loader (no TensorFlow): on MUTAG (from the
  grakel wheel) or ``--tu_dir``'s PROTEINS; steps per second and the SVM accuracy.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Callable

import numpy as np

SIZES = {  # every size the parts use, full and --small
    "graph_walk_n": ((105_000, 1_000_000), (2_000,)), "dim": (256, 32), "batch": (256, 64),
    "tbs_n": ((100_000, 1_000_000), (2_000,)), "exact_max_n": (100_000, 100_000),
    "loss_batches": ((4096, 16384), (256,)), "loss_dim": (128, 32),
    "train_n": (25_600, 512), "train_image": (112, 16), "train_refresh": (100, 4),
    "bank_n": (1_281_167, 10_000),
}
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy", "ml-collections")
PARTS = ("environment", "graph_walk", "tbs_epoch", "losses", "train_step", "bank_memory", "loop")


def size(name: str, small: bool):
  return SIZES[name][1 if small else 0]


def _seconds(fn: Callable, *args, **kwargs) -> tuple[object, float]:
  import jax  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  out = jax.block_until_ready(fn(*args, **kwargs))
  return out, time.perf_counter() - start


def environment(small: bool) -> dict:
  """What ran: the device, the versions, and whether TensorFlow was there."""
  del small
  import jax  # pylint: disable=g-import-not-at-top
  versions = {}
  for package in PACKAGES:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
      versions[package] = importlib.metadata.version(package)
  device = jax.devices()[0]
  return {"device_kind": device.device_kind, "platform": device.platform, "device_count": jax.device_count(),
          "python": platform.python_version(), "versions": versions,
          "tensorflow_importable": importlib.util.find_spec("tensorflow") is not None}


def graph_walk(small: bool) -> dict:
  """ProSampler's two steps on the device: the proximity graph, then an epoch of walks."""
  import jax  # pylint: disable=g-import-not-at-top
  from experiments.bench import synthetic  # pylint: disable=g-import-not-at-top
  from prosampler_jax import graph, walk  # pylint: disable=g-import-not-at-top
  batch, dim, report = size("batch", small), size("dim", small), {}
  for n in size("graph_walk_n", small):
    emb = jax.device_put(synthetic.clustered_embeddings(n, 0, dim))
    build = lambda seed, emb=emb: graph.build_proximity_graph(emb, num_neighbors=100 if not small else 10,
                                                              num_candidates=1000 if not small else 100,
                                                              seed=seed)
    _, first = _seconds(build, 0)
    neighbors, warm = _seconds(build, 1)
    starts = jax.numpy.asarray(np.random.default_rng(0).permutation(n)[:n // batch].astype(np.int32))
    run = lambda seed, neighbors=neighbors: walk.random_walk_batches(
        neighbors, starts, batch_size=batch, restart_prob=0.2, key=jax.random.key(seed))
    _, walk_first = _seconds(run, 0)
    walk_seconds = min(_seconds(run, seed)[1] for seed in (1, 2, 3))
    report[str(n)] = {"graph_first_call_seconds": first, "graph_seconds": warm,
                      "walk_first_call_seconds": walk_first, "walk_epoch_seconds": walk_seconds,
                      "graph_plus_walk_ms": 1000 * (warm + walk_seconds), "num_batches": n // batch}
  if not small:
    report["target_graph_plus_walk_le_20ms_at_105k"] = report["105000"]["graph_plus_walk_ms"] <= 20.0
  return report


def tbs_epoch(small: bool) -> dict:
  """One whole Tail Batch Sampling epoch per backend, after a first (compiling) one."""
  import jax  # pylint: disable=g-import-not-at-top
  from experiments.bench import synthetic  # pylint: disable=g-import-not-at-top
  from prosampler_jax import samplers  # pylint: disable=g-import-not-at-top
  batch, dim, report = size("batch", small), size("dim", small), {}
  for n in size("tbs_n", small):
    emb = jax.device_put(synthetic.clustered_embeddings(n, 0, dim))
    for backend in ("exact", "knn"):
      if backend == "exact" and n > size("exact_max_n", small):
        continue
      sampler = samplers.TailSampler(n, batch, graph=backend, seed=0)
      _, first = _seconds(sampler.sample, 0, emb)
      batches, seconds = _seconds(sampler.sample, 1, emb)
      report[f"{n}/{backend}"] = {"first_call_seconds": first, "seconds": seconds,
                                  "num_batches": int(np.asarray(batches).shape[0])}
  if not small:
    report["target_le_0.5s_at_100k"] = min(report[f"100000/{b}"]["seconds"] for b in ("exact", "knn")
                                           if f"100000/{b}" in report) <= 0.5
  return report


def loss_steps(small: bool) -> dict:
  """Compile seconds and the best fwd+bwd step of each loss at each batch size."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from prosampler_jax import losses  # pylint: disable=g-import-not-at-top
  dim, report = size("loss_dim", small), {}
  for name in ("nt_xent", "dcl", "hcl"):
    fn = jax.value_and_grad(functools.partial(getattr(losses, name), temperature=0.5), argnums=(0, 1))
    for batch in size("loss_batches", small):
      rng = np.random.default_rng(0)
      z1, z2 = (jnp.asarray(rng.standard_normal((batch, dim)), jnp.float32) for _ in range(2))
      start = time.perf_counter()
      compiled = jax.jit(fn).lower(z1, z2).compile()
      compile_seconds = time.perf_counter() - start
      jax.block_until_ready(compiled(z1, z2))
      step = min(_seconds(compiled, z1, z2)[1] for _ in range(3))
      report[f"{name}/{batch}"] = {"compile_seconds": compile_seconds, "step_seconds": step}
  if not small:
    report["target_compile_lt_10s_at_16384"] = all(
        report[f"{name}/16384"]["compile_seconds"] < 10.0 for name in ("nt_xent", "dcl", "hcl"))
  return report


def train_step(small: bool) -> dict:
  """The loop's step time with uniform and with ProSampler batches, and the sampler's share."""
  from experiments.ablations import runner  # pylint: disable=g-import-not-at-top
  from experiments.bench.synthetic_task import SyntheticImageTask  # pylint: disable=g-import-not-at-top
  from prosampler_jax import train  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  name = "simclr_digits" if small else "simclr_imagenet100"  # digits: the small CNN; else ResNet-50
  n, image, refresh = size("train_n", small), size("train_image", small), size("train_refresh", small)
  report = {}
  for sampler in ("uniform", "proximity"):
    config = runner.load_config(os.path.join(root, "experiments", "configs", f"{name}.py"))
    config.sampler.name, config.num_epochs = sampler, 3
    config.batch_size = size("batch", small)
    config.sampler.warmup_epochs, config.sampler.refresh_steps = 1, refresh
    config.eval_every_epochs, config.checkpoint_steps, config.log_every_steps = 0, 10**9, 10**9
    if not small:
      config.model.dtype = "bfloat16"
    task = SyntheticImageTask(config, num_examples=n, image_size=image, seed=config.seed)
    with tempfile.TemporaryDirectory() as workdir:
      results = train.train_and_evaluate(config, workdir, task=task)
    epochs = [h for h in results["history"] if h["event"] == "epoch" and h["epoch"] > 1]
    epoch_seconds = float(np.median([h["train_seconds"] for h in epochs]))
    windows = [h["sampler_seconds"] for h in results["history"] if h["event"] == "refresh"]
    report[sampler] = {"step_ms": 1000 * epoch_seconds / (n // config.batch_size),
                       "sampler_seconds_per_window": float(np.median(windows)) if windows else 0.0,
                       "sampler_share_of_epoch": sum(windows) / (config.num_epochs - 1) / epoch_seconds}
  report["ratio_proximity_over_uniform"] = report["proximity"]["step_ms"] / report["uniform"]["step_ms"]
  report["setting"] = {"config": name, "n": n, "image_size": image, "refresh_steps": refresh,
                       "batch_size": size("batch", small)}
  if not small:
    report["target_ratio_le_1.02"] = report["ratio_proximity_over_uniform"] <= 1.02
    report["target_sampler_share_le_1pct"] = report["proximity"]["sampler_share_of_epoch"] <= 0.01
  return report


def bank_memory(small: bool) -> dict:
  """Bank MiB per device for every dtype and layout, on this machine's devices."""
  from experiments.bench import bank_memory as bank_lib  # pylint: disable=g-import-not-at-top
  from prosampler_jax import parallel  # pylint: disable=g-import-not-at-top
  n = size("bank_n", small)
  return {"n": n, "dim": 256, **bank_lib.bank_report(parallel.make_data_mesh(), n, 256)}


def loop(small: bool, tu_dir: str | None = None) -> dict:
  """GraphCL end to end with the NumPy loader: MUTAG (grakel) or PROTEINS from ``tu_dir``."""
  from experiments.configs import graphcl_mutag, graphcl_proteins  # pylint: disable=g-import-not-at-top
  from prosampler_jax import train  # pylint: disable=g-import-not-at-top
  config = graphcl_proteins.get_config() if tu_dir else graphcl_mutag.get_config()
  config.data_dir = tu_dir or ""
  config.data.loader = "numpy"
  config.num_epochs = 2 if small else 20
  config.eval_every_epochs, config.eval.svm_seeds, config.log_every_steps = 0, 1, 10**9
  config.sampler.name = "proximity"
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    results = train.train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - start
  from prosampler_jax.data import rows  # pylint: disable=g-import-not-at-top
  return {"dataset": config.dataset, "loader": rows.resolve_loader(config.data.loader),
          "epochs": config.num_epochs, "steps": results["steps"],
          "seconds": seconds, "train_steps_per_second": results.get("train_steps_per_second"),
          "svm_acc": results["svm_acc"]}


def run(*, small: bool, out: str | None, parts=PARTS, tu_dir: str | None = None) -> dict:
  """Runs ``parts`` in order, each guarded; writes the report to ``out`` after each part."""
  unknown = sorted(set(parts) - set(PARTS))
  if unknown:
    raise ValueError(f"--parts has {unknown}; allowed: {', '.join(PARTS)}.")
  functions = {"environment": environment, "graph_walk": graph_walk, "tbs_epoch": tbs_epoch,
               "losses": loss_steps, "train_step": train_step, "bank_memory": bank_memory,
               "loop": functools.partial(loop, tu_dir=tu_dir)}
  report = {"small": small, "parts": {}}
  for part in parts:
    start = time.perf_counter()
    try:
      report["parts"][part] = functions[part](small)
    except Exception as error:  # pylint: disable=broad-except  (one part's failure must not hide the rest)
      report["parts"][part] = {"error": f"{type(error).__name__}: {error}",
                               "traceback": traceback.format_exc(limit=8)}
    report["parts"][part]["part_seconds"] = time.perf_counter() - start
    if out:
      os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
      with open(out, "w") as f:
        json.dump(report, f, indent=2, default=float)
  return report


def define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_bool("small", False, "CPU-sized smoke run (what the test suite runs).")
  flags.DEFINE_string("out", None, "Where to write the JSON (also printed).")
  flags.DEFINE_list("parts", list(PARTS), f"Parts to run, in order, of {PARTS}.")
  flags.DEFINE_string("tu_dir", None, "A folder holding PROTEINS/ for the loop part (default: MUTAG).")


def main(argv):
  from absl import app, flags, logging  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # the JSON is the output
  values = flags.FLAGS
  try:
    report = run(small=values.small, out=values.out, parts=values.parts, tu_dir=values.tu_dir)
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
