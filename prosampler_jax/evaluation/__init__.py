"""Frozen-feature evaluation of contrastive encoders: weighted kNN monitor, linear probe (images), STS
Spearman (text, ``sts.py``) and GraphCL's SVM protocol (graphs)."""

from __future__ import annotations

from prosampler_jax.evaluation.knn import weighted_knn_accuracy
from prosampler_jax.evaluation.linear import linear_probe_accuracy
from prosampler_jax.evaluation.svm import svm_accuracy

__all__ = ["linear_probe_accuracy", "svm_accuracy", "weighted_knn_accuracy"]
