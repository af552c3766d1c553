"""How good boxes and instance masks are: COCO's mAP from pycocotools itself, and matching, precision, recall, F1
and precision-recall curves per label that follow COCOeval's own matching rule.

Truth per image: rows of x, y, w, h, label index. Predictions per image: rows of x, y, w, h, label index, score.
Instance masks, when given, travel beside the rows as COCO RLEs (one per row, in order), and IoU is then the
masks' (COCOeval's `iouType="segm"`) instead of the boxes'. COCOeval matches, for each image and label,
predictions in descending score to the unmatched truth of highest IoU at or above the threshold (`evaluateImg`);
`match` does the same at one IoU threshold, so a precision read off our curves is the one COCOeval would count
there.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

CURVE_POINTS = 200

Masks = tuple[Sequence[Sequence[dict]], Sequence[Sequence[dict]]]  # per image: truth RLEs, predicted RLEs


def coco_map(
    truth: Sequence[Sequence], predictions: Sequence[np.ndarray], labels: int, masks: Masks | None = None
) -> dict:
    """{"map": mAP@[.5:.95], "map50": mAP@0.5} from COCOeval (stats[0] and stats[1]): of the boxes, or of the masks
    when they are given; None without any truth."""
    from pycocotools import mask as coco_mask
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth_masks, predicted_masks = masks if masks is not None else (None, None)
    images = [{"id": i + 1} for i in range(len(truth))]
    if masks is not None:  # COCO reads an image's size for its masks from the image
        for image, *found in zip(images, truth_masks, predicted_masks, strict=True):
            sizes = [rle["size"] for rles in found for rle in rles[:1]]
            image["height"], image["width"] = sizes[0] if sizes else (0, 0)
    annotations = []
    for i, rows in enumerate(truth):
        for k, row in enumerate(rows):
            annotation = {
                "id": len(images) + len(annotations),
                "image_id": i + 1,
                "category_id": int(row[4]) + 1,
                "bbox": [float(v) for v in row[:4]],
                "area": float(row[2]) * float(row[3]),
                "iscrowd": 0,
            }
            if truth_masks is not None:
                rle = truth_masks[i][k]
                annotation.update(segmentation=rle, area=float(coco_mask.area(rle)))
            annotations.append(annotation)
    if not annotations:
        return {"map": None, "map50": None}
    detections = []
    for i, rows in enumerate(predictions):
        for k, row in enumerate(rows):
            found = {"image_id": i + 1, "category_id": int(row[4]) + 1, "score": float(row[5])}
            if predicted_masks is None:
                found["bbox"] = [float(v) for v in row[:4]]
            else:  # no box: loadRes then takes the mask's own area and box, as for any segmentation result
                found["segmentation"] = predicted_masks[i][k]
            detections.append(found)
    if not detections:
        return {"map": 0.0, "map50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c + 1} for c in range(labels)],
        }
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox" if masks is None else "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map": max(0.0, float(evaluation.stats[0])), "map50": max(0.0, float(evaluation.stats[1]))}


def mask_ious(predicted: Sequence[dict], truth: Sequence[dict]) -> np.ndarray:
    """IoU of every predicted mask with every true one (COCO RLEs), as COCOeval computes it for `segm`."""
    from pycocotools import mask as coco_mask

    if not len(predicted) or not len(truth):
        return np.zeros((len(predicted), len(truth)))
    found = coco_mask.iou(list(predicted), list(truth), [0] * len(truth))
    return np.asarray(found, dtype=np.float64).reshape(len(predicted), len(truth))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every x, y, w, h box of `a` with every one of `b`, as pycocotools computes it for boxes."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    ax1, ay1, ax2, ay2 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = (np.minimum(ax2[:, None], bx2[None]) - np.maximum(ax1[:, None], bx1[None])).clip(0)
    h = (np.minimum(ay2[:, None], by2[None]) - np.maximum(ay1[:, None], by1[None])).clip(0)
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(
    truth_rows: np.ndarray, predicted_rows: np.ndarray, iou: float, ious: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For one image: which predictions hit a truth box, and which truth box each hits (-1: none), COCO's way. `ious`
    (predictions x truth) replaces the boxes' IoU: the masks'."""
    hit = np.full(len(predicted_rows), -1, dtype=np.int64)
    if not len(predicted_rows) or not len(truth_rows):
        return hit >= 0, hit
    threshold = min(iou, 1 - 1e-10)
    for label in np.unique(predicted_rows[:, 4]).astype(int):
        preds = np.flatnonzero(predicted_rows[:, 4] == label)
        truths = np.flatnonzero(truth_rows[:, 4] == label)
        if not len(truths):
            continue
        preds = preds[np.argsort(-predicted_rows[preds, 5], kind="mergesort")]
        overlaps = (
            iou_matrix(predicted_rows[preds, :4], truth_rows[truths, :4])
            if ious is None
            else ious[np.ix_(preds, truths)]
        )
        taken = np.zeros(len(truths), dtype=bool)
        for row, pred in enumerate(preds):
            best, best_iou = -1, threshold
            for column in range(len(truths)):
                if taken[column] or overlaps[row, column] < best_iou:
                    continue
                best, best_iou = column, overlaps[row, column]
            if best >= 0:
                taken[best] = True
                hit[pred] = truths[best]
    return hit >= 0, hit


