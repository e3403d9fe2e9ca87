"""Optimisers of the contrastive trainers: Adam (coupled L2), AdamW, LARS and SGD, with their schedules.

Weight decay and LARS's trust ratio apply to weight matrices and kernels only: biases and normalisation
scales/offsets (every parameter of rank ≤ 1) are skipped, as in the SimCLR reference
(``exclude_from_weight_decay=['batch_normalization', 'bias']``) — decaying a BatchNorm scale towards 0
fights the normalisation, and a trust ratio on a bias has no meaning.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import optax

from prosampler_jax import _checks

OPTIMIZERS = ("adam", "adamw", "lars", "sgd")
SCHEDULES = ("constant", "cosine")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks ``config.optimizer`` (names, ranges) before anything is built; errors name the key."""
  opt = config.optimizer
  _checks.check_choice("config.optimizer.name", opt.name, OPTIMIZERS)
  _checks.check_choice("config.optimizer.schedule", opt.schedule, SCHEDULES)
  _checks.check_float("config.optimizer.learning_rate", opt.learning_rate, low=0.0, low_open=True)
  _checks.check_float("config.optimizer.weight_decay", opt.weight_decay, low=0.0)
  _checks.check_float("config.optimizer.momentum", opt.momentum, low=0.0, high=1.0, high_open=True)
  _checks.check_int("config.optimizer.warmup_steps", opt.warmup_steps, low=0)


def decay_mask(params: Any) -> Any:
  """True for parameters that take weight decay and LARS adaptation: rank ≥ 2 (kernels, embeddings)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Constant, or linear warm-up then cosine decay to 0 over ``total_steps``."""
  opt = config.optimizer
  if opt.schedule == "constant":
    return optax.constant_schedule(opt.learning_rate)
  warmup = min(opt.warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(0.0, opt.learning_rate, warmup, max(total_steps, warmup + 1))


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """The configured optimiser over ``total_steps`` optimiser steps (``config.optimizer``).

  - ``adam``: L2 added to the gradient before Adam, as ``torch.optim.Adam(weight_decay=…)`` in the
    ProSampler reference code;
  - ``adamw``: decoupled weight decay (Loshchilov & Hutter), the SimCSE/BERT default;
  - ``lars``: SimCLR's large-batch optimiser (momentum, trust ratio 0.001);
  - ``sgd``: momentum SGD with coupled L2.
  """
  validate(config)
  opt = config.optimizer
  lr = learning_rate_schedule(config, total_steps)
  decay = optax.add_decayed_weights(opt.weight_decay, mask=decay_mask)
  if opt.name == "adam":
    return optax.chain(decay, optax.adam(lr))
  if opt.name == "adamw":
    return optax.adamw(lr, weight_decay=opt.weight_decay, mask=decay_mask)
  if opt.name == "lars":
    return optax.lars(lr, weight_decay=opt.weight_decay, weight_decay_mask=decay_mask,
                      trust_ratio_mask=decay_mask, momentum=opt.momentum)
  return optax.chain(decay, optax.sgd(lr, momentum=opt.momentum))
