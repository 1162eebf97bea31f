"""GLUE's metrics on a dev split's predictions, and the GLUE score over tasks.

Computed from the whole split's predictions at once (torchmetrics' functional forms), since
Matthews and rank correlations do not average over batches. Figures are fractions (an
accuracy of 0.85, a correlation of 0.62), as metrics.json keeps every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torchmetrics.functional import (
    accuracy,
    f1_score,
    matthews_corrcoef,
    pearson_corrcoef,
    spearman_corrcoef,
)


def metric(name: str, predictions: torch.Tensor, labels: torch.Tensor, n_classes: int) -> float:
    """One of GLUE's metrics: ``predictions`` are class ids (or scores for the
    correlations), ``labels`` the gold ones."""
    if name in ("pearson", "spearman"):
        corr = pearson_corrcoef if name == "pearson" else spearman_corrcoef
        value = corr(predictions.double(), labels.double())
    elif name == "mcc":
        value = matthews_corrcoef(predictions, labels, task="multiclass", num_classes=n_classes)
    elif name == "f1":  # of the positive class (1: paraphrase, duplicate), as GLUE reports it
        value = f1_score(predictions, labels, task="binary")
    elif name == "acc":
        value = accuracy(predictions, labels, task="multiclass", num_classes=n_classes)
    else:
        raise ValueError(f"unknown metric {name!r}")
    return float(value)


def glue_score(figures: Mapping[str, Mapping[str, float]]) -> float:
    """The mean over tasks of each task's figure, where a task with two figures (MRPC and
    QQP: F1 and accuracy; STS-B: Pearson and Spearman) counts their mean, as GLUE's
    leaderboard does. ``figures``: task -> its main figures (those of ``GlueTask.metrics``)."""
    if not figures:
        return math.nan
    per_task = [sum(values.values()) / len(values) for values in figures.values()]
    return sum(per_task) / len(per_task)


__all__ = ["glue_score", "metric"]
