"""The one training loop for every modality: bank → sampler → index array → tf.data → sharded step → bank.

``train_and_evaluate(config, workdir)`` runs contrastive pre-training with any sampler, keeps an embedding
bank on device (written from every step's projections), refreshes the sampler's batches every
``sampler.refresh_steps`` steps in a background thread, checkpoints everything needed to resume exactly,
monitors a weighted kNN classifier each epoch and fits a linear probe at the end.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import functools
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils

from prosampler_jax import checkpoint
from prosampler_jax import diagnostics
from prosampler_jax import losses
from prosampler_jax import parallel
from prosampler_jax import samplers
from prosampler_jax import tasks
from prosampler_jax.evaluation import linear_probe_accuracy, weighted_knn_accuracy

LOSSES = {"nt_xent": ("temperature",), "dcl": ("temperature", "tau_plus"),
          "hcl": ("temperature", "tau_plus", "beta")}
SAMPLER_KEYS = {
    "uniform": (),
    "proximity": ("num_neighbors", "num_candidates", "restart_prob", "graph_backend", "restart_decay",
                  "min_restart_prob"),
    "knn": (),
    "tail": ("quantile",),
}


@flax.struct.dataclass
class TrainState:
  """Everything on device that a step reads and writes; checkpointed whole."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  bank: jax.Array   # [N, 2P] L2-normalised concat(z1, z2) per item: what the sampler sees
  key: jax.Array    # raw PRNG key data; per-step randomness for stochastic models (fold_in(key, step))


@dataclasses.dataclass(frozen=True)
class WindowSchedule:
  """Splits each epoch of ``steps_per_epoch`` steps into refresh windows of ``refresh_steps`` batches."""
  steps_per_epoch: int
  refresh_steps: int

  @property
  def windows_per_epoch(self) -> int:
    return math.ceil(self.steps_per_epoch / self.refresh_steps)

  def locate(self, step: int) -> tuple[int, int, int]:
    """(epoch, window within the epoch, offset within the window) of global step ``step``."""
    epoch, position = divmod(step, self.steps_per_epoch)
    window, offset = divmod(position, self.refresh_steps)
    return epoch, window, offset

  def window_start(self, epoch: int, window: int) -> int:
    return epoch * self.steps_per_epoch + window * self.refresh_steps

  def window_length(self, window: int) -> int:
    return min(self.refresh_steps, self.steps_per_epoch - window * self.refresh_steps)

  def next_window(self, epoch: int, window: int) -> tuple[int, int]:
    return (epoch, window + 1) if window + 1 < self.windows_per_epoch else (epoch + 1, 0)


