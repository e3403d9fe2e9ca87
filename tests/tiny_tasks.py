"""A small real task for loop and feeder tests: digits pixel vectors through a dropout MLP, SimCSE style.

Each item's two views are the *same* 64-pixel vector passed through the model twice; only dropout makes
them differ (as in unsupervised SimCSE). It follows the Task protocol (DESIGN §3.6) without TensorFlow,
so feeder and loop tests run in seconds and show that the loop is not image-shaped.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from sklearn import datasets

from prosampler_jax import losses
from prosampler_jax.evaluation import weighted_knn_accuracy
from prosampler_jax.normalize import l2_normalize


class DropoutMLP(nnx.Module):
  """Linear → LayerNorm → ReLU → Dropout → Linear; ``encode`` is the hidden layer."""

  def __init__(self, in_features: int, hidden: int, out_features: int, *, dropout: float, seed: int):
    rngs = nnx.Rngs(params=seed, dropout=seed)
    self.hidden = nnx.Linear(in_features, hidden, rngs=rngs)
    self.norm = nnx.LayerNorm(hidden, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.out = nnx.Linear(hidden, out_features, rngs=rngs)

  def encode(self, x: jax.Array) -> jax.Array:
    return nnx.relu(self.norm(self.hidden(x)))

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.out(self.dropout(self.encode(x)))


class DigitVectorsTask:
  """sklearn digits as standardised 64-d vectors; 1,437 training items, 360 test items."""

  def __init__(self, *, dropout: float = 0.2, hidden: int = 32, projection_dim: int = 16,
               temperature: float = 0.2, eval_batch_size: int = 256, seed: int = 0):
    digits = datasets.load_digits()
    x = digits.data.astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    order = np.random.default_rng(0).permutation(len(x))
    self._train, self._test = order[:1437], order[1437:]
    self._x, self._y = x, digits.target.astype(np.int32)
    self._dropout, self._hidden, self._seed = dropout, hidden, seed
    self._temperature, self._eval_batch_size = temperature, eval_batch_size
    self.num_examples = len(self._train)
    self.pretrain_labels = self._y[self._train]
    self.bank_dim = projection_dim
    self.pipeline_calls: list[tuple[int, int, tuple[int, ...]]] = []  # (window, start_batch, shape)

  def make_model(self) -> nnx.Module:
    return DropoutMLP(64, self._hidden, self.bank_dim, dropout=self._dropout, seed=self._seed)

  def pretrain_batches(self, batches: np.ndarray, *, window: int, start_batch: int) -> Iterator[dict]:
    self.pipeline_calls.append((window, start_batch, tuple(batches.shape)))
    local = batches.shape[1] // jax.process_count()
    columns = slice(jax.process_index() * local, (jax.process_index() + 1) * local)
    for row in batches[start_batch:]:
      index = row[columns].astype(np.int32)
      yield {"inputs": {"x": self._x[self._train[index]]}, "index": index}

  def forward(self, model: nnx.Module, inputs: dict) -> tuple[jax.Array, jax.Array]:
    return model(inputs["x"]), model(inputs["x"])  # two dropout masks: the only augmentation

  def loss_and_rows(self, outputs, *, axis_name):
    z1, z2 = outputs
    loss = losses.info_nce(z1, z2, temperature=self._temperature, axis_name=axis_name)
    return loss, l2_normalize(l2_normalize(z1) + l2_normalize(z2))

  def sampler_view(self, bank: np.ndarray) -> np.ndarray:
    return bank

  def _eval_batches(self, items: np.ndarray) -> Iterator[dict]:
    size = self._eval_batch_size
    local = size // jax.process_count()
    rows = slice(jax.process_index() * local, (jax.process_index() + 1) * local)
    for start in range(0, len(items), size):
      chunk = items[start:start + size]
      index = np.full(size, -1, np.int32)
      index[:len(chunk)] = np.arange(start, start + len(chunk))
      picked = items[np.maximum(index, 0)]
      yield {"inputs": self._x[picked][rows], "index": index[rows], "label": self._y[picked][rows]}

  def evaluate(self, encode, *, final: bool) -> dict[str, float]:
    del final
    train, test = encode(self._eval_batches(self._train)), encode(self._eval_batches(self._test))
    return {"knn_accuracy": weighted_knn_accuracy(train["features"], train["label"], test["features"],
                                                  test["label"], num_classes=10, k=20)}


def tiny_loop_config(**overrides):
  """A loop config for DigitVectorsTask: batch 64 (22 steps per epoch), windows of 8 steps."""
  from experiments.configs import simclr_digits  # pylint: disable=g-import-not-at-top
  config = simclr_digits.get_config()
  config.num_epochs = 2
  config.batch_size = 64
  config.eval_batch_size = 256
  config.loss.name = "info_nce"
  config.sampler.name = "proximity"
  config.sampler.num_neighbors = 10
  config.sampler.num_candidates = 50
  config.sampler.refresh_steps = 8
  config.sampler.lookahead_steps = 2
  config.optimizer.learning_rate = 3e-3
  config.log_every_steps = 1
  config.checkpoint_steps = 1000
  return with_overrides(config, **overrides)


def with_overrides(config, **overrides):
  """``config`` with dotted keys set: ``with_overrides(c, **{"sampler.name": "tail"})``."""
  for key, value in overrides.items():
    target = config
    *parents, leaf = key.split(".")
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config
