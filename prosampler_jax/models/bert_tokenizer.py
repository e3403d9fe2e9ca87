"""The tokenizer of a BERT checkpoint directory: sentences → fixed-length int32 arrays, once per dataset.

Uses the Hugging Face ``tokenizers`` library: ``tokenizer.json`` when the directory has one, else a
WordPiece tokenizer built from ``vocab.txt`` (lower-cased unless ``tokenizer_config.json`` says
otherwise). The tokenizer's own padding is switched off (MiniLM's ``tokenizer.json`` pads to 128): every
sentence is cut to ``max_len`` tokens, [SEP] kept last, and padded with the pad id, with a 0/1 attention mask.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence

import numpy as np

from prosampler_jax import _checks
from prosampler_jax.models import bert as bert_lib


class SentenceTokenizer:
  """``tokenize(sentences) -> {"input_ids", "attention_mask"}`` int32 ``[n, max_len]``."""

  def __init__(self, directory: str, *, max_len: int):
    import tokenizers  # pylint: disable=g-import-not-at-top
    self.max_len = _checks.check_int("max_len", max_len, low=2)
    tokenizer_json = os.path.join(directory, "tokenizer.json")
    vocab = os.path.join(directory, "vocab.txt")
    if os.path.isfile(tokenizer_json):
      self._tokenizer = tokenizers.Tokenizer.from_file(tokenizer_json)
    elif os.path.isfile(vocab):
      lowercase = True
      config_path = os.path.join(directory, "tokenizer_config.json")
      if os.path.isfile(config_path):
        with open(config_path) as f:
          lowercase = bool(json.load(f).get("do_lower_case", True))
      self._tokenizer = tokenizers.BertWordPieceTokenizer(vocab, lowercase=lowercase)
    else:
      raise bert_lib.CheckpointNotFoundError(bert_lib.missing_checkpoint_message(
          directory, ["tokenizer.json (or vocab.txt)"]))
    self._tokenizer.no_padding()
    self._tokenizer.enable_truncation(self.max_len)
    self.pad_id = self._tokenizer.token_to_id("[PAD]") or 0

  def tokenize(self, sentences: Sequence[str]) -> dict[str, np.ndarray]:
    """Token ids and attention masks, int32 ``[len(sentences), max_len]``."""
    sentences = list(sentences)
    bad = [i for i, s in enumerate(sentences) if not isinstance(s, str)]
    if bad:
      raise ValueError(f"sentences must be strings; item {bad[0]} is {type(sentences[bad[0]]).__name__}.")
    ids = np.full((len(sentences), self.max_len), self.pad_id, np.int32)
    mask = np.zeros((len(sentences), self.max_len), np.int32)
    for row, encoding in enumerate(self._tokenizer.encode_batch(sentences)):
      tokens = encoding.ids[:self.max_len]
      ids[row, :len(tokens)] = tokens
      mask[row, :len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask}

  def decode(self, ids: np.ndarray) -> str:
    """The text of one row of token ids (pads and special tokens dropped)."""
    return self._tokenizer.decode([int(i) for i in ids if i != self.pad_id])


def length_sorted_batches(tokens: dict[str, np.ndarray], batch_size: int, *, width_step: int = 16
                          ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
  """Encoding batches of tokenised sentences: ``(rows, batch)`` in order of sentence length.

  ``batch`` holds the tokens of ``rows`` cut to their longest sentence (rounded up to ``width_step``,
  so a few shapes compile) and padded with empty rows to ``batch_size``: short sentences are not
  padded to ``max_len``, which makes encoding several times faster on STS.
  """
  batch_size = _checks.check_int("batch_size", batch_size, low=1)
  lengths = tokens["attention_mask"].sum(1)
  max_len = tokens["input_ids"].shape[1]
  order = np.argsort(lengths, kind="stable")
  for start in range(0, len(order), batch_size):
    rows = order[start:start + batch_size]
    width = min(-(-int(lengths[rows].max()) // width_step) * width_step, max_len)
    batch = {k: np.pad(v[rows, :width], ((0, batch_size - len(rows)), (0, 0))) for k, v in tokens.items()}
    yield rows, batch
