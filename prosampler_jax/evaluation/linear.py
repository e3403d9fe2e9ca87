"""Linear evaluation protocol of SimCLR (Chen et al. 2020): a softmax classifier on FROZEN features.

Features are standardised with the train mean/std, then a linear layer is trained with Adam on a
cosine-decayed learning rate. The whole run (epochs × shuffled minibatches) is one jitted program.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prosampler_jax import _checks
from prosampler_jax.evaluation import _inputs


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size"))
def _train(x: jax.Array, y: jax.Array, key: jax.Array, learning_rate: jax.Array,
           weight_decay: jax.Array, *, num_classes: int, epochs: int, batch_size: int) -> dict:
  """Trains ``{"kernel", "bias"}`` from zeros; each epoch scans over a fresh permutation of the items."""
  num_items = x.shape[0]
  steps = -(-num_items // batch_size)
  # Coupled L2 (added to the gradient before Adam), as torch.optim.Adam(weight_decay=...) does.
  tx = optax.chain(optax.add_decayed_weights(weight_decay),
                   optax.adam(optax.cosine_decay_schedule(learning_rate, epochs * steps)))
  params = {"kernel": jnp.zeros((x.shape[1], num_classes), jnp.float32),
            "bias": jnp.zeros((num_classes,), jnp.float32)}

  def loss_fn(params, batch_x, batch_y, mask):
    logits = batch_x @ params["kernel"] + params["bias"]
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch_y)
    return jnp.sum(losses * mask) / jnp.sum(mask)

  def step(carry, batch):
    params, opt_state = carry
    index, mask = batch
    grads = jax.grad(loss_fn)(params, x[index], y[index], mask)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  def epoch(carry, epoch_key):
    # The last minibatch is filled with masked-out items, so shapes are static and every item is used.
    order = jax.random.permutation(epoch_key, num_items)
    order = jnp.pad(order, (0, steps * batch_size - num_items))
    mask = (jnp.arange(steps * batch_size) < num_items).astype(jnp.float32)
    batches = (order.reshape(steps, batch_size), mask.reshape(steps, batch_size))
    return jax.lax.scan(step, carry, batches)[0], None

  carry = (params, tx.init(params))
  params, _ = jax.lax.scan(epoch, carry, jax.random.split(key, epochs))[0]
  return params


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels, *,
                          num_classes: int, epochs: int = 100, batch_size: int = 256,
                          learning_rate: float = 1e-3, weight_decay: float = 1e-6,
                          seed: int = 0) -> float:
  """Test accuracy in [0, 1] of a linear classifier trained on frozen, standardised train features.

  Train items with label < 0 are unlabeled and ignored. Minibatches are shuffled from ``seed``; the
  result is deterministic in it. Defaults follow the common SimCLR linear-evaluation recipe
  (Adam, lr 1e-3, weight decay 1e-6, 100 epochs).
  """
  epochs = _checks.check_int("epochs", epochs, low=1)
  batch_size = _checks.check_int("batch_size", batch_size, low=1)
  learning_rate = _checks.check_float("learning_rate", learning_rate, low=0.0, low_open=True)
  weight_decay = _checks.check_float("weight_decay", weight_decay, low=0.0)
  seed = _checks.check_int("seed", seed, low=0)
  train_x, train_y, test_x, test_y = _inputs.check_split(
      train_features, train_labels, test_features, test_labels, num_classes=num_classes)

  mean = train_x.mean(axis=0)
  std = train_x.std(axis=0)
  std = np.where(std > 1e-6, std, 1.0).astype(np.float32)  # constant features stay constant (zero)
  train_x = (train_x - mean) / std
  test_x = (test_x - mean) / std

  params = _train(jnp.asarray(train_x), jnp.asarray(train_y), jax.random.key(seed),
                  jnp.float32(learning_rate), jnp.float32(weight_decay), num_classes=num_classes,
                  epochs=epochs, batch_size=min(batch_size, train_x.shape[0]))
  logits = test_x @ np.asarray(params["kernel"]) + np.asarray(params["bias"])
  return float(np.mean(np.argmax(logits, axis=-1) == test_y))
