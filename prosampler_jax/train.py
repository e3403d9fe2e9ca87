"""The one training loop for every modality: bank → sampler → index array → input pipeline → step → bank.

``train_and_evaluate(config, workdir)`` pre-trains the task named by ``config.task`` (DESIGN §3.6) with any
sampler. This module keeps what no task owns: the train state (all model state, the optimiser, the
embedding bank and which step last wrote each of its rows), the jitted sharded step, the loop, and its
checkpoints and logs. The task owns data, model, loss and evaluation; ``feeder.py`` decides which batches
come next; ``optim.py`` builds the optimiser.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable
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

from prosampler_jax import _checks
from prosampler_jax import cadence
from prosampler_jax import checkpoint
from prosampler_jax import diagnostics
from prosampler_jax import divergence
from prosampler_jax import feeder as feeder_lib
from prosampler_jax import lifecycle
from prosampler_jax import optim
from prosampler_jax import parallel
from prosampler_jax import profiling
from prosampler_jax import run_config
from prosampler_jax import selection
from prosampler_jax import tasks
from prosampler_jax.normalize import l2_normalize

# Bank-fill passes feed the task's pipeline with window ids above every training window, so their
# augmentations never repeat a training window's (window = FILL_WINDOW_BASE + step).
FILL_WINDOW_BASE = 2**40


@flax.struct.dataclass
class TrainState:
  """Everything on device that a step reads and writes; checkpointed whole."""
  step: jax.Array
  params: Any
  model_state: Any         # every other model variable: BatchNorm statistics, RNG stream keys and counts
  opt_state: Any
  bank: jax.Array          # [N, bank_dim] L2-normalised rows written by the task: what the sampler sees
                           # (config.bank_dtype, laid out as config.bank_sharding)
  bank_written_at: jax.Array  # int32 [N]: the step that last wrote each bank row; -1 if none ever did
  rng: jax.Array           # root key of per-step randomness: step s uses fold_in(rng, s)


# ---------------------------------------------------------------------------------------------------
# State and the jitted steps.


def stream_root(seed: int, name: str) -> jax.Array:
  """A key for one purpose (``name``) of run ``seed``: ``fold_in(key(seed), crc32(name))``.

  Model initialisation draws ``fold_in(key(seed), 0, 1, 2, …)`` (an ``nnx.Rngs(seed)`` stream); a crc32
  salt lies billions of draws away, so per-step keys never repeat an initialisation key.
  """
  return jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()))


def reseed_model(model: nnx.Module, key: jax.Array) -> None:
  """Gives every RNG stream of ``model`` (dropout, …) a key derived from ``key`` and its own path.

  Two streams never share a key (the path is folded in), and the same (key, model) always reseeds the
  same way: the masks of step s are a pure function of (seed, s).
  """
  tags = {stream.key.tag for _, stream in nnx.iter_graph(model) if isinstance(stream, nnx.RngStream)}

  def per_path(path, scalar_key, shape):
    path_key = jax.random.fold_in(scalar_key, zlib.crc32(repr(path).encode()))
    return jax.random.split(path_key, shape) if shape else path_key

  if tags:
    nnx.reseed(model, policy=per_path, **{tag: key for tag in tags})


def init_state(model: nnx.Module, tx: optax.GradientTransformation, num_examples: int, bank_dim: int,
               seed: int, mesh: jax.sharding.Mesh, *, bank_dtype: str = "float32",
               bank_sharding: str = "replicated") -> tuple[nnx.GraphDef, TrainState]:
  """Splits the model (params | everything else) and places the initial state on the mesh.

  Everything is replicated but the bank, which is stored as ``bank_dtype`` (one of
  ``run_config.BANK_DTYPES``) and laid out as ``bank_sharding`` (one of ``parallel.BANK_SHARDINGS``). The
  bank starts as random unit rows marked never written; the feeder never samples from such rows.
  """
  _checks.check_choice("config.bank_dtype", bank_dtype, run_config.BANK_DTYPES)
  bank_layout = parallel.bank_sharding(mesh, bank_sharding, bank_dim)
  graphdef, params, model_state = nnx.split(model, nnx.Param, ...)
  bank = l2_normalize(jax.random.normal(stream_root(seed, "bank_init"), (num_examples, bank_dim)))
  state = TrainState(step=jnp.int32(0), params=params, model_state=model_state,
                     opt_state=tx.init(params), bank=None,
                     bank_written_at=jnp.full((num_examples,), -1, jnp.int32),
                     rng=stream_root(seed, "train_step"))
  state = parallel.replicate(state, mesh)
  return graphdef, state.replace(bank=parallel.put(bank.astype(bank_dtype), bank_layout))


def state_shardings(state: TrainState) -> TrainState:
  """The sharding of every leaf of ``state`` (what the jitted steps keep it in)."""
  return jax.tree.map(lambda x: x.sharding, state)


def make_objective(graphdef: nnx.GraphDef, task, mesh: jax.sharding.Mesh) -> Callable:
  """``(params, model_state, inputs, key) -> (loss, (bank_rows, new_model_state))`` on the global batch.

  The task's ``forward`` runs in the global view (BatchNorm sees the global batch); its
  ``loss_and_rows`` runs per shard and all-gathers negatives, so the result does not depend on the
  device count. ``key`` reseeds the model's RNG streams (dropout) for this call.
  """
  loss_and_rows = parallel.shard_map_loss_and_rows(task.loss_and_rows, mesh)

  def objective(params, model_state, inputs, key):
    # copy=True: fresh Variables in this trace, so BatchNorm and RNG counts may update under grad.
    model = nnx.merge(graphdef, params, model_state, copy=True)
    model.train()
    reseed_model(model, key)
    loss, rows = loss_and_rows(task.forward(model, inputs))
    _, _, new_model_state = nnx.split(model, nnx.Param, ...)
    return loss, (rows, new_model_state)

  return objective


def write_bank_rows(state: TrainState, index: jax.Array, rows: jax.Array) -> TrainState:
  """The bank with ``rows`` at ``index``, stamped as written at the current step."""
  return state.replace(bank=state.bank.at[index].set(rows.astype(state.bank.dtype)),
                       bank_written_at=state.bank_written_at.at[index].set(state.step))


def make_train_step(graphdef: nnx.GraphDef, task, tx: optax.GradientTransformation,
                    mesh: jax.sharding.Mesh, shardings: TrainState | None = None) -> Callable:
  """A jitted, buffer-donating step ``(state, inputs, index) -> (state, metrics)``.

  Besides the update it writes the batch's bank rows at ``index`` and stamps them with the step.
  ``metrics``: the loss, the gradient norm and the norm of the new parameters, and for a task with a
  ``bank_pair`` the in-batch contrastive accuracy of the batch's rows (``diagnostics.in_batch_accuracy``
  of the two views: how often an item's own second view is its nearest in the batch). ``shardings``
  (``state_shardings`` of the initial state; None: all replicated) is the layout the state keeps.
  """
  loss_and_grad = jax.value_and_grad(make_objective(graphdef, task, mesh), has_aux=True)
  bank_pair = getattr(task, "bank_pair", None)

  def step(state: TrainState, inputs, index: jax.Array):
    key = jax.random.fold_in(state.rng, state.step)
    (loss, (rows, model_state)), grads = loss_and_grad(state.params, state.model_state, inputs, key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = write_bank_rows(state, index, rows).replace(
        step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state)
    # The three health figures of divergence.py; the parameter norm overflows once weights pass ~1e19.
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "param_norm": optax.tree.norm(params),
               "step": new_state.step}  # the divergence monitor's step number, already on device
    if bank_pair is not None:
      metrics["contrastive_accuracy"] = diagnostics.in_batch_accuracy(*bank_pair(rows))
    return new_state, metrics

  replicated = parallel.replicated(mesh)
  return jax.jit(step, donate_argnums=0, out_shardings=(shardings or replicated, replicated))


def make_fill_step(graphdef: nnx.GraphDef, task, mesh: jax.sharding.Mesh,
                   shardings: TrainState | None = None) -> Callable:
  """A jitted ``(state, inputs, index) -> state`` that only writes bank rows (no update, no model change).

  Used before a window is sampled, for rows training never wrote (the ``N mod B`` items a warm-up
  epoch skips, or every row when there is no warm-up): the rows come from the same training-mode
  forward pass as a step's, with keys of their own stream.
  """
  objective = make_objective(graphdef, task, mesh)

  def fill(state: TrainState, inputs, index: jax.Array):
    key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), zlib.crc32(b"bank_fill"))
    _, (rows, _) = objective(state.params, state.model_state, inputs, key)
    return write_bank_rows(state, index, rows)

  return jax.jit(fill, donate_argnums=0, out_shardings=shardings or parallel.replicated(mesh))


@jax.jit
def bank_freshness(bank_written_at: jax.Array, step: jax.Array) -> dict[str, jax.Array]:
  """Share of bank rows training has written, and their mean age in steps (written rows only)."""
  written = bank_written_at >= 0
  count = jnp.sum(written)
  age = jnp.sum(jnp.where(written, step - bank_written_at, 0)) / jnp.maximum(count, 1)
  return {"bank_written_fraction": count / written.size, "bank_staleness_steps": age}


def fill_unwritten_rows(state: TrainState, fill_step: Callable, task, mesh, *, batch_size: int,
                        seed: int) -> TrainState:
  """Writes every bank row that training never wrote, ``batch_size`` items per forward pass.

  Each pass holds unwritten items first, topped up with written ones drawn from (seed, step) — their
  rows are simply refreshed — so every pass has the training batch shape and no item twice.
  """
  written_at = np.asarray(parallel.to_host(state.bank_written_at))
  missing = np.flatnonzero(written_at < 0)
  if missing.size == 0:
    return state
  step = int(state.step)
  rng = np.random.default_rng([seed, step, zlib.crc32(b"bank_fill")])
  num_batches = -(-missing.size // batch_size)
  short = num_batches * batch_size - missing.size
  # Top-up candidates: written items, then missing items of the full rows (never the last row's own).
  full_rows = missing[:(num_batches - 1) * batch_size]
  candidates = np.concatenate([rng.permutation(np.flatnonzero(written_at >= 0)),
                               rng.permutation(full_rows)])
  batches = np.concatenate([missing, candidates[:short]]).astype(np.int32).reshape(num_batches, batch_size)
  logging.info("step %d | encoding %d bank rows training never wrote (%d passes)", step, missing.size,
               num_batches)
  for element in task.pretrain_batches(batches, window=FILL_WINDOW_BASE + step, start_batch=0):
    state = fill_step(state, parallel.to_global(element["inputs"], mesh),
                      parallel.to_global(element["index"], mesh))
  return state


def make_encoder(graphdef: nnx.GraphDef, mesh: jax.sharding.Mesh) -> Callable:
  """``encoder(state)`` → the frozen encoder handed to ``task.evaluate``: ``encode(batches) -> dict``.

  ``batches`` yields this process's rows of each evaluation batch: ``{"inputs": pytree, "index": int
  [B_local] (< 0 marks padding), other per-item arrays (labels, …)}``. The model's ``encode(inputs)``
  runs in eval mode on the global batch; features travel with their indices and extras through one
  jitted call and one gather across processes, so no device or process order is assumed. Returns
  ``{"features": [n, F], "index": [n], …}`` without padding, sorted by index.
  """

  @jax.jit
  def run(params, model_state, inputs, extras):
    model = nnx.merge(graphdef, params, model_state)
    model.eval()
    return model.encode(inputs).astype(jnp.float32), extras

  def encoder(state: TrainState) -> Callable:
    return functools.partial(encode, state)

  def encode(state: TrainState, batches: Iterable[dict]) -> dict[str, np.ndarray]:
    parts: list[dict[str, np.ndarray]] = []
    for element in batches:
      extras = {k: np.asarray(v) for k, v in element.items() if k != "inputs"}
      features, extras = run(state.params, state.model_state, parallel.to_global(element["inputs"], mesh),
                             parallel.to_global(extras, mesh))
      parts.append({"features": parallel.local_rows(features),
                    **{k: parallel.local_rows(v) for k, v in extras.items()}})
    if not parts:
      raise ValueError("the task's evaluation batches are empty; allowed: at least one batch.")
    local = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    gathered = parallel.gather_processes(local)
    keep = np.flatnonzero(gathered["index"] >= 0)
    keep = keep[np.argsort(gathered["index"][keep], kind="stable")]
    return {k: v[keep] for k, v in gathered.items()}

  return encoder  # the jitted ``run`` is built once: evaluations after the first do not recompile


# ---------------------------------------------------------------------------------------------------
# The loop.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, task=None) -> dict:
  """Pre-trains with the configured sampler, evaluates, writes ``workdir/results.json``.

  ``task`` overrides ``config.task`` with any object that follows the Task protocol (DESIGN §3.6).
  Every config value is checked before data loads; the workdir is locked for this run; a run resumes
  from the newest intact checkpoint in ``workdir`` if its config matches (``run_config.RESUMABLE_KEYS``).
  SIGTERM or Ctrl-C save the last finished step: SIGTERM then returns ``{"stop_reason":
  "preempted", …}``, Ctrl-C raises KeyboardInterrupt.
  """
  start_time = time.time()
  run_config.validate(config)
  mesh = parallel.make_data_mesh()
  parallel.check_global_batch("config.batch_size", config.batch_size, mesh)
  parallel.check_global_batch("config.eval_batch_size", config.eval_batch_size, mesh)
  # The run's checkpointer, best-model keeper and summary writer join ``resources``: closed (pending
  # writes finished, the last scalars flushed) on every way out, an exception included.
  with lifecycle.hold_workdir(workdir), contextlib.ExitStack() as resources:
    task = tasks.make_task(config) if task is None else task
    return _train(config, workdir, task, mesh, start_time, resources)


def _check_data_size(config: ml_collections.ConfigDict, num_examples: int) -> None:
  if num_examples < 2:
    raise ValueError(f"The pre-training data is empty: {num_examples} item(s) for config.dataset="
                     f"{config.dataset!r} (config.data_dir={config.data_dir!r}); allowed: at least "
                     f"config.batch_size={config.batch_size} items. Check the dataset's files and split.")
  if num_examples < config.batch_size:
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the {num_examples} training items; "
                     f"allowed: 2 … {num_examples}.")


def _step_counts(config: ml_collections.ConfigDict, num_examples: int) -> tuple[int, int]:
  """``(steps per epoch, total steps)``: whole batches only; the ``N mod B`` rest of an epoch is skipped."""
  steps_per_epoch = num_examples // config.batch_size
  return steps_per_epoch, config.num_epochs * steps_per_epoch


class _Run:
  """One run's parts besides its TrainState, and what the loop asks of them.

  Built once by ``_train``: the schedule, the feeder, the jitted steps, the checkpointer, the best-model
  keeper, the summary writer, the divergence monitor and the history of epochs, windows and evaluations.
  The state is passed in, never held: the loop alone owns it.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, task, mesh: jax.sharding.Mesh,
               resources: contextlib.ExitStack, *, graphdef: nnx.GraphDef, fill_step: Callable):
    self.config, self.task, self.mesh = config, task, mesh
    self.steps_per_epoch, self.total_steps = _step_counts(config, task.num_examples)
    refresh = min(config.sampler.refresh_steps or self.steps_per_epoch, self.steps_per_epoch)
    self.schedule = cadence.WindowSchedule(self.steps_per_epoch, refresh)
    self.fill_step = fill_step
    self.encoder = make_encoder(graphdef, mesh)
    self.feeder = feeder_lib.BatchFeeder(
        task, run_config.make_sampler(config, task.num_examples), self.schedule, mesh,
        warmup_epochs=config.sampler.warmup_epochs, lookahead_steps=config.sampler.lookahead_steps,
        total_steps=self.total_steps, temperature=config.loss.temperature,
        false_negative_margin=config.loss.false_negative_margin, loss_gap_scores=config.loss_gap_scores,
        seed=config.seed, bank_view=config.sampler.bank_view)
    self.ckpt_dir = os.path.join(workdir, "checkpoints")
    self.ckpt = resources.enter_context(contextlib.closing(
        checkpoint.Checkpointer(self.ckpt_dir, max_to_keep=config.keep_checkpoints,
                                asynchronous=config.checkpoint_async)))
    self.data = run_config.data_fingerprint(task)
    self.fingerprint = {**run_config.flatten(config), **self.data}
    self.writer = resources.enter_context(contextlib.closing(_SummaryWriter(workdir)))
    self.best_model = resources.enter_context(contextlib.closing(selection.BestModel(
        os.path.join(workdir, "checkpoints_best"), getattr(task, "selection_metric", None),
        self.fingerprint)))
    self.monitor = divergence.DivergenceMonitor(last_good=self.last_good, advice=(
        f"Lower config.optimizer.learning_rate (now {config.optimizer.learning_rate:g}) or raise "
        "config.loss.temperature, and start again in a new --workdir (a resumed run keeps its config)."))
    self.history: list[dict] = []
    self.bank_complete = False  # once every bank row is written it stays so: no more host reads
    self.shown: dict[str, str] = {}  # the progress bar's figures: the loss and the latest monitor metrics
    self.progress: tqdm.tqdm | None = None
    self._log_time, self._log_step = time.time(), 0

  def last_good(self) -> tuple[int, str] | None:
    latest = self.ckpt.latest_step()
    return None if latest is None else (latest, self.ckpt_dir)

  def resume(self, state: TrainState) -> TrainState:
    """The newest intact checkpoint's state (and the feeder's and history's), if there is one."""
    latest = self.ckpt.newest_intact_step()
    if latest is None:
      return state
    run_config.check_resume(self.ckpt.read_config(latest), self.config, step=latest,
                            checkpoint_dir=self.ckpt_dir, total_steps=self.total_steps, data=self.data)
    state, host, meta = self.ckpt.restore(latest, checkpoint.abstract_like(state))
    self.feeder.load(host, meta)
    self.history = meta["history"]
    self.monitor.restore_interval(meta.get("log_interval", {}))
    logging.info("Resumed from %s at step %d.", self.ckpt_dir, latest)
    return state

  def start(self, step: int) -> None:
    self.progress = tqdm.tqdm(total=self.total_steps, initial=step, desc="train", unit="step",
                              disable=None if jax.process_index() == 0 else True)
    self._log_time, self._log_step = time.time(), step

  def submit_due_window(self, state: TrainState, step: int) -> TrainState:
    """Hands the feeder the window due at ``step``, if any, with the bank it samples from."""
    window = self.feeder.due(step)
    if window is None:
      return state
    if not self.feeder.uses_bank(window):
      self.feeder.submit(window, None)
      return state
    if not self.bank_complete:
      state = fill_unwritten_rows(state, self.fill_step, self.task, self.mesh,
                                  batch_size=self.config.batch_size, seed=self.config.seed)
      self.bank_complete = True
    # Device scalars: the sampler thread reads them, so the loop never waits on the device.
    self.feeder.submit(window, state.bank, bank_freshness(state.bank_written_at, state.step),
                       first_bad_step=self.monitor.first_bad)
    return state

  def next_batch(self, step: int):
    """The batch of ``step``; a new window's batch statistics go to the history and the logs."""
    try:
      inputs, index = self.feeder.next_batch(step)
    except divergence.TrainingDiverged:
      self.monitor.check()  # raises with the bad step's figures and the last good checkpoint
      raise
    stats = self.feeder.window_stats
    if self.feeder.new_window and stats:
      epoch, window, _ = self.schedule.locate(step)
      self.history.append({"event": "refresh", "step": step, "epoch": epoch, "window": window, **stats})
      self.writer.scalars(step, {f"batch_stats/{k}": v for k, v in stats.items()})
      logging.info("step %d | new batches: %s", step,
                   ", ".join(f"{k} {v:.4f}" for k, v in stats.items() if isinstance(v, float)))
    return inputs, index

  def log_interval(self, step: int) -> None:
    """Loss and accuracy averaged over the steps since the last log, and the steps per second."""
    self.monitor.check()
    means = self.monitor.interval_means()
    rate = (step - self._log_step) / max(time.time() - self._log_time, 1e-9)
    self._log_time, self._log_step = time.time(), step
    self.writer.scalars(step, {**{f"train/{k}": v for k, v in means.items()},
                               "train/steps_per_second": rate})
    accuracy = means.get("contrastive_accuracy")
    logging.info("step %d/%d | epoch %d | loss %.4f%s | %.1f steps/s", step, self.total_steps,
                 (step - 1) // self.steps_per_epoch, means["loss"],
                 "" if accuracy is None else f" | in-batch accuracy {accuracy:.3f}", rate)
    self.shown["loss"] = f"{means['loss']:.4f}"
    self.progress.set_postfix(self.shown, refresh=False)

  def monitor_due(self, step: int) -> bool:
    """Whether the monitor evaluates after ``step``: at its epoch and step cadences. The last step is left
    to the final evaluation, unless the monitor selects the model: then the last model is a candidate."""
    epoch_end = cadence.is_due(step, self.steps_per_epoch)
    due = ((epoch_end and cadence.is_due(step // self.steps_per_epoch, self.config.eval_every_epochs))
           or cadence.is_due(step, self.config.eval_every_steps))
    return (due and step < self.total_steps) or (step == self.total_steps and bool(self.best_model.metric))

  def evaluate(self, state: TrainState, final: bool) -> dict[str, float]:
    with jax.profiler.TraceAnnotation("evaluate"):
      return {k: float(v) for k, v in self.task.evaluate(self.encoder(state), final=final).items()}

  def monitor_evaluation(self, state: TrainState, step: int) -> dict[str, float]:
    self.monitor.check()  # never evaluate a diverged model
    metrics = self.evaluate(state, final=False)
    self.shown.update({k: f"{v:.4f}" for k, v in list(metrics.items())[:2]})
    self.progress.set_postfix(self.shown)
    self.best_model.offer(step, metrics, state, self.history)
    self.writer.scalars(step, {f"eval/{k}": v for k, v in metrics.items()})
    logging.info("step %d | %s", step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics

  def save(self, state: TrainState, step: int) -> None:
    self.monitor.check()  # only healthy steps are checkpointed
    if step in self.ckpt.all_steps():
      return
    host, meta = self.feeder.state()
    meta["history"] = self.history
    meta["log_interval"] = self.monitor.interval_state()  # the steps since the last log
    self.ckpt.save(step, state, host, meta, self.fingerprint)

  def close(self) -> None:
    if self.progress is not None:
      self.progress.close()
    self.feeder.close()

  def results(self, state: TrainState, step: int, start_time: float) -> dict:
    """The final evaluation (of the selected model, if the task selects one) and the run's figures."""
    last_state = state
    state, selected_step = self.best_model.restore(state, self.history)
    final = self.evaluate(state, final=True)
    epochs = [h for h in self.history if h["event"] == "epoch"]
    if (epochs and cadence.is_due(epochs[-1]["epoch"], self.config.eval_every_epochs)
        and not self.best_model.metric):
      epochs[-1].update(final)  # the last epoch's monitor is the final evaluation
    selected = {} if not self.best_model.metric else {
        "selection_metric": self.best_model.metric, "selected_step": selected_step or step,
        **({"selection_fallback": self.best_model.fallback} if self.best_model.fallback else {})}
    config = self.config
    self.writer.scalars(step, {f"eval/{k}": v for k, v in final.items()})
    return {
        "task": config.task, "sampler": config.sampler.name, "loss": config.loss.name,
        "dataset": config.dataset, "steps": step, **final, **selected,
        "wall_seconds": time.time() - start_time,
        # Steady-state throughput: the median epoch's steps run per second of training (compilation,
        # evaluation and checkpoint writes excluded; after a resume, only the steps this process ran).
        "train_steps_per_second": float(np.median([
            h.get("train_steps", self.steps_per_epoch) / h["train_seconds"] for h in epochs])),
        "batch_stats": self.feeder.final_stats(last_state.bank), "history": self.history,
        "batch_sequence_sha1": self.feeder.digest, "config": config.to_dict(),
    }


def _build_state(config: ml_collections.ConfigDict, task, mesh: jax.sharding.Mesh, total_steps: int):
  """The initial state, its graphdef and the jitted steps that keep its layout: ``state, graphdef,
  train_step, fill_step``."""
  tx = optim.make_optimizer(config, total_steps)
  graphdef, state = init_state(task.make_model(), tx, task.num_examples, task.bank_dim, config.seed, mesh,
                               bank_dtype=config.bank_dtype, bank_sharding=config.bank_sharding)
  shardings = state_shardings(state)
  return (state, graphdef, make_train_step(graphdef, task, tx, mesh, shardings),
          make_fill_step(graphdef, task, mesh, shardings))


def _write_results(workdir: str, results: dict) -> None:
  if jax.process_index() == 0:
    path = os.path.join(workdir, "results.json")
    with open(path + ".tmp", "w") as f:
      json.dump(results, f, indent=2, default=str)
    os.replace(path + ".tmp", path)


def _train(config: ml_collections.ConfigDict, workdir: str, task, mesh: jax.sharding.Mesh,
           start_time: float, resources: contextlib.ExitStack) -> dict:
  """The outline of a run: build, resume, loop over steps, save, evaluate, report."""
  _check_data_size(config, task.num_examples)
  _, total_steps = _step_counts(config, task.num_examples)
  state, graphdef, train_step, fill_step = _build_state(config, task, mesh, total_steps)
  run = _Run(config, workdir, task, mesh, resources, graphdef=graphdef, fill_step=fill_step)
  state = run.resume(state)
  step = int(state.step)
  stop_at = total_steps if config.stop_after_steps <= 0 else min(total_steps, step + config.stop_after_steps)
  clock = cadence.EpochClock(step)  # per-epoch training time: evaluation and checkpoint writes paused
  signals = lifecycle.StopSignals()
  profiler = resources.enter_context(contextlib.closing(profiling.StepProfiler(
      os.path.join(workdir, "profile"), num_steps=config.profile_steps,
      first_bank_step=config.sampler.warmup_epochs * run.steps_per_epoch, current_step=step,
      total_steps=total_steps)))
  run.start(step)
  with signals, jax.transfer_guard(config.transfer_guard):
    try:  # the feeder's threads start in here and are joined on every way out
      if run.feeder.warmup_ahead(step):
        run.feeder.precompile(state.bank)
      while step < stop_at:
        state = run.submit_due_window(state, step)
        inputs, index = run.next_batch(step)
        profiler.before_step(step)
        with jax.profiler.StepTraceAnnotation("train", step_num=step):
          state, metrics = train_step(state, inputs, index)
        step += 1
        profiler.after_step(step)
        run.monitor.record(step, metrics)
        run.progress.update(1)
        if cadence.is_due(step, config.log_every_steps) or step == total_steps:
          run.log_interval(step)
        epoch_end = cadence.is_due(step, run.steps_per_epoch)
        if epoch_end:
          jax.block_until_ready(state.step)
          record = {"event": "epoch", "epoch": step // run.steps_per_epoch, "step": step, **clock.lap(step)}
        with clock.paused(), jax.transfer_guard("allow"):  # the task's evaluation: not the step's path
          evaluation = run.monitor_evaluation(state, step) if run.monitor_due(step) else {}
        if epoch_end:
          run.history.append({**record, **evaluation})
        elif evaluation:
          run.history.append({"event": "eval", "step": step, **evaluation})
        stop_reason = signals.requested(step)
        if cadence.is_due(step, config.checkpoint_steps) or step == stop_at or stop_reason:
          # The steps' device work and the pending window's sampling are training time: wait for them
          # first, so that only the checkpoint's own writing is left out of the clock.
          jax.block_until_ready(state)
          run.feeder.wait_pending()
          with clock.paused(), jax.transfer_guard("allow"):
            run.save(state, step)
        if stop_reason:
          logging.warning("Stopping after step %d (%s); saved under %s.", step, stop_reason, run.ckpt_dir)
          break
    finally:
      run.close()

  if signals.request.reason == "interrupted":
    raise KeyboardInterrupt(f"interrupted after step {step}; saved under {run.ckpt_dir}")
  if step < total_steps:  # stopped early: on request (stop_after_steps) or preempted (SIGTERM)
    return {"steps": step, "stopped_early": True, "stop_reason": signals.request.reason or "stop_after_steps"}
  results = run.results(state, step, start_time)
  _write_results(workdir, results)
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
