"""The test metrics of a network's logits: accuracy, balanced and per-class accuracy,
and the AUC of two classes."""

from __future__ import annotations

from typing import Any

import torch


def _metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    pred = logits.argmax(1)
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        per_class.append(float((pred[mask] == c).float().mean()) if mask.any() else float("nan"))
    present = [a for a in per_class if a == a]
    out = {"accuracy": float((pred == labels).float().mean()),
           "balanced_accuracy": sum(present) / len(present),
           "per_class_accuracy": per_class}
    if num_classes == 2:
        out["auc"] = binary_auc(logits.softmax(1)[:, 1], labels)
    return out


def binary_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    scores, labels = scores.double(), labels.bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    uniq, inverse = torch.unique(scores, return_inverse=True)
    avg = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, ranks)
    avg /= torch.bincount(inverse, minlength=len(uniq)).double()
    u = avg[inverse][labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
