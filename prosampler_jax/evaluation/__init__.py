"""Frozen-feature evaluation of contrastive encoders: weighted kNN monitor and linear probe."""

from __future__ import annotations

from prosampler_jax.evaluation.knn import weighted_knn_accuracy
from prosampler_jax.evaluation.linear import linear_probe_accuracy

__all__ = ["linear_probe_accuracy", "weighted_knn_accuracy"]
