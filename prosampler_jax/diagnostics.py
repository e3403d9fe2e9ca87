"""How hard and how clean are the batches a sampler draws (DESIGN §3.5); trainers log this every refresh.

Hardness is the cosine similarity between members of a batch (the in-batch negatives of a contrastive
loss); with labels, the false-negative rate is the share of in-batch pairs that share a label.
``graph_stats`` tells how independent the rows of a proximity graph are.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from prosampler_jax import _checks
from prosampler_jax.normalize import l2_normalize

_CHUNK_ELEMENTS = 2**22  # batch-pair similarities per chunk (16 MiB of float32).


def batch_stats(batches, embeddings, labels=None) -> dict:
  """Mean/max in-batch negative cosine, coverage and (with labels) false-negative rate of ``batches``.

  Args:
    batches: int ``[num_batches, B]`` item indices in ``[0, N)``, B ≥ 2.
    embeddings: float ``[N, D]``; compared by cosine (rows are L2-normalised here). A ``jax.Array`` is
      normalised and gathered where it lives (nothing comes to the host but the statistics); NumPy goes to
      the default device.
    labels: optional ``[N]`` class labels (any hashable dtype NumPy can sort).

  Returns:
    A JSON-serialisable dict of Python floats/ints: ``mean_neg_cos`` (mean cosine over in-batch pairs
    i ≠ j, averaged over batches), ``max_neg_cos`` (per batch, the mean over anchors of the highest
    cosine to another member; averaged over batches), ``coverage`` (unique items / N), ``num_batches``,
    ``batch_size`` and, with labels, ``false_negative_rate`` (share of in-batch pairs i ≠ j with the same
    label, averaged over batches).
  """
  emb = _checks.check_embeddings("embeddings", embeddings, on_device=True)
  n = emb.shape[0]
  batches = np.asarray(batches)
  if batches.ndim != 2 or batches.shape[0] < 1 or batches.shape[1] < 2:
    raise ValueError(f"batches must have shape [num_batches >= 1, B >= 2], got {batches.shape}.")
  if not np.issubdtype(batches.dtype, np.integer):
    raise ValueError(f"batches must have an integer dtype, got {batches.dtype}.")
  if batches.min() < 0 or batches.max() >= n:
    raise ValueError(f"batches holds indices in [{batches.min()}, {batches.max()}]; "
                     f"allowed: [0, {n - 1}].")
  codes = None
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != (n,):
      raise ValueError(f"labels must have shape ({n},) to match embeddings, got {labels.shape}.")
    codes = jnp.asarray(np.unique(labels, return_inverse=True)[1].reshape(n).astype(np.int32))

  num_batches, b = batches.shape
  chunk = max(1, min(num_batches, _CHUNK_ELEMENTS // (b * b)))
  padded = -(-num_batches // chunk) * chunk
  index = np.zeros((padded, b), np.int32)
  index[:num_batches] = batches
  emb = l2_normalize(emb)
  parts = [_chunk_stats(emb, codes, jnp.asarray(index[s:s + chunk]))
           for s in range(0, padded, chunk)]
  per_batch = {k: np.concatenate([np.asarray(p[k]) for p in parts])[:num_batches] for k in parts[0]}

  stats = {
      "mean_neg_cos": float(per_batch["mean_cos"].mean()),
      "max_neg_cos": float(per_batch["max_cos"].mean()),
      "coverage": float(np.unique(batches).size / n),
      "num_batches": int(num_batches),
      "batch_size": int(b),
  }
  if codes is not None:
    stats["false_negative_rate"] = float(per_batch["same_label"].mean())
  return stats


def graph_stats(neighbors) -> dict:
  """How independent the rows of a proximity graph ``[N, K]`` are (the draws behind them, at M = K).

  Returns ``identical_row_pairs`` (pairs of rows with the same neighbour set; ≈ 0 for independent
  rows) and ``in_degree_variance_ratio`` (variance of the in-degrees over that of Binomial(N − 1,
  K / (N − 1)), the in-degree of independent uniform rows: 1 for them, more when rows share draws;
  NaN when K = N − 1).
  """
  neighbors = np.asarray(neighbors)
  if neighbors.ndim != 2 or neighbors.shape[0] < 2 or not 1 <= neighbors.shape[1] < neighbors.shape[0]:
    raise ValueError(f"neighbors must have shape [N >= 2, 1 <= K < N], got {neighbors.shape}.")
  n, k = neighbors.shape
  if not np.issubdtype(neighbors.dtype, np.integer) or neighbors.min() < 0 or neighbors.max() >= n:
    raise ValueError(f"neighbors must hold integer ids in [0, {n - 1}], got dtype {neighbors.dtype} "
                     f"and values in [{neighbors.min()}, {neighbors.max()}].")
  _, counts = np.unique(np.sort(neighbors, axis=1), axis=0, return_counts=True)
  p = k / (n - 1)
  in_degree = np.bincount(neighbors.ravel(), minlength=n)
  binomial_variance = (n - 1) * p * (1 - p)  # 0 when K = N − 1: every row is all other items
  return {"identical_row_pairs": int((counts * (counts - 1) // 2).sum()),
          "in_degree_variance_ratio": (float(in_degree.var() / binomial_variance) if binomial_variance
                                       else float("nan"))}


@jax.jit
def _chunk_stats(emb, codes, index):
  """Per-batch statistics for a chunk of batches ``index`` ``[c, B]``."""
  b = index.shape[1]
  z = emb[index]                                   # [c, B, D]
  sims = jnp.einsum("cid,cjd->cij", z, z, precision=lax.Precision.HIGHEST)  # [c, B, B]
  off = ~jnp.eye(b, dtype=bool)
  out = {
      "mean_cos": jnp.where(off, sims, 0.0).sum(axis=(1, 2)) / (b * (b - 1)),
      "max_cos": jnp.where(off, sims, -jnp.inf).max(axis=2).mean(axis=1),
  }
  if codes is not None:
    lab = codes[index]
    same = (lab[:, :, None] == lab[:, None, :]) & off
    out["same_label"] = same.sum(axis=(1, 2)) / (b * (b - 1))
  return out