class Matched:
    """Every prediction of a set of images, flattened, with whether it hit a truth box (or mask) at the IoU
    threshold."""

    def __init__(
        self,
        truth: Sequence[Sequence],
        predictions: Sequence[np.ndarray],
        labels: int,
        iou: float = 0.5,
        masks: Masks | None = None,
    ):
        self.labels = labels
        rows, images, hits, targets = [], [], [], []
        self.truth_counts = np.zeros(labels, dtype=np.int64)
        for index, (truth_rows, predicted) in enumerate(zip(truth, predictions, strict=True)):
            truth_array = np.asarray(truth_rows, dtype=np.float64).reshape(-1, 5)
            predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, 6)
            np.add.at(self.truth_counts, truth_array[:, 4].astype(int), 1)
            ious = None if masks is None else mask_ious(masks[1][index], masks[0][index])
            hit, target = match(truth_array, predicted, iou, ious)
            rows.append(predicted)
            images.append(np.full(len(predicted), index, dtype=np.int64))
            hits.append(hit)
            targets.append(target)
        self.rows = np.concatenate(rows) if rows else np.zeros((0, 6))
        self.images = np.concatenate(images) if images else np.zeros(0, np.int64)
        self.hits = np.concatenate(hits) if hits else np.zeros(0, bool)
        self.targets = np.concatenate(targets) if targets else np.zeros(0, np.int64)

    def counts(self, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True positives, false positives and false negatives per label, with each label's score threshold."""
        label = self.rows[:, 4].astype(int)
        shown = self.rows[:, 5] >= np.asarray(thresholds, dtype=np.float64)[label]
        tp = np.bincount(label[shown & self.hits], minlength=self.labels)[: self.labels]
        fp = np.bincount(label[shown & ~self.hits], minlength=self.labels)[: self.labels]
        return tp, fp, self.truth_counts - tp

    def curve(self, label: int | None = None) -> list[dict]:
        """Precision and recall at each prediction's score, highest score first (every label when None)."""
        keep = np.ones(len(self.rows), bool) if label is None else self.rows[:, 4] == label
        total = int(self.truth_counts.sum() if label is None else self.truth_counts[label])
        scores, hits = self.rows[keep, 5], self.hits[keep]
        order = np.argsort(-scores, kind="mergesort")
        scores, hits = scores[order], hits[order]
        tp, fp = np.cumsum(hits), np.cumsum(~hits)
        # One point per distinct score: the last row of each run of equal scores counts them all.
        last = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, bool)
        points = [
            {
                "threshold": float(s),
                "precision": float(t / (t + f)),
                "recall": float(t / total) if total else 0.0,
            }
            for s, t, f in zip(scores[last], tp[last], fp[last], strict=True)
        ]
        if len(points) > CURVE_POINTS:
            step = len(points) / CURVE_POINTS
            points = [points[int(i * step)] for i in range(CURVE_POINTS)] + [points[-1]]
        return points

    def optimal_thresholds(self, floor: float) -> list[float]:
        """Per label, the score threshold of highest F1: `floor` for a label with no prediction, 1 for a label with
        no true box (no prediction of it can be right)."""
        out = []
        for label in range(self.labels):
            if not self.truth_counts[label]:  # nothing to find: every prediction of it is wrong, so show none
                out.append(1.0)
                continue
            best, best_f1 = floor, -1.0
            for point in self.curve(label):
                p, r = point["precision"], point["recall"]
                f1 = 2 * p * r / (p + r) if p + r else 0.0
                if f1 > best_f1:
                    best, best_f1 = point["threshold"], f1
            out.append(best)
        return out


def scores_at(matched: Matched, thresholds: Sequence[float], names: Sequence[str]) -> dict:
    """Precision, recall and F1 over all labels (summed counts) and per label, at these thresholds."""
    tp, fp, fn = matched.counts(thresholds)

    def prf(t: int, f: int, n: int) -> dict:
        precision = t / (t + f) if t + f else 0.0
        recall = t / (t + n) if t + n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "tp": int(t), "fp": int(f), "fn": int(n)}

    return {
        **prf(int(tp.sum()), int(fp.sum()), int(fn.sum())),
        "per_label": [
            {"label": name, "count": int(matched.truth_counts[i]), **prf(int(tp[i]), int(fp[i]), int(fn[i]))}
            for i, name in enumerate(names)
        ],
    }
