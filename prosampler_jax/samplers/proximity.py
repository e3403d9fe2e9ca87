"""ProSampler (BatchSampler, KDD'23): batches are random walks with restart on a proximity graph."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from prosampler_jax import _checks
from prosampler_jax import graph as graph_lib
from prosampler_jax import walk as walk_lib
from prosampler_jax.samplers import base

GRAPH_BACKENDS = graph_lib.BACKENDS


class ProximitySampler(base.BatchSampler):
  """Builds the proximity graph (M candidates → top K by cosine) and walks it with restart α per batch.

  ``num_candidates`` M tunes hardness: M = K gives a random graph (≈ uniform batches); M ≥ N − 1 gives
  the kNN graph (hardest negatives, most false negatives). ``restart_prob`` α keeps walks near the start.
  The reference decays α by 0.02 per epoch down to 0.05; here the schedule is off by default
  (``restart_decay=0``) and, when on, α_e = max(restart_prob − restart_decay · e, min_restart_prob).
  Start items are drawn without replacement from the items this epoch's earlier windows have not covered
  (one window's walks run at once, so a start may be an item another walk of the same window also
  collects; with one window per epoch the starts are simply distinct).
  ``candidate_draw`` (``graph.CANDIDATE_DRAWS``): "per_row" draws each row's candidates independently
  (the paper), "shared" lets groups of rows share a draw (faster, correlated rows; opt-in).

  A bank passed as a ``jax.Array`` stays on its device: it is checked, normalised, turned into the
  graph and walked there; only the ``[num_batches, B]`` index array comes back to the host.
  """

  bank_on_device = True

  def __init__(self, num_examples: int, batch_size: int, *, num_neighbors: int = 100,
               num_candidates: int | None = 1000, restart_prob: float = 0.2,
               graph_backend: str = "candidates", seed: int = 0, restart_decay: float = 0.0,
               min_restart_prob: float = 0.05, candidate_draw: str = "per_row"):
    super().__init__(num_examples, batch_size, seed=seed)
    self.num_neighbors = _checks.check_int("num_neighbors", num_neighbors, low=1,
                                           high=self.num_examples - 1)
    self.num_candidates = (None if num_candidates is None else
                           _checks.check_int("num_candidates", num_candidates, low=self.num_neighbors))
    self.restart_prob = _checks.check_probability("restart_prob", restart_prob)
    self.graph_backend = _checks.check_choice("graph_backend", graph_backend, GRAPH_BACKENDS)
    self.candidate_draw = _checks.check_choice("candidate_draw", candidate_draw,
                                               graph_lib.CANDIDATE_DRAWS)
    knn_only = self.graph_backend in ("exact", "nndescent")
    if knn_only and self.num_candidates is not None and self.num_candidates < self.num_examples - 1:
      raise ValueError(
          f"num_candidates={self.num_candidates} with graph_backend={self.graph_backend!r}: that backend "
          f"builds the kNN graph only; allowed: None or >= num_examples - 1 = {self.num_examples - 1} "
          "(or graph_backend='candidates' for M candidates).")
    self.restart_decay = _checks.check_float("restart_decay", restart_decay, low=0.0)
    if self.restart_decay > 0:
      self.min_restart_prob = _checks.check_float("min_restart_prob", min_restart_prob, low=0.0,
                                                  high=self.restart_prob)
    else:
      self.min_restart_prob = _checks.check_probability("min_restart_prob", min_restart_prob)

  def restart_prob_at(self, epoch: int) -> float:
    """The restart probability α used in ``epoch`` (constant unless ``restart_decay > 0``)."""
    epoch = _checks.check_int("epoch", epoch, low=0)
    if self.restart_decay <= 0:
      return self.restart_prob
    return max(self.restart_prob - self.restart_decay * epoch, self.min_restart_prob)

  def _params(self) -> dict[str, Any]:
    return {**super()._params(), "num_neighbors": self.num_neighbors,
            "num_candidates": self.num_candidates, "restart_prob": self.restart_prob,
            "graph_backend": self.graph_backend, "restart_decay": self.restart_decay,
            "min_restart_prob": self.min_restart_prob, "candidate_draw": self.candidate_draw}

  def proximity_graph(self, embeddings, epoch: int = 0, window: int = 0) -> jax.Array:
    """The int32 ``[N, K]`` graph window ``window`` of ``epoch`` walks on (on the bank's device), from
    checked ``[N, D]`` embeddings: a pure function of (seed, epoch, window, embeddings), for diagnostics
    (``diagnostics.graph_stats``)."""
    return graph_lib.proximity_graph(
        embeddings, num_neighbors=self.num_neighbors, num_candidates=self.num_candidates,
        backend=self.graph_backend, seed=self._graph_seed(epoch, window),
        candidate_draw=self.candidate_draw)

  def _sample(self, epoch: int, window: int, num_batches: int, embeddings) -> np.ndarray:
    # A local: the N × K graph is freed when the window's walks are done, not pinned between windows.
    graph = self.proximity_graph(embeddings, epoch, window)
    starts = self._start_items(epoch, window, num_batches)
    batches = walk_lib.random_walk_batches(
        graph, starts, batch_size=self.batch_size,
        restart_prob=self.restart_prob_at(epoch), key=self._key(epoch, window, base.SALT_WALK))
    return np.asarray(batches)