# ---------------------------------------------------------------------------------------------------
# Building blocks chosen by the config.


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects unknown names and out-of-range numbers before any data is loaded."""
  if config.sampler.name not in SAMPLER_KEYS:
    raise ValueError(f"config.sampler.name={config.sampler.name!r} is not supported; allowed: "
                     f"{', '.join(SAMPLER_KEYS)}.")
  if config.loss.name not in LOSSES:
    raise ValueError(f"config.loss.name={config.loss.name!r} is not supported; allowed: "
                     f"{', '.join(LOSSES)}.")
  for key, low in (("num_epochs", 1), ("batch_size", 2), ("log_every_steps", 1),
                   ("checkpoint_steps", 1), ("keep_checkpoints", 1), ("eval_batch_size", 1),
                   ("sampler.warmup_epochs", 0), ("sampler.lookahead_steps", 0),
                   ("sampler.refresh_steps", 0), ("knn_every_epochs", 0)):
    value = functools.reduce(getattr, key.split("."), config)
    if not isinstance(value, int) or value < low:
      raise ValueError(f"config.{key}={value!r} is out of range; allowed: integers >= {low}.")
  if config.optimizer.name not in ("adam", "lars", "sgd"):
    raise ValueError(f"config.optimizer.name={config.optimizer.name!r} is not supported; allowed: "
                     "'adam', 'lars', 'sgd'.")


def make_loss(config: ml_collections.ConfigDict) -> Callable:
  """The configured SimCLR-family loss with its hyper-parameters bound."""
  kwargs = {k: config.loss[k] for k in LOSSES[config.loss.name]}
  return functools.partial(getattr(losses, config.loss.name), **kwargs)


def make_sampler(config: ml_collections.ConfigDict, num_examples: int):
  """The configured batch sampler for ``num_examples`` items."""
  kwargs = {k: config.sampler[k] for k in SAMPLER_KEYS[config.sampler.name]}
  return samplers.make_sampler(config.sampler.name, num_examples, config.batch_size,
                               seed=config.seed, **kwargs)


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """Adam (L2 weight decay, as in the reference PyTorch code), LARS or SGD, with optional cosine decay."""
  opt = config.optimizer
  if opt.schedule == "cosine":
    warmup = min(opt.warmup_steps, max(total_steps - 1, 0))
    lr = optax.warmup_cosine_decay_schedule(0.0, opt.learning_rate, warmup, max(total_steps, warmup + 1))
  elif opt.schedule == "constant":
    lr = opt.learning_rate
  else:
    raise ValueError(f"config.optimizer.schedule={opt.schedule!r} is not supported; allowed: "
                     "'constant', 'cosine'.")
  if opt.name == "adam":
    return optax.chain(optax.add_decayed_weights(opt.weight_decay), optax.adam(lr))
  if opt.name == "lars":
    return optax.lars(lr, weight_decay=opt.weight_decay, momentum=0.9)
  return optax.chain(optax.add_decayed_weights(opt.weight_decay), optax.sgd(lr, momentum=0.9))


def make_loss_and_grad(graphdef: nnx.GraphDef, loss_fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """``(params, batch_stats, x) -> ((loss, (bank_rows, batch_stats)), grads)`` on the global batch.

  ``x`` holds both views, interleaved per device (``parallel.interleave_views``); BatchNorm sees the
  global batch and the loss all-gathers its negatives, so the result does not depend on the device count.
  """
  loss_and_rows = parallel.paired_loss_and_rows(loss_fn, mesh)

  def objective(params, batch_stats, x):
    # copy=True: fresh Variables in this trace, so BatchNorm may update its statistics under grad.
    model = nnx.merge(graphdef, params, batch_stats, copy=True)
    model.train()
    _, projections = model(x)
    loss, rows = loss_and_rows(projections)
    return loss, (rows, nnx.state(model, nnx.BatchStat))

  return jax.value_and_grad(objective, has_aux=True)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, loss_fn: Callable,
                    mesh: jax.sharding.Mesh) -> Callable:
  """A jitted, buffer-donating step ``(state, x, index) -> (state, metrics)``; writes the bank rows."""
  loss_and_grad = make_loss_and_grad(graphdef, loss_fn, mesh)

  def step(state: TrainState, x: jax.Array, index: jax.Array):
    (loss, (rows, batch_stats)), grads = loss_and_grad(state.params, state.batch_stats, x)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state, bank=state.bank.at[index].set(rows))
    return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

  return jax.jit(step, donate_argnums=0, out_shardings=parallel.replicated(mesh))


def init_state(model: nnx.Module, tx: optax.GradientTransformation, num_examples: int, bank_dim: int,
               seed: int, mesh: jax.sharding.Mesh) -> tuple[nnx.GraphDef, TrainState]:
  """Splits the model and places the initial state (random unit bank rows) replicated on the mesh."""
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  bank = jax.random.normal(jax.random.key(seed + 1), (num_examples, bank_dim), jnp.float32)
  bank = bank / jnp.linalg.norm(bank, axis=-1, keepdims=True)
  state = TrainState(step=jnp.int32(0), params=params, batch_stats=batch_stats,
                     opt_state=tx.init(params), bank=bank,
                     key=jax.random.key_data(jax.random.key(seed)))
  return graphdef, jax.device_put(state, parallel.replicated(mesh))


def to_host(x: jax.Array) -> np.ndarray:
  """A global array's full value on this host (gathered across processes when there are several)."""
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


