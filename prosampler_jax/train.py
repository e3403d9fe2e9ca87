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
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "param_norm": optax.tree.norm(params)}
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


def _train(config: ml_collections.ConfigDict, workdir: str, task, mesh: jax.sharding.Mesh,
           start_time: float, resources: contextlib.ExitStack) -> dict:
  num_examples = task.num_examples
  if num_examples < 2:
    raise ValueError(f"The pre-training data is empty: {num_examples} item(s) for config.dataset="
                     f"{config.dataset!r} (config.data_dir={config.data_dir!r}); allowed: at least "
                     f"config.batch_size={config.batch_size} items. Check the dataset's files and split.")
  if num_examples < config.batch_size:
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the {num_examples} training items; "
                     f"allowed: 2 … {num_examples}.")
  sampler = run_config.make_sampler(config, num_examples)
  steps_per_epoch = num_examples // config.batch_size
  total_steps = config.num_epochs * steps_per_epoch
  refresh = min(config.sampler.refresh_steps or steps_per_epoch, steps_per_epoch)
  schedule = feeder_lib.WindowSchedule(steps_per_epoch, refresh)

  tx = optim.make_optimizer(config, total_steps)
  graphdef, state = init_state(task.make_model(), tx, num_examples, task.bank_dim, config.seed, mesh,
                               bank_dtype=config.bank_dtype, bank_sharding=config.bank_sharding)
  train_step = make_train_step(graphdef, task, tx, mesh, state_shardings(state))
  fill_step = make_fill_step(graphdef, task, mesh, state_shardings(state))
  encoder = make_encoder(graphdef, mesh)
  feeder = feeder_lib.BatchFeeder(task, sampler, schedule, mesh,
                                  warmup_epochs=config.sampler.warmup_epochs,
                                  lookahead_steps=config.sampler.lookahead_steps, total_steps=total_steps,
                                  temperature=config.loss.temperature,
                                  false_negative_margin=config.loss.false_negative_margin,
                                  loss_gap_scores=config.loss_gap_scores, seed=config.seed)

  ckpt_dir = os.path.join(workdir, "checkpoints")
  ckpt = resources.enter_context(contextlib.closing(
      checkpoint.Checkpointer(ckpt_dir, max_to_keep=config.keep_checkpoints)))
  data = run_config.data_fingerprint(task)
  fingerprint = {**run_config.flatten(config), **data}
  history: list[dict] = []
  latest = ckpt.newest_intact_step()
  if latest is not None:
    run_config.check_resume(ckpt.read_config(latest), config, step=latest, checkpoint_dir=ckpt_dir,
                            total_steps=total_steps, data=data)
    state, host, meta = ckpt.restore(latest, checkpoint.abstract_like(state))
    feeder.load(host, meta)
    history = meta["history"]
    logging.info("Resumed from %s at step %d.", ckpt_dir, latest)

  writer = resources.enter_context(contextlib.closing(_SummaryWriter(workdir)))
  best_model = resources.enter_context(contextlib.closing(selection.BestModel(
      os.path.join(workdir, "checkpoints_best"), getattr(task, "selection_metric", None), fingerprint)))
  step = int(state.step)
  last_good = lambda: None if ckpt.latest_step() is None else (ckpt.latest_step(), ckpt_dir)
  monitor = divergence.DivergenceMonitor(last_good=last_good, advice=(
      f"Lower config.optimizer.learning_rate (now {config.optimizer.learning_rate:g}) or raise "
      "config.loss.temperature, and start again in a new --workdir (a resumed run keeps its config)."))

  def save(step_now: int) -> None:
    monitor.check()  # only healthy steps are checkpointed
    if step_now in ckpt.all_steps():
      return
    host, meta = feeder.state()
    meta["history"] = history
    ckpt.save(step_now, state, host, meta, fingerprint)

  def evaluate(final: bool) -> dict[str, float]:
    with jax.profiler.TraceAnnotation("evaluate"):
      return {k: float(v) for k, v in task.evaluate(encoder(state), final=final).items()}

  shown: dict[str, str] = {}  # the progress bar's figures: the loss and the latest monitor metrics

  def monitor_evaluation(step_now: int, label: str) -> dict[str, float]:
    monitor.check()  # never evaluate a diverged model
    metrics = evaluate(final=False)
    shown.update({k: f"{v:.4f}" for k, v in list(metrics.items())[:2]})
    progress.set_postfix(shown)
    best_model.offer(step_now, metrics, state, history)
    writer.scalars(step_now, {f"eval/{k}": v for k, v in metrics.items()})
    logging.info("%s | %s", label, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics

  progress = tqdm.tqdm(total=total_steps, initial=step, desc="train", unit="step",
                       disable=None if jax.process_index() == 0 else True)
  stop_at = total_steps if config.stop_after_steps <= 0 else min(total_steps,
                                                                 step + config.stop_after_steps)
  log_time, log_step = time.time(), step
  bank_complete = False
  epoch_clock, paused = time.time(), 0.0  # per-epoch training time, checkpoint writes left out
  epoch_first_step = step  # a resumed run times only the steps it runs of its first epoch
  signals = lifecycle.StopSignals()
  profiler = resources.enter_context(contextlib.closing(profiling.StepProfiler(
      os.path.join(workdir, "profile"), num_steps=config.profile_steps,
      first_bank_step=config.sampler.warmup_epochs * steps_per_epoch, current_step=step,
      total_steps=total_steps)))
  with signals:
    try:  # the feeder's threads start in here and are joined on every way out
      if feeder.warmup_ahead(step):
        feeder.precompile(state.bank)
      while step < stop_at:
        window = feeder.due(step)
        if window is not None:
          if feeder.uses_bank(window):
            if not bank_complete:  # once every row is written it stays so: no more host reads after
              state = fill_unwritten_rows(state, fill_step, task, mesh, batch_size=config.batch_size,
                                          seed=config.seed)
              bank_complete = True
            # Device scalars: the sampler thread reads them, so the loop never waits on the device.
            feeder.submit(window, state.bank, bank_freshness(state.bank_written_at, state.step),
                          first_bad_step=monitor.first_bad)
          else:
            feeder.submit(window, None)
        try:
          inputs, index = feeder.next_batch(step)
        except divergence.TrainingDiverged:
          monitor.check()  # raises with the bad step's figures and the last good checkpoint
          raise
        if feeder.new_window and feeder.window_stats:
          epoch_now, window_now, _ = schedule.locate(step)
          history.append({"event": "refresh", "step": step, "epoch": epoch_now, "window": window_now,
                          **feeder.window_stats})
          writer.scalars(step, {f"batch_stats/{k}": v for k, v in feeder.window_stats.items()})
          logging.info("step %d | new batches: %s", step, ", ".join(
              f"{k} {v:.4f}" for k, v in feeder.window_stats.items() if isinstance(v, float)))
        profiler.before_step(step)
        with jax.profiler.StepTraceAnnotation("train", step_num=step):
          state, metrics = train_step(state, inputs, index)
        step += 1
        profiler.after_step(step)
        monitor.record(step, metrics)
        progress.update(1)
        if step % config.log_every_steps == 0 or step == total_steps:
          monitor.check()
          means = monitor.interval_means()  # loss and accuracy over the interval, not its last step
          rate = (step - log_step) / max(time.time() - log_time, 1e-9)
          log_time, log_step = time.time(), step
          writer.scalars(step, {**{f"train/{k}": v for k, v in means.items()},
                                "train/steps_per_second": rate})
          accuracy = means.get("contrastive_accuracy")
          logging.info("step %d/%d | epoch %d | loss %.4f%s | %.1f steps/s", step, total_steps,
                       (step - 1) // steps_per_epoch, means["loss"],
                       "" if accuracy is None else f" | in-batch accuracy {accuracy:.3f}", rate)
          shown["loss"] = f"{means['loss']:.4f}"
          progress.set_postfix(shown, refresh=False)
        epoch_end = step % steps_per_epoch == 0
        if epoch_end:
          jax.block_until_ready(state.step)
          record = {"event": "epoch", "epoch": step // steps_per_epoch, "step": step,
                    "train_seconds": time.time() - epoch_clock - paused,
                    "train_steps": step - epoch_first_step}
        # The monitor: at its epoch and step cadences. The last step is left to the final evaluation,
        # unless the monitor selects the model: then the last model is always a candidate.
        due = ((epoch_end and config.eval_every_epochs
                and (step // steps_per_epoch) % config.eval_every_epochs == 0)
               or (config.eval_every_steps and step % config.eval_every_steps == 0))
        last = step == total_steps
        evaluation = (monitor_evaluation(step, f"step {step}")
                      if (due and not last) or (last and best_model.metric) else {})
        if epoch_end:
          history.append({**record, **evaluation})
        elif evaluation:
          history.append({"event": "eval", "step": step, **evaluation})
        stop_reason = signals.requested(step)
        if step % config.checkpoint_steps == 0 or step == stop_at or stop_reason:
          # The steps' device work and the pending window's sampling are training time: wait for them
          # first, so that only the checkpoint's own writing is left out of the epoch's clock.
          jax.block_until_ready(state)
          feeder.wait_pending()
          save_start = time.time()
          save(step)
          paused += time.time() - save_start
        if stop_reason:
          logging.warning("Stopping after step %d (%s); saved under %s.", step, stop_reason, ckpt_dir)
          break
        if step % steps_per_epoch == 0:
          epoch_clock, paused, epoch_first_step = time.time(), 0.0, step
    finally:
      progress.close()
      feeder.close()

  if signals.request.reason == "interrupted":
    raise KeyboardInterrupt(f"interrupted after step {step}; saved under {ckpt_dir}")
  if step < total_steps:  # stopped early: on request (stop_after_steps) or preempted (SIGTERM)
    return {"steps": step, "stopped_early": True, "stop_reason": signals.request.reason or "stop_after_steps"}

  last_state = state
  state, selected_step = best_model.restore(state, history)  # the selected model, if the task selects
  final = evaluate(final=True)
  epochs = [h for h in history if h["event"] == "epoch"]
  if (epochs and config.eval_every_epochs and epochs[-1]["epoch"] % config.eval_every_epochs == 0
      and not best_model.metric):
    epochs[-1].update(final)  # the last epoch's monitor is the final evaluation
  selected = {} if not best_model.metric else {
      "selection_metric": best_model.metric, "selected_step": selected_step or step}
  results = {
      "task": config.task, "sampler": config.sampler.name, "loss": config.loss.name,
      "dataset": config.dataset, "steps": step, **final, **selected,
      "wall_seconds": time.time() - start_time,
      # Steady-state throughput: the median epoch's steps run per second of training (compilation,
      # evaluation and checkpoint writes excluded; after a resume, only the steps this process ran).
      "train_steps_per_second": float(np.median([h.get("train_steps", steps_per_epoch) / h["train_seconds"]
                                                 for h in epochs])),
      "batch_stats": feeder.final_stats(last_state.bank), "history": history,
      "batch_sequence_sha1": feeder.digest, "config": config.to_dict(),
  }
  if jax.process_index() == 0:
    path = os.path.join(workdir, "results.json")
    with open(path + ".tmp", "w") as f:
      json.dump(results, f, indent=2, default=str)
    os.replace(path + ".tmp", path)
  writer.scalars(step, {f"eval/{k}": v for k, v in final.items()})
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
