"""The loop's config: every value checked before data loads, and which keys a resumed run may change.

:func:`validate` runs first in ``train_and_evaluate``: names, ranges and the sampler's own argument checks
(on a stand-in item count), so a typo costs a second, not a data load. Task-specific keys (dataset,
augmentations, loss hyper-parameters) are checked by the task's constructor, also before its data loads.

A checkpoint stores the resolved config. :func:`check_resume` refuses to resume with a different value for
any key outside :data:`RESUMABLE_KEYS`, listing each difference: two configs silently mixed in one run
would make its results describe neither.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import ml_collections
import numpy as np

from prosampler_jax import _checks
from prosampler_jax import feeder
from prosampler_jax import losses
from prosampler_jax import optim
from prosampler_jax import parallel
from prosampler_jax import samplers
from prosampler_jax import tasks
from prosampler_jax.data import rows

# Keys a resumed run may change; every other key must equal the checkpoint's.
#  - num_epochs: extends (or shortens, down to the checkpoint's step) the run. The batch sequence and
#    state up to the old end are those of a run launched with the new value, with two exceptions: a
#    cosine learning-rate schedule is stretched over the new length from the resumed step on (a jump in
#    the rate), and the first window after the old end is sampled at its first step instead of
#    ``lookahead`` steps earlier. A constant schedule with a uniform sampler continues exactly.
#  - data_dir: where the same dataset is read from (a moved copy).
#  - log_every_steps, checkpoint_steps, keep_checkpoints, stop_after_steps: cadence of logs and
#    checkpoints; they never change what is trained. (The monitor's cadence may: it selects the model a
#    task with a selection_metric is finally evaluated on.)
# data_reader and bank_sharding change how items are read and where the bank lives, not what is trained;
# loss_gap_scores, profile_steps and transfer_guard only what is logged, traced or checked;
# checkpoint_async only when a checkpoint is written.
RESUMABLE_KEYS = ("num_epochs", "data_dir", "data_reader", "bank_sharding", "log_every_steps",
                  "checkpoint_steps", "keep_checkpoints", "stop_after_steps", "loss_gap_scores",
                  "profile_steps", "transfer_guard", "checkpoint_async", "data.loader")
TRANSFER_GUARDS = ("allow", "log", "disallow")

DTYPES = ("float32", "bfloat16", "float16")
# Storage dtypes of the embedding bank: bfloat16 halves its memory; the samplers compute in float32.
BANK_DTYPES = ("float32", "bfloat16")
_MAX_STAND_IN = 10**7  # items of the stand-in sampler (its per-item state is allocated)


def validate(config: ml_collections.ConfigDict) -> None:
  """Rejects unknown names and out-of-range values of the loop's keys, each error naming its key."""
  _checks.check_choice("config.task", config.task, tasks.TASKS)
  _checks.check_choice("config.sampler.name", config.sampler.name, tuple(samplers.SAMPLERS))
  for key, low in (("num_epochs", 1), ("batch_size", 2), ("log_every_steps", 1),
                   ("checkpoint_steps", 1), ("keep_checkpoints", 1), ("eval_batch_size", 1),
                   ("sampler.warmup_epochs", 0), ("sampler.lookahead_steps", 0),
                   ("sampler.refresh_steps", 0), ("eval_every_epochs", 0), ("eval_every_steps", 0),
                   ("seed", 0), ("loss_gap_scores", 0), ("profile_steps", 0),
                   ("stop_after_steps", 0)):
    _checks.check_int(f"config.{key}", _get(config, key), low=low)
  _checks.check_choice("config.bank_dtype", config.bank_dtype, BANK_DTYPES)
  _checks.check_choice("config.bank_sharding", config.bank_sharding, parallel.BANK_SHARDINGS)
  _checks.check_choice("config.transfer_guard", config.transfer_guard, TRANSFER_GUARDS)
  feeder.check_bank_view(config.sampler.bank_view,
                         reads_pairs=samplers.SAMPLERS[config.sampler.name].reads_pairs)
  _checks.check_choice("config.checkpoint_async", config.checkpoint_async, (True, False))
  _checks.check_choice("config.data.loader", config.data.loader, rows.LOADERS)
  if config.task == "simclr" and config.data.loader == "numpy":
    raise ValueError("config.data.loader='numpy' serves text and graph rows; allowed for task 'simclr': "
                     "auto, tf (image augmentations are TensorFlow ops).")
  if "model" in config and "dtype" in config.model:
    _checks.check_choice("config.model.dtype", config.model.dtype, DTYPES)
  optim.validate(config)
  # The sampler's own checks on a stand-in item count large enough for its size arguments; the
  # checks that need the real N run again when the data is loaded.
  sizes = [config.sampler.get(k) for k in ("num_neighbors", "num_candidates")]
  sizes = [v + 1 for v in sizes if isinstance(v, int) and not isinstance(v, bool)]
  stand_in = min(max([config.batch_size, 2, *sizes]), _MAX_STAND_IN)
  make_sampler(config, stand_in)