# ---------------------------------------------------------------------------------------------------
# Batches: the sampler (in a background thread) and the input pipeline.


class BatchFeeder:
  """Turns bank snapshots into index arrays and index arrays into device batches, one window ahead.

  The sampler for window w+1 starts ``lookahead_steps`` steps before w+1 begins, on a copy of the bank
  taken then, in a worker thread, so it runs while the device trains. All randomness comes from the
  config seed, the window and that snapshot, so a run resumed from a checkpoint sees the same batches.
  """

  def __init__(self, task, sampler, schedule: WindowSchedule, mesh, *, warmup_epochs: int,
               lookahead_steps: int, total_steps: int):
    self._task, self._sampler, self._schedule, self._mesh = task, sampler, schedule, mesh
    self._warmup_epochs, self._lookahead, self._total = warmup_epochs, lookahead_steps, total_steps
    self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sampler")
    self._pending: tuple[tuple[int, int], concurrent.futures.Future] | None = None
    self._window: tuple[int, int] | None = None
    self._batches: np.ndarray | None = None
    self._iterator: Iterator | None = None
    self.digest = hashlib.sha1().hexdigest()  # running digest of every window's index array
    self.window_stats: dict[str, float] = {}
    self.new_window = False  # True right after next_batch() switched to a freshly sampled window

  # -- sampling --------------------------------------------------------------------------------------

  def _sample(self, epoch: int, window: int, bank: np.ndarray | None) -> tuple[np.ndarray, dict, Iterator]:
    """The window's index array, its batch statistics and its input pipeline (already prefetching)."""
    batches = self._sampler.sample(epoch, bank, num_batches=self._schedule.refresh_steps,
                                   window=window)
    stats = {}
    if bank is not None:
      stats = diagnostics.batch_stats(batches[:self._schedule.window_length(window)], bank,
                                      self._task.pretrain_labels)
    return batches, stats, self._pipeline(epoch, window, batches, start_batch=0)

  def _pipeline(self, epoch: int, window: int, batches: np.ndarray, *, start_batch: int) -> Iterator:
    global_window = epoch * self._schedule.windows_per_epoch + window
    return self._task.pretrain_batches(batches, window=global_window, start_batch=start_batch)

  def _submit(self, epoch: int, window: int, bank: jax.Array) -> None:
    use_bank = epoch >= self._warmup_epochs
    snapshot = bank.copy() if use_bank else None  # the train step donates the bank: copy it now
    job = lambda: self._sample(epoch, window, None if snapshot is None else to_host(snapshot))
    self._pending = ((epoch, window), self._executor.submit(job))

  def precompile(self, bank: jax.Array) -> None:
    """Runs a throw-away copy of the sampler once, in a thread of its own, so its JAX kernels compile
    during the warm-up epoch instead of stalling the first window that needs them."""
    sampler, snapshot = copy.deepcopy(self._sampler), bank.copy()
    window_length = self._schedule.window_length(0)

    def job():
      host_bank = to_host(snapshot)
      batches = sampler.sample(self._warmup_epochs, host_bank, num_batches=self._schedule.refresh_steps)
      diagnostics.batch_stats(batches[:window_length], host_bank, self._task.pretrain_labels)

    # Its own thread: the first window's sampling must not queue behind it.
    threading.Thread(target=job, name="sampler-precompile", daemon=True).start()

  def maybe_prefetch(self, step: int, bank: jax.Array) -> None:
    """Starts sampling the next window when ``step`` is ``lookahead_steps`` before it begins."""
    if self._lookahead == 0 or self._window is None or self._pending is not None:
      return
    nxt = self._schedule.next_window(*self._window)
    start = self._schedule.window_start(*nxt)
    if start < self._total and step >= start - self._lookahead:
      self._submit(*nxt, bank)

  # -- feeding ---------------------------------------------------------------------------------------

  def next_batch(self, step: int, bank: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The global (views, indices) arrays for ``step``; switches windows when one begins."""
    epoch, window, offset = self._schedule.locate(step)
    self.new_window = self._window != (epoch, window)
    if self.new_window:
      if self._pending is None or self._pending[0] != (epoch, window):
        self._submit(epoch, window, bank)
      (_, future), self._pending = self._pending, None
      self._batches, self.window_stats, self._iterator = future.result()
      self._window = (epoch, window)
      self.digest = hashlib.sha1(self.digest.encode() + self._batches.tobytes()).hexdigest()
    if self._iterator is None:  # resumed: rebuild the pipeline from the checkpointed index array
      self._iterator = self._pipeline(epoch, window, self._batches, start_batch=offset)
    element = next(self._iterator)
    local_devices = len(self._mesh.local_devices)
    views = parallel.interleave_views(element["view1"], element["view2"], local_devices)
    return parallel.to_global(views, self._mesh), parallel.to_global(element["index"], self._mesh)

  # -- checkpointing ---------------------------------------------------------------------------------

  def state(self) -> tuple[dict[str, np.ndarray], dict]:
    """Host arrays and JSON metadata that reproduce the batch sequence from here on."""
    arrays, scalars, meta = {}, {}, {"pending": None}
    if self._pending is not None:  # wait for it: its result and the sampler's state must be final
      key, future = self._pending
      batches, stats, _ = future.result()
      arrays["next_batches"], meta["pending"], meta["pending_stats"] = batches, list(key), stats
    for key, value in self._sampler.state_dict().items():
      if isinstance(value, np.ndarray) and value.dtype != object:
        arrays[f"sampler/{key}"] = value
      else:
        scalars[key] = value.item() if isinstance(value, np.generic) else value
    meta.update(digest=self.digest, window=list(self._window) if self._window else None,
                sampler=scalars, window_stats=self.window_stats)
    if self._batches is not None:
      arrays["batches"] = self._batches
    return arrays, meta

  def load(self, host: dict[str, np.ndarray], meta: dict) -> None:
    """Restores what ``state()`` saved."""
    arrays = {k.split("/", 1)[1]: v for k, v in host.items() if k.startswith("sampler/")}
    self._sampler.load_state_dict({**meta["sampler"], **arrays})
    self.digest, self.window_stats = meta["digest"], meta["window_stats"]
    self._window = tuple(meta["window"]) if meta["window"] else None
    self._batches = host.get("batches")
    self._iterator = None
    if meta["pending"]:
      future = concurrent.futures.Future()
      future.set_result((host["next_batches"], meta["pending_stats"], None))
      self._pending = (tuple(meta["pending"]), future)

  def final_stats(self, bank: jax.Array) -> dict[str, float]:
    """The last refresh's batch statistics, or (if every window was a warm-up) the current window's."""
    if self.window_stats or self._batches is None:
      return self.window_stats
    return diagnostics.batch_stats(self._batches, to_host(bank), self._task.pretrain_labels)

  def close(self) -> None:
    self._executor.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------------
# Evaluation on frozen features.


def extract_features(encode: Callable, task, split: str, mesh) -> tuple[np.ndarray, np.ndarray]:
  """Features and labels of every item of ``split`` (padding dropped)."""
  features, labels = [], []
  for element in task.eval_batches(split):
    rows = element["inputs"].shape[0] // jax.process_count()
    lo = jax.process_index() * rows
    out = to_host(encode(parallel.to_global(element["inputs"][lo:lo + rows], mesh)))
    keep = element["mask"]
    features.append(out[keep])
    labels.append(element["label"][keep])
  return np.concatenate(features), np.concatenate(labels)


def make_encoder_fn(graphdef: nnx.GraphDef) -> Callable:
  """A jitted eval-mode encoder ``(params, batch_stats, x) -> features``."""

  @jax.jit
  def encode(params, batch_stats, x):
    model = nnx.merge(graphdef, params, batch_stats)
    model.eval()
    return model.encode(x)

  return encode


# ---------------------------------------------------------------------------------------------------
# The loop.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Pre-trains with the configured sampler and loss, evaluates, writes ``workdir/results.json``."""
  start_time = time.time()
  validate_config(config)
  mesh = parallel.make_data_mesh()
  parallel.check_global_batch("config.batch_size", config.batch_size, mesh)
  parallel.check_global_batch("config.eval_batch_size", config.eval_batch_size, mesh)
  task = tasks.make_task(config)
  num_examples = task.num_examples
  sampler = make_sampler(config, num_examples)
  steps_per_epoch = num_examples // config.batch_size
  total_steps = config.num_epochs * steps_per_epoch
  refresh = min(config.sampler.refresh_steps or steps_per_epoch, steps_per_epoch)
  schedule = WindowSchedule(steps_per_epoch, refresh)

  tx = make_optimizer(config, total_steps)
  graphdef, state = init_state(task.make_model(), tx, num_examples, 2 * config.model.projection_dim,
                               config.seed, mesh)
  train_step = make_train_step(graphdef, tx, make_loss(config), mesh)
  encode = make_encoder_fn(graphdef)
  feeder = BatchFeeder(task, sampler, schedule, mesh, warmup_epochs=config.sampler.warmup_epochs,
                       lookahead_steps=config.sampler.lookahead_steps, total_steps=total_steps)

  os.makedirs(workdir, exist_ok=True)
  ckpt_dir = os.path.join(workdir, "checkpoints")
  ckpt = checkpoint.Checkpointer(ckpt_dir, max_to_keep=config.keep_checkpoints)
  history: list[dict] = []
  latest = ckpt.latest_step()
  if latest is not None:
    state, host, meta = ckpt.restore(latest, checkpoint.abstract_like(state))
    feeder.load(host, meta)
    history = meta["history"]
    logging.info("Resumed from %s at step %d.", ckpt_dir, latest)

  writer = _SummaryWriter(workdir)
  step = int(state.step)
  if step < total_steps and config.sampler.warmup_epochs > 0:
    feeder.precompile(state.bank)
  pending_losses: list[jax.Array] = []

  def check_finite(step_now: int) -> float:
    values = np.asarray(jax.device_get(jnp.stack(pending_losses))) if pending_losses else np.zeros(1)
    pending_losses.clear()
    if not np.isfinite(values).all():
      good = ckpt.latest_step()
      raise FloatingPointError(
          f"Non-finite loss at or before step {step_now}; training stopped. The last good checkpoint "
          f"(step {good}) is kept under {ckpt_dir}. Lower config.optimizer.learning_rate "
          "or raise config.loss.temperature.")
    return float(values[-1])

  def save(step_now: int) -> None:
    check_finite(step_now)
    host, meta = feeder.state()
    meta["history"] = history
    ckpt.save(step_now, state, host, meta)

  progress = tqdm.tqdm(total=total_steps, initial=step, desc="train", unit="step",
                       disable=None if jax.process_index() == 0 else True)
  stop_at = total_steps if config.stop_after_steps <= 0 else min(total_steps,
                                                                 step + config.stop_after_steps)
  log_time, log_step = time.time(), step
  epoch_clock, paused = time.time(), 0.0  # per-epoch training time, checkpoint writes left out
  try:
    while step < stop_at:
      feeder.maybe_prefetch(step, state.bank)
      x, index = feeder.next_batch(step, state.bank)
      if feeder.new_window and feeder.window_stats:
        writer.scalars(step, {f"batch_stats/{k}": v for k, v in feeder.window_stats.items()})
        logging.info("step %d | new batches: %s", step, ", ".join(
            f"{k} {v:.4f}" for k, v in feeder.window_stats.items() if isinstance(v, float)))
      state, metrics = train_step(state, x, index)
      pending_losses.append(metrics["loss"])
      step += 1
      progress.update(1)
      if step % config.log_every_steps == 0 or step == total_steps:
        loss = check_finite(step)
        rate = (step - log_step) / max(time.time() - log_time, 1e-9)
        log_time, log_step = time.time(), step
        writer.scalars(step, {"train/loss": loss, "train/grad_norm": float(metrics["grad_norm"]),
                              "train/steps_per_second": rate})
        logging.info("step %d/%d | epoch %d | loss %.4f | %.1f steps/s", step, total_steps,
                     (step - 1) // steps_per_epoch, loss, rate)
      if step % steps_per_epoch == 0:
        jax.block_until_ready(state.step)
        epoch = step // steps_per_epoch
        record = {"epoch": epoch, "step": step, "train_seconds": time.time() - epoch_clock - paused}
        if config.knn_every_epochs and epoch % config.knn_every_epochs == 0:
          record["knn_accuracy"] = _knn_accuracy(_frozen_features(encode, state, task, mesh), task,
                                                 config)
          writer.scalars(step, {"eval/knn_accuracy": record["knn_accuracy"]})
          logging.info("epoch %d | knn accuracy %.4f", epoch, record["knn_accuracy"])
        history.append(record)
      if step % config.checkpoint_steps == 0 or step == stop_at:
        save_start = time.time()
        save(step)
        paused += time.time() - save_start
      if step % steps_per_epoch == 0:
        epoch_clock, paused = time.time(), 0.0
  finally:
    progress.close()
    feeder.close()

  if step < total_steps:  # stopped early on request (e.g. a preemptible job's time slice)
    ckpt.close()
    writer.close()
    return {"steps": step, "stopped_early": True}

  results = _final_results(config, workdir, state, encode, task, mesh, feeder, history, step,
                           time.time() - start_time)
  writer.scalars(step, {"eval/knn_accuracy": results["knn_accuracy"],
                        "eval/linear_accuracy": results["linear_accuracy"]})
  writer.close()
  ckpt.close()
  return results


def _frozen_features(encode, state: TrainState, task, mesh) -> tuple[np.ndarray, ...]:
  """(train features, train labels, test features, test labels) from the eval-mode encoder."""
  fn = functools.partial(encode, state.params, state.batch_stats)
  return (*extract_features(fn, task, "train", mesh), *extract_features(fn, task, "test", mesh))


def _knn_accuracy(features: tuple[np.ndarray, ...], task, config) -> float:
  return weighted_knn_accuracy(*features, num_classes=task.num_classes(), k=config.eval.knn_k,
                               temperature=config.eval.knn_temperature)


def _final_results(config, workdir, state, encode, task, mesh, feeder, history, step, wall) -> dict:
  """Final kNN and linear-probe accuracy, last refresh's batch stats; written to results.json.

  ``train_steps_per_second`` is steady-state throughput: steps per epoch over the median epoch's
  training time (compilation and evaluation excluded).
  """
  features = _frozen_features(encode, state, task, mesh)
  epoch_seconds = [h["train_seconds"] for h in history]
  steps_per_epoch = step // len(history)
  results = {
      "sampler": config.sampler.name, "loss": config.loss.name, "dataset": config.dataset,
      "steps": step, "knn_accuracy": _knn_accuracy(features, task, config),
      "linear_accuracy": linear_probe_accuracy(*features, num_classes=task.num_classes(),
                                               epochs=config.eval.linear_epochs,
                                               learning_rate=config.eval.linear_learning_rate,
                                               seed=config.seed),
      "wall_seconds": wall,
      "train_steps_per_second": steps_per_epoch / float(np.median(epoch_seconds)),
      "batch_stats": feeder.final_stats(state.bank), "history": history,
      "batch_sequence_sha1": feeder.digest, "config": config.to_dict(),
  }
  if jax.process_index() == 0:
    path = os.path.join(workdir, "results.json")
    with open(path + ".tmp", "w") as f:
      json.dump(results, f, indent=2, default=str)
    os.replace(path + ".tmp", path)
  return results


class _SummaryWriter:
  """TensorBoard scalars from process 0 only (tensorboardX keeps TensorFlow out of the loop)."""

  def __init__(self, workdir: str):
    self._writer = None
    if jax.process_index() == 0:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._writer = tensorboardX.SummaryWriter(workdir)

  def scalars(self, step: int, values: dict[str, float]) -> None:
    if self._writer is not None:
      for name, value in values.items():
        self._writer.add_scalar(name, float(value), step)

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
