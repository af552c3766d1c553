"""Detection metrics against pycocotools' COCOeval on fixed synthetic predictions: crowded images, images with no
truth or no prediction, tiny boxes, duplicates and wrong labels."""

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from training.ml import detection_metrics


def _world(seed: int = 7):
    """Truth (x, y, w, h, label) and predictions (+ score) for 12 images of 3 labels."""
    rng = np.random.default_rng(seed)
    truth, predicted = [], []
    for image in range(12):
        if image == 0:  # empty: no truth, two false alarms
            truth.append(np.zeros((0, 5)))
            predicted.append(np.array([[5, 5, 20, 20, 0, 0.9], [40, 40, 10, 10, 2, 0.2]]))
            continue
        if image == 1:  # truth, and nothing predicted
            truth.append(np.array([[10, 10, 30, 30, 1]]))
            predicted.append(np.zeros((0, 6)))
            continue
        count = 25 if image == 2 else int(rng.integers(1, 6))  # image 2 is crowded
        sides = rng.choice([3, 6, 20, 60], size=count)  # tiny ones too
        xy = rng.uniform(0, 200, size=(count, 2))
        rows = np.column_stack([xy, sides, sides, rng.integers(0, 3, count)]).astype(np.float64)
        truth.append(rows)
        guesses = []
        for row in rows:
            if rng.random() < 0.8:  # found, jittered
                jitter = rng.normal(0, max(1.0, row[2] * 0.15), 4)
                box = np.maximum(row[:4] + jitter, [0, 0, 1, 1])
                label = row[4] if rng.random() < 0.9 else (row[4] + 1) % 3
                guesses.append([*box, label, rng.uniform(0.05, 1)])
                if rng.random() < 0.2:  # a duplicate
                    guesses.append([*(box + rng.normal(0, 1, 4)), label, rng.uniform(0.05, 1)])
        for _ in range(int(rng.integers(0, 3))):  # false alarms
            guesses.append([*rng.uniform(0, 200, 2), 15, 15, rng.integers(0, 3), rng.uniform(0.05, 0.6)])
        predicted.append(np.array(guesses, dtype=np.float64).reshape(-1, 6))
    return truth, predicted


def _cocoeval(truth, predicted, labels=3) -> COCOeval:
    gt = COCO()
    annotations = []
    for image, rows in enumerate(truth):
        for row in rows:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image,
                    "category_id": int(row[4]) + 1,
                    "bbox": [float(v) for v in row[:4]],
                    "area": float(row[2] * row[3]),
                    "iscrowd": 0,
                }
            )
    gt.dataset = {
        "images": [{"id": i} for i in range(len(truth))],
        "annotations": annotations,
        "categories": [{"id": c + 1} for c in range(labels)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        results = [
            {"image_id": i, "category_id": int(r[4]) + 1, "bbox": [float(v) for v in r[:4]], "score": float(r[5])}
            for i, rows in enumerate(predicted)
            for r in rows
        ]
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


@pytest.mark.parametrize("seed", [7, 11, 23])
def test_map_is_cocoeval_stats_0_and_1(seed):
    truth, predicted = _world(seed)
    reference = _cocoeval(truth, predicted)
    ours = detection_metrics.coco_map(truth, predicted, 3)
    assert ours["map"] == pytest.approx(reference.stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(reference.stats[1], abs=1e-6)
    assert 0 < ours["map50"] < 1


@pytest.mark.parametrize("iou", [0.5, 0.75])
def test_matching_is_cocoevals_prediction_by_prediction(iou):
    """Each prediction hits the same truth box as in COCOeval's dtMatches at this IoU (area "all", 100 detections):
    COCO numbers results and annotations in the order given, image by image, so ids map to our rows."""
    truth, predicted = _world()
    reference = _cocoeval(truth, predicted)
    t = int(np.flatnonzero(np.isclose(reference.params.iouThrs, iou))[0])
    expected = np.zeros(sum(len(rows) for rows in predicted), dtype=np.int64)  # the truth id each hits, 0: none
    for entry in reference.evalImgs:
        if entry is not None and entry["aRng"] == [0, 1e10]:
            for dt_id, gt_id in zip(entry["dtIds"], entry["dtMatches"][t], strict=True):
                expected[dt_id - 1] = int(gt_id)
    matched = detection_metrics.Matched(truth, predicted, 3, iou)
    first_truth_id = np.cumsum([0] + [len(rows) for rows in truth])  # ids of each image's truth boxes start here
    ours = np.where(matched.hits, first_truth_id[matched.images] + matched.targets + 1, 0)
    assert ours.tolist() == expected.tolist()
    assert 0 < matched.hits.sum() < len(matched.hits)


def test_precision_recall_and_f1_at_thresholds_by_hand():
    truth = [np.array([[0, 0, 10, 10, 0], [20, 20, 10, 10, 0]]), np.array([[0, 0, 10, 10, 1]])]
    predicted = [
        np.array([[0, 0, 10, 10, 0, 0.9], [50, 50, 10, 10, 0, 0.8], [20, 21, 10, 10, 0, 0.3]]),
        np.array([[0, 0, 10, 10, 0, 0.7]]),  # right place, wrong label: a false positive and a miss
    ]
    matched = detection_metrics.Matched(truth, predicted, 2, 0.5)
    at = detection_metrics.scores_at(matched, [0.5, 0.5], ["a", "b"])
    # Label a at 0.5: 0.9 right, 0.8 wrong, 0.7 wrong (no truth a there); the 0.3 one is below the threshold.
    assert (at["per_label"][0]["tp"], at["per_label"][0]["fp"], at["per_label"][0]["fn"]) == (1, 2, 1)
    assert (at["per_label"][1]["tp"], at["per_label"][1]["fp"], at["per_label"][1]["fn"]) == (0, 0, 1)
    assert at["precision"] == pytest.approx(1 / 3) and at["recall"] == pytest.approx(1 / 3)
    curve = matched.curve(0)
    assert [v for p in curve for v in (p["threshold"], p["precision"], p["recall"])] == pytest.approx(
        [0.9, 1.0, 0.5, 0.8, 0.5, 0.5, 0.7, 1 / 3, 0.5, 0.3, 0.5, 1.0]
    )
    assert matched.optimal_thresholds(0.05) == pytest.approx([0.9, 0.05])  # of equal F1, the first
    # A label with no true box: none of its predictions can be right, so its threshold shows none.
    lonely = detection_metrics.Matched([np.zeros((0, 5))], [np.array([[0, 0, 5, 5, 0, 0.8]])], 1, 0.5)
    assert lonely.optimal_thresholds(0.05) == [1.0]


def test_no_truth_gives_no_map_and_no_prediction_gives_zero():
    assert detection_metrics.coco_map([np.zeros((0, 5))], [np.array([[0, 0, 5, 5, 0, 0.5]])], 1) == {
        "map": None,
        "map50": None,
    }
    assert detection_metrics.coco_map([np.array([[0, 0, 5, 5, 0]])], [np.zeros((0, 6))], 1) == {
        "map": 0.0,
        "map50": 0.0,
    }
