"""How good a semantic segmentation is, from a confusion matrix over pixels: per-class IoU, mIoU and pixel accuracy.

Class 0 is background; class i + 1 is label i. Rows are the truth, columns the prediction. Pixels marked IGNORE in
the truth (padding) are not counted. mIoU is the mean over the classes that occur in the truth or the prediction,
background included, as Pascal VOC and torchvision's segmentation reference count it; `label_miou` leaves the
background out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE = 255
MAX_LABELS = IGNORE - 1  # label maps are bytes: 0 background, 1-254 the labels, 255 padding


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """classes x classes pixel counts (int64) of two label maps of one shape."""
    if truth.shape != predicted.shape:
        raise ValueError(f"The label maps differ in shape: {truth.shape} and {predicted.shape}.")
    keep = truth != IGNORE
    pairs = truth[keep].astype(np.int64) * classes + predicted[keep].astype(np.int64)
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def scores(matrix: np.ndarray, labels: Sequence[str]) -> dict:
    """Per class (background first) its IoU, or None where it is neither true nor predicted anywhere; the means;
    pixel accuracy; and the matrix itself."""
    matrix = np.asarray(matrix, dtype=np.int64)
    true_positive = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positive
    total = int(matrix.sum())
    iou = [float(tp / u) if u else None for tp, u in zip(true_positive, union, strict=True)]
    present = [value for value in iou if value is not None]
    foreground = [value for value in iou[1:] if value is not None]
    return {
        "pixels": total,
        "pixel_accuracy": float(true_positive.sum() / total) if total else None,
        "miou": float(np.mean(present)) if present else None,
        "label_miou": float(np.mean(foreground)) if foreground else None,
        "per_class": [
            {"label": name, "iou": value, "pixels": int(row_sum)}
            for name, value, row_sum in zip(["background", *labels], iou, matrix.sum(axis=1), strict=True)
        ],
        "confusion": matrix.tolist(),
    }
