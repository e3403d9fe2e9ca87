"""SimCSE on text (Gao et al. 2021): a BERT-family encoder, dropout as the augmentation, InfoNCE.

- Unsupervised (``dataset`` ``wiki1m`` or the offline ``stsb_train``): each sentence goes through the
  encoder twice; the two dropout masks make the positive pair.
- Supervised (``dataset`` ``nli``): (anchor, entailment, contradiction) triplets; the contradictions are
  hard negatives that every anchor of the global batch sees.

The bank row of an item is normalise(concat(normalise(z_anchor), normalise(z_positive))), ``2·H`` wide.
ProSampler, kNN and uniform see the whole row; Tail Batch Sampling sees the pair (x, y) = (anchor half,
positive half), the paired similarity it was designed for. Evaluation: STS-B dev Spearman every call (the
monitor SimCSE selects checkpoints with), and at the end STS-B test plus, when ``config.eval.sts_dir``
holds them, STS12–16 and SICK-R and the 7-task average (``evaluation/sts.py``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from prosampler_jax import _checks
from prosampler_jax import losses
from prosampler_jax.evaluation import sts
from prosampler_jax.models import bert as bert_lib
from prosampler_jax.models import bert_tokenizer
from prosampler_jax.normalize import pair_rows
from prosampler_jax.tasks._pairs import bank_halves, exclusion_labels

LOSSES = ("info_nce",)
SELECTION_METRIC = "stsb_dev"  # SimCSE keeps the checkpoint with the best STS-B dev Spearman


class SimCSETask:
  """Text for contrastive pre-training and STS evaluation; inputs ``{"anchor"[, "positive",
  "negative"]: {"input_ids", "attention_mask"}}``."""

  def __init__(self, config: ml_collections.ConfigDict):
    from prosampler_jax.data import text  # pylint: disable=g-import-not-at-top  (no TensorFlow: rows.py)
    _checks.check_choice("config.dataset", config.dataset, text.TEXT_DATASETS)
    self._loss = losses.bind(config.loss.name, config.loss, allowed=LOSSES)
    exclusion_labels(config, None)  # sentences carry no class labels: asking to exclude them fails here
    _checks.check_choice("config.model.pooling", config.model.pooling, bert_lib.POOLINGS)
    _checks.check_int("config.model.max_len", config.model.max_len, low=2)
    _checks.check_int("config.eval.max_len", config.eval.max_len, low=2)
    _checks.check_probability("config.model.dropout", config.model.dropout)
    self._checkpoint = config.model.checkpoint or bert_lib.minilm_checkpoint_dir()
    try:
      bert_lib.check_checkpoint_dir(self._checkpoint)
    except bert_lib.CheckpointNotFoundError as error:
      raise bert_lib.CheckpointNotFoundError(f"config.model.checkpoint: {error}") from None
    if config.eval.sts_dir and not os.path.isdir(config.eval.sts_dir):
      raise sts.STSDataNotFoundError(f"config.eval.sts_dir={config.eval.sts_dir!r} is not a directory; "
                                     "allowed: '' (STS-B only) or a folder with semeval-sts/ and "
                                     "sick2014/.")
    self._config, self._text = config, text
    self._tokenizer = bert_tokenizer.SentenceTokenizer(self._checkpoint, max_len=config.model.max_len)
    self._eval_tokenizer = bert_tokenizer.SentenceTokenizer(self._checkpoint,
                                                            max_len=config.eval.max_len)
    hidden = bert_lib.BertConfig.from_json(os.path.join(self._checkpoint, "config.json")).hidden_size
    self.bank_dim = 2 * hidden

    sentences = text.load_text(config.dataset, config.data_dir or None)
    limit = _checks.check_int("config.max_examples", config.max_examples, low=0)
    if limit:
      sentences = {part: column[:limit] for part, column in sentences.items()}
    self.supervised = "negative" in sentences
    self.selection_metric = SELECTION_METRIC
    self._arrays = {f"{part}/{key}": value for part, column in sentences.items()
                    for key, value in self._tokenizer.tokenize(column).items()}
    self.num_examples = len(sentences["anchor"])
    self.pretrain_labels = None
    self._stsb_dev = sts.read_stsb(config.data_dir or None, "dev")
    self._final_tasks = sts.load_tasks(config.eval.sts_dir, sts.TASKS) if config.eval.sts_dir else (
        sts.load_tasks(config.data_dir or None, ["stsb"]))

  # -- data ------------------------------------------------------------------------------------------

  def pretrain_batches(self, batches: np.ndarray, *, window: int, start_batch: int
                       ) -> Iterator[dict[str, Any]]:
    del window  # text inputs have no randomness: dropout (seeded per step by the loop) is the augmentation
    elements = self._text.rows(self._arrays, batches, loader=self._config.data.loader,
                               process_index=jax.process_index(), process_count=jax.process_count(),
                               start_batch=start_batch)

    def nest(element):
      inputs: dict[str, dict[str, np.ndarray]] = {}
      for name, value in element.items():
        if name != "index":
          part, key = name.split("/")
          inputs.setdefault(part, {})[key] = value
      return {"inputs": inputs, "index": element["index"]}

    return (nest(e) for e in elements)

  # -- model and loss --------------------------------------------------------------------------------

  def make_model(self) -> nnx.Module:
    config = self._config
    return bert_lib.load_pretrained(self._checkpoint, pooling=config.model.pooling,
                                    mlp_only_train=config.model.mlp_only_train,
                                    dropout=config.model.dropout, dtype=jnp.dtype(config.model.dtype),
                                    seed=config.seed)

  def forward(self, model: nnx.Module, inputs: dict[str, dict[str, jax.Array]]):
    """(z_anchor, z_positive, z_negative or None): two dropout passes, or the triplet's three."""
    anchor = model(inputs["anchor"])
    if not self.supervised:
      return anchor, model(inputs["anchor"]), None
    return anchor, model(inputs["positive"]), model(inputs["negative"])

  def loss_and_rows(self, outputs, *, axis_name: str | None) -> tuple[jax.Array, jax.Array]:
    z1, z2, negatives = outputs
    return self._loss(z1, z2, negatives=negatives, axis_name=axis_name), pair_rows(z1, z2)

  def sampler_view(self, bank: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The bank's layout for samplers that read pairs: (first views, second views)."""
    return bank_halves(bank)

  def bank_pair(self, bank: jax.Array) -> tuple[jax.Array, jax.Array]:
    return bank_halves(bank)

  def data_fingerprint(self) -> dict[str, str]:
    """A SHA-1 of the token ids (sentences have no labels to hash; run_config.data_fingerprint)."""
    digest = hashlib.sha1()
    for key in sorted(self._arrays):
      digest.update(key.encode() + np.ascontiguousarray(self._arrays[key]).tobytes())
    return {"tokens_sha1": digest.hexdigest()}

  # -- evaluation ------------------------------------------------------------------------------------

  def _embedder(self, encode: Callable[..., dict[str, np.ndarray]]) -> Callable[[list[str]], np.ndarray]:
    """Sentences → features, through the loop's ``encode`` (length-sorted, width-bucketed batches)."""
    batch_size = self._config.eval_batch_size
    local = batch_size // jax.process_count()
    rows = slice(jax.process_index() * local, (jax.process_index() + 1) * local)

    def embed(sentences: list[str]) -> np.ndarray:
      tokens = self._eval_tokenizer.tokenize(sentences)

      def batches():
        for chosen, inputs in bert_tokenizer.length_sorted_batches(tokens, batch_size):
          index = np.full(batch_size, -1, np.int32)
          index[:len(chosen)] = chosen
          yield {"inputs": {k: v[rows] for k, v in inputs.items()}, "index": index[rows]}

      out = encode(batches())
      if not np.array_equal(out["index"], np.arange(len(sentences))):
        raise AssertionError("encode lost or reordered sentences")
      return out["features"]

    return embed

  def evaluate(self, encode: Callable[..., dict[str, np.ndarray]], *, final: bool) -> dict[str, float]:
    """STS-B dev Spearman × 100 (every call); at the end also the test tasks and their average."""
    embed = self._embedder(encode)
    metrics = {"stsb_dev": sts.evaluate(embed, {"stsb_dev": self._stsb_dev})["stsb_dev"]}
    if final:
      metrics.update(sts.evaluate(embed, self._final_tasks))
    return metrics
