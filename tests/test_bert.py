"""Tests for the NNX BERT encoder and its tokenizer against the real MiniLM-L6 checkpoint: a NumPy
forward of the same weights, Hugging Face naming variants, dropout, the STS-B correctness anchor."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file
from scipy import special

from prosampler_jax.models import bert, bert_tokenizer

SENTENCES = ["A girl is styling her hair.", "The cat sat on the mat, didn't it?",
             "Unbelievably, tokenisation splits rare words into word-pieces."]


def _numpy_forward(weights, config, ids, mask):
  """Hugging Face BERT, written out in float64 NumPy from the safetensors tensors."""
  w = {k: v.astype(np.float64) for k, v in weights.items()}
  dense = lambda x, name: x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

  def norm(x, name):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + config["layer_norm_eps"]) * w[f"{name}.weight"] + w[f"{name}.bias"]

  length = ids.shape[1]
  x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
       + w["embeddings.token_type_embeddings.weight"][0])
  x = norm(x, "embeddings.LayerNorm")
  heads = config["num_attention_heads"]
  head_dim = config["hidden_size"] // heads
  for i in range(config["num_hidden_layers"]):
    p = f"encoder.layer.{i}"
    split = lambda t: t.reshape(*t.shape[:2], heads, head_dim).transpose(0, 2, 1, 3)
    q, k, v = (split(dense(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + np.where(mask[:, None, None] > 0, 0, -1e9)
    probs = special.softmax(scores, axis=-1)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape)
    x = norm(x + dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
    hidden = dense(x, f"{p}.intermediate.dense")
    hidden = 0.5 * hidden * (1 + special.erf(hidden / np.sqrt(2)))
    x = norm(x + dense(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
  return x


def _encode(model, tokens):
  model.eval()
  return np.asarray(model.encode({k: jnp.asarray(v) for k, v in tokens.items()}))


@pytest.mark.parametrize("pooling", ["avg", "cls_before_pooler"])
def test_matches_a_numpy_forward_of_the_same_weights(minilm_dir, pooling):
  tokens = bert_tokenizer.SentenceTokenizer(minilm_dir, max_len=16).tokenize(SENTENCES)
  ours = _encode(bert.load_pretrained(minilm_dir, pooling=pooling), tokens)
  with open(os.path.join(minilm_dir, "config.json")) as f:
    config = json.load(f)
  states = _numpy_forward(load_file(os.path.join(minilm_dir, "model.safetensors")), config,
                          tokens["input_ids"], tokens["attention_mask"])
  mask = tokens["attention_mask"][..., None]
  expected = (states * mask).sum(1) / mask.sum(1) if pooling == "avg" else states[:, 0]
  np.testing.assert_allclose(ours, expected, atol=2e-4, rtol=1e-3)


def test_bert_base_naming_prefix_and_gamma_beta_load_the_same_weights(minilm_dir, tmp_path):
  """bert-base-uncased stores `bert.`-prefixed names, LayerNorm gamma/beta, and MLM heads (cls.*)."""
  weights = load_file(os.path.join(minilm_dir, "model.safetensors"))
  renamed = {}
  for name, value in weights.items():
    if "LayerNorm" in name:
      name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
    renamed["bert." + name] = value
  renamed["cls.predictions.bias"] = np.zeros(3, np.float32)
  save_file(renamed, str(tmp_path / "model.safetensors"))
  for name in ("config.json", "tokenizer.json"):
    shutil.copy(os.path.join(minilm_dir, name), tmp_path / name)
  tokens = bert_tokenizer.SentenceTokenizer(str(tmp_path), max_len=16).tokenize(SENTENCES)
  np.testing.assert_array_equal(_encode(bert.load_pretrained(str(tmp_path), pooling="avg"), tokens),
                                _encode(bert.load_pretrained(minilm_dir, pooling="avg"), tokens))


def _copy_checkpoint(minilm_dir, target):
  for name in ("config.json", "tokenizer.json", "model.safetensors"):
    shutil.copy(os.path.join(minilm_dir, name), target / name)
  return target / "model.safetensors"


@pytest.mark.parametrize("damage, match", [
    (lambda data: data[:len(data) // 2], r"is not a readable safetensors file \(.*file not fully covered"),
    (lambda data: data[:8] + b"[" + data[9:], r"is not a readable safetensors file \(.*header"),
    (lambda data: b"\x01", r"is not a readable safetensors file \(.*header too small"),
])
def test_a_truncated_or_garbled_safetensors_file_is_named(minilm_dir, tmp_path, damage, match):
  path = _copy_checkpoint(minilm_dir, tmp_path)
  path.write_bytes(damage(path.read_bytes()))
  with pytest.raises(ValueError, match=rf"{tmp_path}/model.safetensors {match}.*download it again"):
    bert.load_pretrained(str(tmp_path))


def test_non_finite_weights_are_refused_at_load_naming_the_tensor(minilm_dir, tmp_path):
  path = _copy_checkpoint(minilm_dir, tmp_path)
  weights = load_file(str(path))
  name = "encoder.layer.3.attention.self.query.weight"
  weights[name] = weights[name].copy()
  weights[name].reshape(-1)[[7, 9]] = [np.nan, np.inf]
  save_file(weights, str(path))
  with pytest.raises(ValueError, match=rf"tensor '{name}' has 2 non-finite value\(s\) \(first at flat index 7"):
    bert.load_pretrained(str(tmp_path))


def test_dropout_differs_per_call_in_training_and_mlp_only_train_pools_without_the_mlp(minilm_dir):
  tokens = {k: jnp.asarray(v) for k, v in
            bert_tokenizer.SentenceTokenizer(minilm_dir, max_len=16).tokenize(SENTENCES).items()}
  model = bert.load_pretrained(minilm_dir, pooling="cls", mlp_only_train=True)
  model.train()
  first, second = model(tokens), model(tokens)
  assert not np.allclose(first, second)  # dropout: SimCSE's only augmentation
  model.eval()
  np.testing.assert_array_equal(model(tokens), model(tokens))
  states = model.bert(tokens["input_ids"], tokens["attention_mask"])
  np.testing.assert_allclose(model.encode(tokens), states[:, 0], atol=1e-6)   # cls_before_pooler
  np.testing.assert_allclose(model(tokens), jnp.tanh(model.mlp(states[:, 0])), atol=1e-6)  # cls + MLP


def test_tokenizer_round_trip_truncation_and_vocab_txt(minilm_dir, tmp_path):
  tokenizer = bert_tokenizer.SentenceTokenizer(minilm_dir, max_len=12)
  tokens = tokenizer.tokenize(SENTENCES + [""])
  assert tokens["input_ids"].dtype == np.int32 and tokens["input_ids"].shape == (4, 12)
  assert tokenizer.decode(tokens["input_ids"][0]) == "a girl is styling her hair."
  lengths = tokens["attention_mask"].sum(1)
  assert lengths[2] == 12 and tokens["input_ids"][2, 11] == 102  # cut to max_len, [SEP] kept last
  assert lengths[3] == 2 and (tokens["input_ids"][3, 2:] == 0).all()  # [CLS] [SEP], then pads
  shutil.copy(os.path.join(minilm_dir, "vocab.txt"), tmp_path / "vocab.txt")  # no tokenizer.json
  vocab_only = bert_tokenizer.SentenceTokenizer(str(tmp_path), max_len=12).tokenize(SENTENCES + [""])
  np.testing.assert_array_equal(vocab_only["input_ids"], tokens["input_ids"])
  with pytest.raises(ValueError, match="sentences must be strings"):
    tokenizer.tokenize(["ok", None])


def test_a_missing_checkpoint_is_one_clear_error(tmp_path):
  with pytest.raises(bert.CheckpointNotFoundError, match="lacks the directory itself; expected config.json"):
    bert.load_pretrained(str(tmp_path / "nowhere"))
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(bert.CheckpointNotFoundError, match="lacks model.safetensors.*huggingface-cli"):
    bert.load_pretrained(str(tmp_path))
  with pytest.raises(bert.CheckpointNotFoundError, match=r"tokenizer.json \(or vocab.txt\)"):
    bert_tokenizer.SentenceTokenizer(str(tmp_path), max_len=8)


def test_bfloat16_compute_stays_close_to_float32(minilm_dir):
  tokens = {k: jnp.asarray(v) for k, v in
            bert_tokenizer.SentenceTokenizer(minilm_dir, max_len=16).tokenize(SENTENCES).items()}
  exact, fast = (bert.load_pretrained(minilm_dir, pooling="avg", dtype=d) for d in (jnp.float32,
                                                                                          jnp.bfloat16))
  exact.eval()
  fast.eval()
  assert fast.encode(tokens).dtype == jnp.bfloat16
  a, b = np.asarray(exact.encode(tokens)), np.asarray(fast.encode(tokens).astype(jnp.float32))
  cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  assert (cosine > 0.999).all(), cosine
