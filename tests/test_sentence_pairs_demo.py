"""The offline demonstration's tools: shared-sentence labels, MiniLM pair embeddings, and the claims
script over ``plan compare`` (in a real subprocess, on small clustered pairs)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from experiments.examples import embed_sentence_pairs
from experiments.examples import sampler_claims
from prosampler_jax import samplers


def test_items_connected_through_a_shared_sentence_share_a_label():
  first = ["a", "c", "b", "f", "e", "h"]
  second = ["b", "d", "e", "g", "c", "a"]
  labels = embed_sentence_pairs.shared_sentence_groups(first, second)
  # 0–2 share "b", 2–4 share "e", 4–1 share "c", 5–0 share "a": one group; item 3 stands alone.
  assert len(set(labels[[0, 1, 2, 4, 5]])) == 1 and labels[3] != labels[0]
  assert labels.dtype == np.int32 and sorted(set(labels)) == [0, 1]


def test_minilm_pair_embeddings_are_unit_rows_that_rank_paraphrases_first(minilm_dir):
  del minilm_dir
  x = embed_sentence_pairs.embed(["A man is playing a guitar.", "A man plays the guitar.",
                                  "The stock market fell sharply today."], max_len=32, batch_size=2)
  assert x.shape == (3, 384) and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
  assert x[0] @ x[1] > 0.8 > 0.2 > x[0] @ x[2]


def test_rises_needs_a_positive_trend_and_a_last_point_above_the_first():
  assert sampler_claims.rises([1, 2, 3, 4], [0.1, 0.05, 0.2, 0.3])
  assert not sampler_claims.rises([1, 2, 3, 4], [0.3, 0.2, 0.1, 0.0])
  assert not sampler_claims.rises([1, 2, 3], [0.2, 0.5, 0.1])


@pytest.mark.slow
def test_the_claims_script_checks_each_claim_on_clustered_pairs(tmp_path):
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(8, 8))
  labels = np.arange(320) % 8
  x = centres[labels] + 0.5 * rng.normal(size=(320, 8))
  np.save(tmp_path / "x.npy", x.astype(np.float32))
  np.save(tmp_path / "y.npy", (x + 0.2 * rng.normal(size=x.shape)).astype(np.float32))
  np.save(tmp_path / "labels.npy", labels)
  run = subprocess.run([sys.executable, "-m", "experiments.examples.sampler_claims",
                        f"--pairs_dir={tmp_path}", "--batch_size=16", "--epochs=1",
                        "--candidates=100,200,319", "--restart_probs=0.1,0.7"],
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-2000:]
  claims = json.loads((tmp_path / "claims" / "claims.json").read_text())
  every = claims["every"]
  assert set(every) == set(samplers.SAMPLERS)  # every sampler, with its defaults
  # Each verdict is what the figures say (recomputed here from the rows the script wrote).
  fn = {s: every[s]["false_negative_rate"] for s in every}
  assert claims["false_negative_order"] == sorted(fn, key=lambda s: -fn[s])
  assert claims["knn_highest_false_negative_rate"] == (claims["false_negative_order"][0] == "knn")
  hardness = [claims["by_M"][m]["mean_neg_cos"] for m in ("100", "200", "319")]
  trend = stats.spearmanr([100, 200, 319], hardness)[0]
  assert claims["rises_with_M"]["mean_neg_cos"] == bool(trend > 0 and hardness[-1] > hardness[0])
  assert claims["rises_with_M"]["mean_neg_cos"]  # more candidates, nearer neighbours
  assert list(claims["by_M"]) == ["100", "200", "319"] and list(claims["by_alpha"]) == ["0.1", "0.7"]
  covering = {"uniform", "fixed", "tail", "partition", "cluster"}
  assert set(claims["loss_gap_order_among_covering"]) == covering
  # Random batches have the largest gap (fixed ones are uniform's first epoch: the same gap here).
  assert set(claims["loss_gap_order_among_covering"][-2:]) == {"uniform", "fixed"}
  assert claims["tail_smallest_gap_among_covering"] == (
      min(sorted(covering), key=lambda s: every[s]["loss_gap"]) == "tail")
  assert "## ProSampler along M" in run.stdout
