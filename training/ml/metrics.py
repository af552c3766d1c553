"""Classification statistics from scores and ground truth, computed with scikit-learn (spec 000, Training 6-11).

Inputs are plain arrays: `scores` N x C probabilities, `targets` N x C 0/1 (single-label: one 1 per
row). Outputs are plain dicts of floats and lists, ready for JSON and templates.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

EPSILON = 1e-7


def one_hot(indices: list[list[int]], num_classes: int) -> np.ndarray:
    out = np.zeros((len(indices), num_classes), dtype=np.int8)
    for row, labels in enumerate(indices):
        out[row, labels] = 1
    return out


def single_label(scores: np.ndarray, targets: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, cross-entropy, confusion matrix (rows: truth, columns: prediction), per-class P/R/F1."""
    count = len(scores)
    classes = list(range(len(labels)))
    if count == 0:
        return {"count": 0, "accuracy": None, "loss": None, "confusion": [], "per_class": []}
    truth, predicted = targets.argmax(axis=1), scores.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    return {
        "count": count,
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "loss": float(skm.log_loss(truth, np.clip(scores, EPSILON, 1), labels=classes)),
        "confusion": skm.confusion_matrix(truth, predicted, labels=classes).tolist(),
        "per_class": [
            {"label": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        ],
    }


def optimal_thresholds(scores: np.ndarray, targets: np.ndarray) -> list[float]:
    """Per label, the score threshold with the highest F1 (0.5 where a label has no positives)."""
    out = []
    for column in range(scores.shape[1]):
        truth = targets[:, column]
        if truth.sum() == 0:
            out.append(0.5)
            continue
        precision, recall, thresholds = skm.precision_recall_curve(truth, scores[:, column])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], EPSILON)
        out.append(float(thresholds[int(np.argmax(f1))]))
    return out


def multi_label(scores: np.ndarray, targets: np.ndarray, labels: list[str], thresholds: list[float]) -> dict:
    """Image-wise and label-wise accuracy, binary cross-entropy, ROC AUC, and P/R/F1 per label at the thresholds."""
    count = len(scores)
    if count == 0:
        return {
            "count": 0,
            "image_accuracy": None,
            "label_accuracy": None,
            "loss": None,
            "roc_auc": None,
            "per_class": [],
        }
    predicted = (scores >= np.asarray(thresholds)[None, :]).astype(np.int8)
    right = predicted == targets
    clipped = np.clip(scores, EPSILON, 1 - EPSILON)
    loss = -(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped)).mean()
    per_class = []
    for column, name in enumerate(labels):
        truth, guess = targets[:, column], predicted[:, column]
        precision, recall, f1, _ = skm.precision_recall_fscore_support(truth, guess, average="binary", zero_division=0)
        per_class.append(
            {
                "label": name,
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "support": int(truth.sum()),
                "threshold": float(thresholds[column]),
                "roc_auc": _auc(truth, scores[:, column]),
                "accuracy": float(right[:, column].mean()),
            }
        )
    return {
        "count": count,
        "image_accuracy": float(right.all(axis=1).mean()),
        "label_accuracy": float(right.mean()),
        "loss": float(loss),
        "roc_auc": _auc(targets.ravel(), scores.ravel()),
        "per_class": per_class,
    }


def _auc(truth: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None where only one class is present (it is undefined there)."""
    if truth.min() == truth.max():
        return None
    return float(skm.roc_auc_score(truth, scores))


def pr_curve(truth: np.ndarray, scores: np.ndarray, max_points: int = 200) -> list[dict]:
    """Points of the precision-recall curve with the threshold at each, thinned to at most max_points."""
    if truth.sum() == 0:
        return []
    precision, recall, thresholds = skm.precision_recall_curve(truth, scores)
    points = [
        {"recall": float(r), "precision": float(p), "threshold": float(t)}
        for p, r, t in zip(precision[:-1], recall[:-1], thresholds, strict=True)
    ]
    if len(points) > max_points:
        keep = np.unique(np.linspace(0, len(points) - 1, max_points).round().astype(int))
        points = [points[i] for i in keep]
    return points
