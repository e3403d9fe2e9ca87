"""One epoch of each batch sampler on real digit images: how hard and how clean are the batches?

  python -m experiments.examples.sampler_demo --batch_size=64 --seed=0

Embeds sklearn's 1,797 8×8 digits with a fixed random projection of the centred pixels (64 → 32,
L2-normalised), draws one epoch with each sampler and prints ``batch_stats`` (false negatives = pairs of
the same digit) and the wall time of a first call (with JIT compilation) and of a second, warm one.
"""

from __future__ import annotations

import time

from absl import app
from absl import flags
import numpy as np
from sklearn import datasets

from prosampler_jax import diagnostics
from prosampler_jax import samplers
from prosampler_jax.normalize import l2_normalize

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size B.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the projection and of every sampler.")
_DIM = flags.DEFINE_integer("dim", 32, "Dimension of the random projection.")

COLUMNS = ("mean_neg_cos", "max_neg_cos", "false_negative_rate", "coverage", "first_call_s", "warm_s")


def embed_digits(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Unit-norm random projections of the centred digit pixels, and the digit labels."""
  digits = datasets.load_digits()
  pixels = digits.data.astype(np.float32)
  pixels -= pixels.mean(axis=0)
  projection = np.random.default_rng(seed).normal(size=(pixels.shape[1], dim)).astype(np.float32)
  z = pixels @ projection
  return l2_normalize(z), digits.target


def build_samplers(num_examples: int, batch_size: int, seed: int) -> dict[str, samplers.BatchSampler]:
  """The four samplers; ProSampler with M = 1000, K = 100 (clamped to N − 1 on small data)."""
  k = min(100, num_examples - 1)
  return {
      "uniform": samplers.UniformSampler(num_examples, batch_size, seed=seed),
      "proximity": samplers.ProximitySampler(num_examples, batch_size, num_neighbors=k,
                                             num_candidates=min(1000, num_examples - 1), seed=seed),
      "knn": samplers.KnnSampler(num_examples, batch_size, seed=seed),
      "tail": samplers.TailSampler(num_examples, batch_size, seed=seed),
  }


def main(argv):
  del argv
  z, labels = embed_digits(_DIM.value, _SEED.value)
  n = z.shape[0]
  print(f"digits: N={n}, D={z.shape[1]}, B={_BATCH_SIZE.value}, {n // _BATCH_SIZE.value} batches/epoch")
  print(f"{'sampler':>10}" + "".join(f"{c:>21}" for c in COLUMNS))
  for name, sampler in build_samplers(n, _BATCH_SIZE.value, _SEED.value).items():
    start = time.perf_counter()
    batches = sampler.sample(0, z)
    first = time.perf_counter() - start
    start = time.perf_counter()
    sampler.sample(1, z)
    warm = time.perf_counter() - start
    stats = diagnostics.batch_stats(batches, z, labels)
    row = {**stats, "first_call_s": first, "warm_s": warm}
    print(f"{name:>10}" + "".join(f"{row[c]:>21.4f}" for c in COLUMNS))


if __name__ == "__main__":
  app.run(main)