def make_sampler(config: ml_collections.ConfigDict, num_examples: int) -> samplers.BatchSampler:
  """The configured sampler; its keyword arguments are the ``config.sampler`` keys it accepts."""
  accepted = samplers.keyword_arguments(config.sampler.name)
  kwargs = {k: config.sampler[k] for k in accepted if k in config.sampler and k != "seed"}
  try:  # the sampler's messages start with the argument's name
    return samplers.make_sampler(config.sampler.name, num_examples, config.batch_size, seed=config.seed,
                                 **kwargs)
  except ValueError as error:
    message = str(error)
    prefix = "config." if message.startswith(("batch_size", "seed")) else "config.sampler."
    raise ValueError(prefix + message) from None


# config.sampler keys the loop reads whatever the sampler; every other key there is one sampler's argument.
LOOP_SAMPLER_KEYS = ("name", "refresh_steps", "warmup_epochs", "lookahead_steps", "bank_view")
# config.loss keys the loop reads whatever the loss (the temperature also scores the loss gap); every
# other key there is one loss's hyper-parameter (tau_plus and beta: dcl and hcl only).
LOOP_LOSS_KEYS = ("name", "temperature", "false_negative_margin", "exclude_same_label")


def readers(config: ml_collections.ConfigDict) -> list[tuple[str, list[str], list[str]]]:
  """(reader, the keys of its part of the config it does not read, those it reads) for the run's sampler,
  loss and task: each part of the config that only one choice of sampler, loss or task reads."""
  flat = flatten(config)
  parts = []
  name = config.sampler.name
  if name in samplers.SAMPLERS:
    reads = {*samplers.keyword_arguments(name), *LOOP_SAMPLER_KEYS}
    parts.append((f"sampler {name!r}", [k for k in flat if k.startswith("sampler.")],
                    lambda key, reads=reads: key.split(".", 1)[1] in reads))
  name = config.loss.name if "loss" in config else None
  if name in losses.NAMES:
    reads = {*losses.hyperparameter_names(name), *LOOP_LOSS_KEYS}
    parts.append((f"loss {name!r}", [k for k in flat if k.startswith("loss.")],
                    lambda key, reads=reads: key.split(".", 1)[1] in reads))
  if config.task in tasks.TASK_KEYS:
    specific = [k for k in flat if k.split(".")[0] in tasks.TASK_SECTIONS or k in tasks.TASK_TOP_KEYS]
    parts.append((f"task {config.task!r}", specific,
                    lambda key, task=config.task: tasks.reads_key(task, key)))
  return [(reader, [k for k in keys if not reads(k)], [k for k in keys if reads(k)])
          for reader, keys, reads in parts]


def unread_keys(config: ml_collections.ConfigDict) -> list[str]:
  """The dotted keys this run never reads: arguments of samplers other than ``config.sampler.name``,
  hyper-parameters of other losses, and other tasks' keys (``tasks.TASK_KEYS``). Changing one changes the
  config, not the run (a sweep axis M over Tail Batch Sampling would train one model under several names),
  so sweeps and the command line refuse that."""
  return sorted(key for _, unread, _ in readers(config) for key in unread)


def check_overrides_read(config: ml_collections.ConfigDict, keys) -> None:
  """Refuses overrides (dotted keys, e.g. from ``--config.sampler.num_candidates=500``) that the run
  would not read, naming them, who ignores them (the sampler, the loss or the task) and what it reads."""
  keys = set(keys)
  for reader, unread, reads in readers(config):
    refused = sorted(keys & set(unread))
    if refused:
      name = reader.split(" ", 1)[1]
      allowed = [k for k in reads if not k.endswith(".name") and k != "task"]
      raise ValueError(f"{', '.join('config.' + k for k in refused)} would change nothing: {reader} "
                       f"does not read {'it' if len(refused) == 1 else 'them'}; allowed for {name}: "
                       f"{', '.join('config.' + k for k in allowed)}.")


