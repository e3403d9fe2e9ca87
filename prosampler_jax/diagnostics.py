"""How hard and how clean are the batches a sampler draws (DESIGN §3.5); trainers log this every refresh.

Hardness is the cosine similarity between members of a batch (the in-batch negatives of a contrastive
loss); with labels, the false-negative rate is the share of in-batch pairs that share a label. For paired
embeddings (x_i, y_i), ``loss_gap`` is Tail Batch Sampling's objective: how far the in-batch InfoNCE loss
falls short of the loss with every item a negative. ``graph_stats`` tells how independent the rows of a
proximity graph are.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from prosampler_jax import _checks
from prosampler_jax import losses
from prosampler_jax.normalize import l2_normalize

_CHUNK_ELEMENTS = 2**22  # batch-pair similarities per chunk (16 MiB of float32).
_GLOBAL_ROWS = 1024      # anchors per strip of the global term
_GLOBAL_COLUMNS = 16384  # candidates per block of a strip: a strip holds 64 MiB of float32 scores
# The trainer's per-refresh budget for the global term: anchors × N ≤ this many scores (67M; about
# 0.2 s on two CPU cores at D = 128, milliseconds on a GPU). Beyond it, a fixed random subset of anchors.
REFRESH_GAP_SCORES = 2**26


def gap_anchors(num_examples: int, num_slots: int, scores: int | None = None) -> int | None:
  """How many anchors ``loss_gap`` may score against all ``num_examples`` items within ``scores``
  similarities (default ``REFRESH_GAP_SCORES``): ``None`` (every one of the ``num_slots`` anchors, exact)
  when they fit, else ``max(1, scores // num_examples)``."""
  anchors = max(1, (REFRESH_GAP_SCORES if scores is None else scores) // num_examples)
  return None if anchors >= num_slots else anchors


def batch_stats(batches, embeddings, labels=None, *, pairs=None, temperature: float | None = None,
                false_negative_margin: float | None = None, loss_gap_anchors: int | None = None,
                seed: int = 0) -> dict:
  """Mean/max in-batch negative cosine, coverage and (with labels) false-negative rate of ``batches``;
  with ``pairs``, the loss gap and the share of negatives a margin would drop.

  Args:
    batches: int ``[num_batches, B]`` item indices in ``[0, N)``, B ≥ 2.
    embeddings: float ``[N, D]``; compared by cosine (rows are L2-normalised here). A ``jax.Array`` is
      normalised and gathered where it lives (nothing comes to the host but the statistics); NumPy goes to
      the default device.
    labels: optional ``[N]`` class labels (any hashable dtype NumPy can sort).
    pairs: optional ``(x, y)``, each ``[N, D']``: the two sides of each item's positive pair (for a
      two-view bank, its halves). With ``temperature``: adds ``loss_gap``'s figures; with
      ``false_negative_margin``: adds ``margin_dropped_rate``.
    temperature: the loss's temperature t (required for the loss gap).
    false_negative_margin: m of the losses' relative-margin rule (``losses.beyond_margin``).
    loss_gap_anchors, seed: passed to ``loss_gap`` (None: exact).

  Returns:
    A JSON-serialisable dict of Python floats/ints: ``mean_neg_cos`` (mean cosine over in-batch pairs
    i ≠ j, averaged over batches), ``max_neg_cos`` (per batch, the mean over anchors of the highest
    cosine to another member; averaged over batches), ``coverage`` (unique items / N), ``num_batches``,
    ``batch_size``; with labels, ``false_negative_rate`` (share of in-batch pairs i ≠ j with the same
    label, averaged over batches); with pairs and a temperature, ``loss_gap``, ``global_loss``,
    ``train_loss`` and ``loss_gap_anchors``; with pairs and a margin, ``margin_dropped_rate`` (share of
    the in-batch cross-view negatives (x_i, y_j), j ≠ i, both directions, that
    cos > m · cos(x_i, y_i) drops, averaged over batches).
  """
  emb = _checks.check_embeddings("embeddings", embeddings, on_device=True)
  n = emb.shape[0]
  batches = _checks.check_indices("batches", batches, n, layout="[num_batches >= 1, B >= 2]",
                                   min_shape=(1, 2))
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
  if pairs is None:
    if temperature is not None or false_negative_margin is not None:
      raise ValueError("temperature and false_negative_margin need pairs=(x, y); allowed: pass the two "
                       "sides of each item's pair, or leave both None.")
    return stats
  x, y = _check_pairs(pairs, n)
  if false_negative_margin is not None:
    margin = _checks.check_float("false_negative_margin", false_negative_margin, low=0.0, low_open=True)
    dropped = [_margin_dropped(x, y, jnp.asarray(index[s:s + chunk]), margin)
               for s in range(0, padded, chunk)]
    stats["margin_dropped_rate"] = float(np.concatenate([np.asarray(d) for d in dropped])
                                         [:num_batches].mean())
  if temperature is not None:
    stats.update(loss_gap(batches, x, y, temperature=temperature, num_anchors=loss_gap_anchors,
                          seed=seed))
  return stats


def loss_gap(batches, x, y, *, temperature: float, num_anchors: int | None = None, seed: int = 0
             ) -> dict:
  """Tail Batch Sampling's objective: L^Global − L^Train for paired embeddings (x_i, y_i).

  For an anchor x_i in a batch, L^Train = −log(e^{s(x_i, y_i)} / Σ_{j in the batch} e^{s(x_i, y_j)}) and
  L^Global the same with j over all N items, s(a, b) = cos(a, b) / t; the symmetric term with anchor y_i
  against the x's is added (the two-way InfoNCE of paired training), and both are averaged over every
  (batch, member) slot of ``batches``: an item in two batches counts twice, with each batch's train
  loss. The gap is ≥ 0 and 0 for a batch holding every item; hard batches (similar members) make it small.
  For a two-view bank, x and y are its two halves (each item's two views).

  Computed on the device ``x`` lives on (NumPy: the default device) in strips of 1,024 anchors × blocks
  of 16,384 candidates, so memory is the two arrays plus 64 MiB: N = 1M at D = 256 needs about 2 GiB.
  The global term costs 4·A·N·D flops for A anchors; ``num_anchors`` estimates it on a fixed random
  subset of that many slots (drawn from ``seed``; the same slots for the same batch shape), unbiased
  for the mean over slots. ``gap_anchors`` gives the trainer's budget.

  Returns:
    ``loss_gap``, ``global_loss``, ``train_loss`` (means over the scored slots, both directions; Python
    floats) and ``loss_gap_anchors`` (how many slots were scored: every slot when exact).
  """
  temperature = _checks.check_float("temperature", temperature, low=0.0, low_open=True)
  x, y = _check_pairs((x, y), None)
  n = x.shape[0]
  batches = _checks.check_indices("batches", batches, n, layout="[num_batches >= 1, B >= 2]",
                                   min_shape=(1, 2))
  num_batches, b = batches.shape
  slots = num_batches * b
  if num_anchors is not None:
    num_anchors = _checks.check_int("num_anchors", num_anchors, low=1)
  chosen = np.arange(slots)
  if num_anchors is not None and num_anchors < slots:
    chosen = np.sort(np.random.default_rng(seed).choice(slots, num_anchors, replace=False))
  x, y = l2_normalize(x), l2_normalize(y)
  inverse_t = 1.0 / temperature

  # The train term and positives of every slot (cheap: B² per batch), per chunk of batches.
  chunk = max(1, min(num_batches, _CHUNK_ELEMENTS // (b * b)))
  padded = -(-num_batches // chunk) * chunk
  index = np.zeros((padded, b), np.int32)
  index[:num_batches] = batches
  train = np.concatenate([np.asarray(_train_terms(x, y, jnp.asarray(index[s:s + chunk]), inverse_t))
                          for s in range(0, padded, chunk)])[:num_batches].reshape(slots, 2)
  # The global term per distinct chosen item, both directions, in strips against every item.
  items, slot_item = np.unique(batches.reshape(-1)[chosen], return_inverse=True)
  global_terms = _global_terms(x, y, items, inverse_t)[slot_item]  # [chosen, 2]
  train = train[chosen]
  return {"loss_gap": float((global_terms - train).mean()), "global_loss": float(global_terms.mean()),
          "train_loss": float(train.mean()), "loss_gap_anchors": int(chosen.size)}


def in_batch_accuracy(x: jax.Array, y: jax.Array) -> jax.Array:
  """Top-1 in-batch retrieval: the share of items i whose own y_i is the most similar of the batch's y's
  to x_i (dot products; rows as given). The training loop logs it every step: a per-step hardness
  signal, falling as batches get harder. Traceable (runs inside the jitted step)."""
  logits = jnp.matmul(x, y.T, precision=lax.Precision.HIGHEST)
  return jnp.mean(jnp.argmax(logits, axis=1) == jnp.arange(x.shape[0]))


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


def _check_pairs(pairs, n: int | None) -> tuple[jax.Array, jax.Array]:
  """Two float ``[N, D']`` arrays of one shape (N = ``n`` when given), on a device."""
  if not isinstance(pairs, (tuple, list)) or len(pairs) != 2:
    raise ValueError(f"pairs must be a pair (x, y) of [N, D] arrays, got {type(pairs).__name__}.")
  x = _checks.check_embeddings("pairs[0]" if n else "x", pairs[0], num_examples=n, on_device=True)
  y = _checks.check_embeddings("pairs[1]" if n else "y", pairs[1], num_examples=n, on_device=True)
  if x.shape != y.shape:
    raise ValueError(f"the pair's sides have shapes {x.shape} and {y.shape}; allowed: one shape.")
  return x, y


@jax.jit
def _train_terms(x, y, index, inverse_t):
  """Per slot of a chunk of batches ``[c, B]``: the in-batch InfoNCE loss, x→y and y→x, ``[c, B, 2]``."""
  logits = jnp.einsum("cid,cjd->cij", x[index], y[index], precision=lax.Precision.HIGHEST) * inverse_t
  positive = jnp.diagonal(logits, axis1=1, axis2=2)
  forward = jax.nn.logsumexp(logits, axis=2) - positive
  backward = jax.nn.logsumexp(logits, axis=1) - positive
  return jnp.stack([forward, backward], axis=-1)


@jax.jit
def _margin_dropped(x, y, index, margin):
  """Per batch: the share of cross-view negatives (x_i, y_j) and (y_i, x_j), j ≠ i, that the margin drops."""
  x, y = l2_normalize(x[index]), l2_normalize(y[index])
  cosines = jnp.einsum("cid,cjd->cij", x, y, precision=lax.Precision.HIGHEST)
  b = index.shape[1]
  positive = jnp.diagonal(cosines, axis1=1, axis2=2)
  off = ~jnp.eye(b, dtype=bool)
  forward = losses.beyond_margin(cosines, positive[:, :, None], margin) & off
  backward = losses.beyond_margin(jnp.swapaxes(cosines, 1, 2), positive[:, :, None], margin) & off
  return (forward.sum(axis=(1, 2)) + backward.sum(axis=(1, 2))) / (2 * b * (b - 1))


def _global_terms(x, y, items: np.ndarray, inverse_t: float) -> np.ndarray:
  """``[len(items), 2]``: each item's InfoNCE loss against all N items, x→y and y→x (host float64)."""
  columns = min(_GLOBAL_COLUMNS, x.shape[0])
  # A strip size fixed by N, not by how many distinct items this call has (which changes every window):
  # one compiled kernel per bank, not one per window.
  rows = min(_GLOBAL_ROWS, x.shape[0])
  out = []
  for start in range(0, len(items), rows):
    strip = np.zeros(rows, np.int32)
    part = items[start:start + rows]
    strip[:len(part)] = part
    terms = _global_strip(x, y, jnp.asarray(strip), inverse_t, columns=columns)
    out.append(np.asarray(terms, np.float64)[:len(part)])
  return np.concatenate(out)


@functools.partial(jax.jit, static_argnames="columns")
def _global_strip(x, y, strip, inverse_t, *, columns: int):
  """One strip of anchors against every item, block by block with a running logsumexp: ``[rows, 2]``.

  Blocks are slices of x and y where they lie (no padded copy of the N rows); the last one is moved back
  to end at N, and the columns an earlier block already counted are masked out.
  """
  n = x.shape[0]
  anchors = jnp.stack([x[strip], y[strip]])                    # [2, rows, D]: x→y, y→x
  positive = jnp.sum(anchors[0] * anchors[1], axis=-1) * inverse_t

  def merge(carry, block):
    top, total = carry
    start = jnp.minimum(block * columns, n - columns)
    candidates = jnp.stack([lax.dynamic_slice_in_dim(y, start, columns),  # y's for the x anchors,
                            lax.dynamic_slice_in_dim(x, start, columns)])  # x's for the y's
    logits = jnp.einsum("vrd,vcd->vrc", anchors, candidates, precision=lax.Precision.HIGHEST) * inverse_t
    new_columns = start + jnp.arange(columns) >= block * columns
    logits = jnp.where(new_columns[None, None, :], logits, -jnp.inf)
    new_top = jnp.maximum(top, logits.max(axis=-1))
    total = total * jnp.exp(top - new_top) + jnp.exp(logits - new_top[..., None]).sum(axis=-1)
    return (new_top, total), None

  start = (jnp.full(anchors.shape[:2], -jnp.inf), jnp.zeros(anchors.shape[:2]))
  (top, total), _ = lax.scan(merge, start, jnp.arange(-(-n // columns)))
  return (top + jnp.log(total) - positive).T


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
