"""Statistics against cases computed by hand: confusion, precision/recall/F1, thresholds, ROC AUC, PR curves."""

import math

import numpy as np
import pytest

from training.ml import metrics
from training.services.datasets import stratified_validation

LABELS = ["cat", "dog", "fox"]


def test_single_label_statistics_by_hand():
    # truth:     cat cat dog dog fox fox
    # predicted: cat dog dog dog cat fox
    truth = metrics.one_hot([[0], [0], [1], [1], [2], [2]], 3)
    scores = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.3, 0.6, 0.1],
            [0.1, 0.7, 0.2],
            [0.2, 0.5, 0.3],
            [0.5, 0.1, 0.4],
            [0.1, 0.1, 0.8],
        ]
    )
    stats = metrics.single_label(scores, truth, LABELS)
    assert stats["count"] == 6
    assert stats["accuracy"] == pytest.approx(4 / 6)
    assert stats["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # cat: predicted twice, right once (P 1/2), one of two cats found (R 1/2). dog: P 2/3, R 1. fox: P 1, R 1/2.
    expected = {"cat": (0.5, 0.5, 0.5), "dog": (2 / 3, 1.0, 0.8), "fox": (1.0, 0.5, 2 / 3)}
    for row in stats["per_class"]:
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx(expected[row["label"]])
        assert row["support"] == 2
    true_scores = [0.8, 0.3, 0.7, 0.5, 0.4, 0.8]
    assert stats["loss"] == pytest.approx(-sum(math.log(s) for s in true_scores) / 6)


def test_multi_label_statistics_at_thresholds_by_hand():
    truth = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=np.int8)
    scores = np.array([[0.9, 0.2], [0.6, 0.4], [0.3, 0.7], [0.7, 0.1]])
    stats = metrics.multi_label(scores, truth, ["a", "b"], [0.5, 0.5])
    # predicted: [1,0] [1,0] [0,1] [1,0]: images 0 and 2 exactly right; 6 of 8 pairs right.
    assert stats["image_accuracy"] == 0.5
    assert stats["label_accuracy"] == 0.75
    a, b = stats["per_class"]
    assert (a["precision"], a["recall"], a["accuracy"]) == pytest.approx((2 / 3, 1.0, 0.75))
    assert (b["precision"], b["recall"], b["accuracy"]) == pytest.approx((1.0, 0.5, 0.75))
    # ROC AUC of a: positives 0.9, 0.6 against negatives 0.3, 0.7: 3 of 4 pairs ordered right.
    assert a["roc_auc"] == pytest.approx(0.75)
    assert b["roc_auc"] == pytest.approx(1.0)
    # Lowering b's threshold to 0.4 finds its second positive; a's false positive (0.7) remains.
    lowered = metrics.multi_label(scores, truth, ["a", "b"], [0.5, 0.4])
    assert (lowered["label_accuracy"], lowered["image_accuracy"]) == (0.875, 0.75)


def test_optimal_thresholds_maximise_f1():
    truth = np.array([[1], [1], [0], [0], [1]], dtype=np.int8)
    scores = np.array([[0.9], [0.4], [0.6], [0.2], [0.8]])
    # At 0.4 every positive is found with one false positive (F1 6/7); at 0.8 F1 is 0.8; at 0.9 0.5.
    assert metrics.optimal_thresholds(scores, truth) == [0.4]
    assert metrics.optimal_thresholds(scores, np.zeros_like(truth)) == [0.5]


def test_pr_curve_points_carry_their_thresholds():
    truth = np.array([1, 0, 1, 0])
    points = metrics.pr_curve(truth, np.array([0.9, 0.8, 0.7, 0.1]))
    assert points == [
        {"recall": 1.0, "precision": 0.5, "threshold": pytest.approx(0.1)},
        {"recall": 1.0, "precision": 2 / 3, "threshold": pytest.approx(0.7)},
        {"recall": 0.5, "precision": 0.5, "threshold": pytest.approx(0.8)},
        {"recall": 0.5, "precision": 1.0, "threshold": pytest.approx(0.9)},
    ]
    assert metrics.pr_curve(np.zeros(4), np.array([0.9, 0.8, 0.7, 0.1])) == []


@pytest.mark.parametrize(
    ("groups", "percent", "expected_valid_per_group"),
    [
        (["a"] * 10 + ["b"] * 5, 20, {"a": 2, "b": 1}),
        (["a"] * 10 + ["b"] * 1, 20, {"a": 2, "b": 0}),  # a class of one stays in training
        (["a"] * 2, 50, {"a": 1}),
        (["a"] * 3, 50, {"a": 2}),  # round(1.5) = 2, leaving one to train on
        (["a"] * 2, 5, {"a": 1}),  # at least one of a group of two or more
    ],
)
def test_stratified_validation_takes_a_share_of_every_group(groups, percent, expected_valid_per_group):
    chosen = stratified_validation(groups, percent, seed=3)
    counts = {g: sum(1 for i in chosen if groups[i] == g) for g in expected_valid_per_group}
    assert counts == expected_valid_per_group
    assert stratified_validation(groups, percent, seed=3) == chosen  # repeatable