def flatten(config: ml_collections.ConfigDict | dict, prefix: str = "") -> dict[str, Any]:
  """``{"sampler.name": "tail", …}``: one dotted key per leaf; tuples become lists (as in JSON)."""
  items = config.items() if isinstance(config, dict) else config.to_dict().items()
  flat = {}
  for key, value in items:
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      flat.update(flatten(dict(value), f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
  return flat


# Keys added after runs were already saved, with the value that trains exactly as those runs did: a saved
# config without the key equals a current one holding that value (a checkpoint or a sweep's results from
# before the key existed still resume; another value is a change, refused by name). A key added from now
# on joins this table with its neutral value.
ADDED_KEYS = {"loss.false_negative_margin": None, "loss.exclude_same_label": False,
              "sampler.bank_view": "rows", "graph.self_loops": "none", "augment.subgraph": "grow",
              "augment.drop_unlinked": False, "data.loader": "auto"}


def differences(saved: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
  """(key, saved value, current value) for each key outside RESUMABLE_KEYS that differs or is missing
  (a key of ``ADDED_KEYS`` missing from ``saved`` counts as its neutral value)."""
  missing = object()
  saved = {**{k: v for k, v in ADDED_KEYS.items() if k in current}, **saved}
  keys = sorted(set(saved) | set(current))
  return [(k, saved.get(k, "<absent>"), current.get(k, "<absent>")) for k in keys
          if k not in RESUMABLE_KEYS and saved.get(k, missing) != current.get(k, missing)]


def data_fingerprint(task) -> dict[str, Any]:
  """What identifies the pre-training data, stored with every checkpoint as ``data.*`` keys: the item
  count, a SHA-1 of the labels (when the task has them) and whatever the task's optional
  ``data_fingerprint()`` adds (SimCSE: its token ids). Cheap: no image or graph is hashed."""
  fingerprint: dict[str, Any] = {"data.num_examples": int(task.num_examples)}
  if task.pretrain_labels is not None:
    labels = np.ascontiguousarray(task.pretrain_labels)
    fingerprint["data.labels_sha1"] = hashlib.sha1(str(labels.dtype).encode() + labels.tobytes()
                                                   ).hexdigest()
  extra = getattr(task, "data_fingerprint", None)
  if extra is not None:
    fingerprint.update({f"data.{key}": value for key, value in extra().items()})
  return fingerprint


def check_resume(saved: dict[str, Any], config: ml_collections.ConfigDict, *, step: int,
                 checkpoint_dir: str, total_steps: int, data: dict[str, Any] | None = None) -> None:
  """Refuses to resume from a checkpoint written with a different config or other data (``data``: this
  run's ``data_fingerprint``; a checkpoint written before fingerprints has none to compare), or past the
  run's end. Runs before any restore, so a changed dataset is named rather than failing in orbax."""
  current = {**flatten(config), **(data or {})}
  changed = [(key, old, new) for key, old, new in differences(saved, current)
             if not (key.startswith("data.") and key not in saved)]
  if changed:
    lines = "\n".join(f"  {key}: {old!r} -> {new!r}" for key, old, new in changed)
    what = "other data" if all(k.startswith("data.") for k, _, _ in changed) else "a different config"
    raise ValueError(
        f"Refusing to resume {checkpoint_dir} (step {step}) with {what}; it was written "
        f"with other values for {len(changed)} key(s) (checkpoint -> now):\n{lines}\n"
        "Restore those values (data.* keys: point config.data_dir at the data the run started with) to "
        "resume, or use a new --workdir. Keys that may change "
        f"on resume: {', '.join(RESUMABLE_KEYS)}.")
  if total_steps < step:
    raise ValueError(f"config.num_epochs={config.num_epochs} gives {total_steps} steps, fewer than the "
                     f"{step} steps the checkpoint in {checkpoint_dir} has trained; allowed: "
                     "num_epochs covering at least that step.")


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  return functools.reduce(getattr, dotted.split("."), config)
