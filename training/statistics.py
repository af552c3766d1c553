"""A model's statistics and predictions on its training and validation images (spec 000, Training 6-11).

Each checkpoint's scores on every image of its dataset version are saved once, when training ends
(an .npz of item ids, splits and scores); everything here is computed from them on request, so a
new threshold redraws the statistics at once.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from django.core.exceptions import ValidationError

from projects.files import stored_bytes
from training.ml import detection_metrics, metrics, segmentation_metrics
from training.models import OBJECT_TASKS, Checkpoint, DatasetItem, ModelVersion, Split, Task

SPLITS = {Split.TRAIN: 0, Split.VALID: 1}


@dataclass(frozen=True)
class Evaluation:
    item_ids: np.ndarray
    splits: np.ndarray
    scores: np.ndarray  # N x C probabilities
    targets: np.ndarray  # N x C, 0/1

    def subset(self, split: str) -> Evaluation:
        keep = self.splits == SPLITS[split]
        return Evaluation(self.item_ids[keep], self.splits[keep], self.scores[keep], self.targets[keep])


@functools.lru_cache(maxsize=32)
def _arrays(name: str) -> dict[str, np.ndarray]:
    """An evaluation file never changes once written, so its arrays are cached by name."""
    with np.load(io.BytesIO(stored_bytes(name))) as data:
        return {key: data[key] for key in data.files}


@functools.lru_cache(maxsize=32)
def _targets(dataset_version_id: int, num_classes: int, item_ids: tuple[int, ...]) -> np.ndarray:
    found = dict(DatasetItem.objects.filter(dataset_version_id=dataset_version_id).values_list("id", "targets"))
    return metrics.one_hot([found[pk] for pk in item_ids], num_classes)


def evaluation_load(model: ModelVersion, checkpoint: str) -> Evaluation:
    arrays = _arrays(model.evaluation_file(checkpoint).name)
    targets = _targets(model.dataset_version_id, len(model.labels), tuple(arrays["item_ids"].tolist()))
    return Evaluation(arrays["item_ids"], arrays["splits"], arrays["scores"], targets)


def _threshold_source(evaluation: Evaluation) -> Evaluation:
    """Thresholds are optimised on validation images, or on training images when there are none."""
    valid = evaluation.subset(Split.VALID)
    return valid if len(valid.item_ids) else evaluation.subset(Split.TRAIN)


def _summary(stats: dict, multi_label: bool) -> dict:
    keys = (
        ("count", "image_accuracy", "label_accuracy", "loss", "roc_auc")
        if multi_label
        else ("count", "accuracy", "loss")
    )
    return {key: stats[key] for key in keys}


@dataclass(frozen=True)
class Boxes:
    """A detector's predicted boxes on every image of its dataset version, beside the true ones."""

    item_ids: np.ndarray
    splits: np.ndarray
    truth: list[np.ndarray]  # per image, K x 5: x, y, w, h, label index
    predicted: list[np.ndarray]  # per image, K x 6: x, y, w, h, label index, score
    masks: detection_metrics.Masks | None = None  # an instance model's: each row's mask (RLE), truth and predicted

    def subset(self, split: str) -> Boxes:
        return self.only(self.splits == SPLITS[split])

    def only(self, chosen: np.ndarray) -> Boxes:
        """The images where `chosen` (a boolean per image) is true."""
        keep = np.flatnonzero(chosen)
        return Boxes(
            self.item_ids[keep],
            self.splits[keep],
            [self.truth[i] for i in keep],
            [self.predicted[i] for i in keep],
            None if self.masks is None else tuple([part[i] for i in keep] for part in self.masks),
        )


@functools.lru_cache(maxsize=32)
def _truth_boxes(dataset_version_id: int, item_ids: tuple[int, ...]) -> list[np.ndarray]:
    found = dict(DatasetItem.objects.filter(dataset_version_id=dataset_version_id).values_list("id", "targets"))
    return [np.asarray(found[pk]["boxes"], dtype=np.float64).reshape(-1, 5) for pk in item_ids]


@functools.lru_cache(maxsize=32)
def _boxed(dataset_version_id: int, item_ids: tuple[int, ...]) -> np.ndarray:
    found = dict(DatasetItem.objects.filter(dataset_version_id=dataset_version_id).values_list("id", "targets"))
    return np.array([found[pk].get("boxed", True) for pk in item_ids], dtype=bool)


@functools.lru_cache(maxsize=8)
def _truth_instances(dataset_version_id: int, item_ids: tuple[int, ...]) -> tuple[list[np.ndarray], list[list[dict]]]:
    """Each image's shapes as instances at its upright size: rows (the masks' boxes and labels) and masks (RLE)."""
    from training.ml.instances import truth_instances

    found = dict(DatasetItem.objects.filter(dataset_version_id=dataset_version_id).values_list("id", "targets"))
    rows, masks = [], []
    for pk in item_ids:
        target = found[pk]
        if target["shapes"]:
            image_rows, image_masks, _ = truth_instances(target["shapes"], *target["size"])
        else:
            image_rows, image_masks = np.zeros((0, 5)), []
        rows.append(image_rows)
        masks.append(image_masks)
    return rows, masks


def boxes_load(model: ModelVersion, checkpoint: str) -> Boxes:
    """A detector's boxes, or an instance model's boxes and masks, per image: truth and predicted."""
    arrays = _arrays(model.evaluation_file(checkpoint).name)
    count = len(arrays["item_ids"])
    order = np.argsort(arrays["row_item"], kind="stable")
    rows, owners = arrays["rows"][order].astype(np.float64), arrays["row_item"][order]
    bounds = np.searchsorted(owners, np.arange(count + 1))
    predicted = [rows[bounds[i] : bounds[i + 1]] for i in range(count)]
    item_ids = tuple(arrays["item_ids"].tolist())
    if model.task != Task.INSTANCE:
        boxes = Boxes(arrays["item_ids"], arrays["splits"], _truth_boxes(model.dataset_version_id, item_ids), predicted)
        # A detector with a segmentation head is scored on the images whose boxes are known (not those only painted).
        return boxes.only(_boxed(model.dataset_version_id, item_ids)) if model.segmentation_head else boxes
    truth, truth_masks = _truth_instances(model.dataset_version_id, item_ids)
    counts, offsets, sizes = arrays["mask_counts"].tobytes(), arrays["mask_offsets"], arrays["mask_sizes"]
    masks = [{"size": sizes[k].tolist(), "counts": counts[offsets[k] : offsets[k + 1]].decode("ascii")} for k in order]
    predicted_masks = [masks[bounds[i] : bounds[i + 1]] for i in range(count)]
    return Boxes(arrays["item_ids"], arrays["splits"], truth, predicted, (truth_masks, predicted_masks))


def _detection_summary(model: ModelVersion) -> tuple[dict, dict]:
    from training.ml.detection import EVAL_SCORE

    summary, optimised = {}, {}
    labels = len(model.labels)
    for checkpoint in Checkpoint.values:
        boxes = boxes_load(model, checkpoint)
        parts = {split: boxes.subset(split) for split in SPLITS}
        matched = {
            split: detection_metrics.Matched(part.truth, part.predicted, labels, model.iou_threshold, part.masks)
            for split, part in parts.items()
        }
        # Thresholds are optimised on validation images, or on training images when there are none.
        source = Split.VALID if len(parts[Split.VALID].item_ids) else Split.TRAIN
        optimised[checkpoint] = matched[source].optimal_thresholds(EVAL_SCORE)
        summary[checkpoint] = {}
        for split, part in parts.items():
            coco = detection_metrics.coco_map(part.truth, part.predicted, labels, part.masks)
            at = detection_metrics.scores_at(matched[split], optimised[checkpoint], model.labels)
            summary[checkpoint][split] = {
                "count": len(part.item_ids),
                "map": coco["map"],
                "map50": coco["map50"],
                **{key: at[key] for key in ("precision", "recall", "f1")},
            }
            if model.segmentation_head:
                pixels = segmentation_statistics(model=model, checkpoint=checkpoint, split=split)
                summary[checkpoint][split].update(
                    {key: pixels[key] for key in ("miou", "label_miou", "pixel_accuracy")}
                )
    return summary, optimised


def detection_statistics(*, model: ModelVersion, checkpoint: str, split: str, thresholds=None, iou=None) -> dict:
    """The statistics page of a detector for one checkpoint and split: COCO mAP, precision, recall and F1 at the
    thresholds in use (overall and per label), the label counts, and precision-recall curves."""
    iou = model.iou_threshold if iou is None else iou
    part = boxes_load(model, checkpoint).subset(split)
    labels = len(model.labels)
    thresholds = thresholds or model.thresholds_for(checkpoint)
    matched = detection_metrics.Matched(part.truth, part.predicted, labels, iou, part.masks)
    return {
        "checkpoint": checkpoint,
        "split": split,
        "task": model.task,
        "labels": model.labels,
        "iou": iou,
        "count": len(part.item_ids),
        **detection_metrics.coco_map(part.truth, part.predicted, labels, part.masks),
        **detection_metrics.scores_at(matched, thresholds, model.labels),
        "thresholds": thresholds,
        "optimized_thresholds": model.optimized_thresholds[checkpoint],
        "pr_curves": {"all": matched.curve(), "labels": [matched.curve(i) for i in range(labels)]},
    }


def pixels_load(model: ModelVersion, checkpoint: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A segmentation model's item ids of one split, and per image and class its pixels right, true and predicted
    (N x 3 x C)."""
    arrays = _arrays(model.evaluation_file(checkpoint).name)
    keep = arrays["splits"] == SPLITS[split]
    return arrays["item_ids"][keep], arrays["per_image"][keep]


def predicted_map(model: ModelVersion, checkpoint: str, item_id: int) -> np.ndarray | None:
    """The label map a segmentation model predicted for one dataset item at the training size (0 background, i + 1
    label i), or None for an item it did not score."""
    from PIL import Image as PILImage

    arrays = _arrays(model.evaluation_file(checkpoint).name)
    found = np.flatnonzero(arrays["item_ids"] == item_id)
    if not len(found):
        return None
    start, end = arrays["map_offsets"][found[0]], arrays["map_offsets"][found[0] + 1]
    with PILImage.open(io.BytesIO(arrays["maps"][start:end].tobytes())) as picture:
        return np.asarray(picture)


def segmentation_statistics(*, model: ModelVersion, checkpoint: str, split: str) -> dict:
    """The statistics page of a semantic segmentation model (or a detector's segmentation head) for one checkpoint
    and split: per-label IoU, mIoU, pixel accuracy and the confusion matrix over pixels (background first), at the
    training size."""
    arrays = _arrays(model.evaluation_file(checkpoint).name)
    return {
        "checkpoint": checkpoint,
        "split": split,
        "task": Task.SEMANTIC,
        "labels": model.labels,
        # The images scored: every one of a semantic model's; a detector's segmentation head's painted ones.
        "count": int((arrays["per_image"][arrays["splits"] == SPLITS[split], 1].sum(axis=1) > 0).sum()),
        **segmentation_metrics.scores(arrays[f"total_{split}"], model.labels),
    }


def _segmentation_summary(model: ModelVersion) -> tuple[dict, dict]:
    summary: dict = {}
    for checkpoint in Checkpoint.values:
        summary[checkpoint] = {}
        for split in SPLITS:
            stats = segmentation_statistics(model=model, checkpoint=checkpoint, split=split)
            summary[checkpoint][split] = {key: stats[key] for key in ("count", "miou", "label_miou", "pixel_accuracy")}
    return summary, {}


def model_summary(*, model: ModelVersion) -> tuple[dict, dict]:
    """Summary metrics per checkpoint and split, and the F1-optimised thresholds (multi-label, detection)."""
    if model.task in OBJECT_TASKS:
        return _detection_summary(model)
    if model.task == Task.SEMANTIC:
        return _segmentation_summary(model)
    summary, optimised = {}, {}
    for checkpoint in Checkpoint.values:
        evaluation = evaluation_load(model, checkpoint)
        if model.multi_label:
            source = _threshold_source(evaluation)
            optimised[checkpoint] = metrics.optimal_thresholds(source.scores, source.targets)
        summary[checkpoint] = {}
        for split in SPLITS:
            part = evaluation.subset(split)
            stats = (
                metrics.multi_label(part.scores, part.targets, model.labels, optimised[checkpoint])
                if model.multi_label
                else metrics.single_label(part.scores, part.targets, model.labels)
            )
            summary[checkpoint][split] = _summary(stats, model.multi_label)
    return summary, optimised


def model_statistics(
    *, model: ModelVersion, checkpoint: str, split: str, thresholds: list[float] | None = None
) -> dict:
    """Everything the statistics page draws for one checkpoint and split."""
    part = evaluation_load(model, checkpoint).subset(split)
    out = {"checkpoint": checkpoint, "split": split, "labels": model.labels, "multi_label": model.multi_label}
    if not model.multi_label:
        return {**out, **metrics.single_label(part.scores, part.targets, model.labels)}
    thresholds = thresholds or model.thresholds_for(checkpoint)
    stats = metrics.multi_label(part.scores, part.targets, model.labels, thresholds)
    curves = {
        "all": metrics.pr_curve(part.targets.ravel(), part.scores.ravel()),
        "labels": [
            metrics.pr_curve(part.targets[:, column], part.scores[:, column]) for column in range(len(model.labels))
        ],
    }  # per label by position, so a label named "all" is just another label
    return {
        **out,
        **stats,
        "thresholds": thresholds,
        "optimized_thresholds": model.optimized_thresholds[checkpoint],
        "pr_curves": curves,
    }


def model_predictions(
    *,
    model: ModelVersion,
    checkpoint: str,
    split: str,
    show: str = "all",
    advanced: bool = False,
    thresholds: list[float] | None = None,
    iou: float | None = None,
) -> list[dict]:
    """Per image: ground truth and predictions, marked right or wrong (spec 000's green and red); a detector's boxes
    as detection_predictions gives them, at `iou`.

    Single-label: the prediction is the top label. Multi-label: a label is predicted when its score
    reaches its threshold. The basic view lists predicted labels only; the advanced view every label.
    `show` keeps all images, or only the wrong or right ones; wrong ones come most confident first.
    """
    if model.task in OBJECT_TASKS:
        return detection_predictions(
            model=model, checkpoint=checkpoint, split=split, show=show, thresholds=thresholds, iou=iou
        )
    part = evaluation_load(model, checkpoint).subset(split)
    thresholds = thresholds or model.thresholds_for(checkpoint)
    items = {
        pk: (image_id, name)
        for pk, image_id, name in DatasetItem.objects.filter(pk__in=part.item_ids.tolist()).values_list(
            "id", "image_id", "image_name"
        )
    }
    rows = []
    for item_id, scores, truth in zip(part.item_ids.tolist(), part.scores, part.targets, strict=True):
        if model.multi_label:
            positive = scores >= np.asarray(thresholds)
        else:
            positive = np.zeros(len(scores), dtype=bool)
            positive[int(scores.argmax())] = True
        correct = bool((positive == (truth > 0)).all())
        if (show == "wrong" and correct) or (show == "right" and not correct):
            continue
        order = np.argsort(-scores, kind="stable")
        predictions = [
            {
                "label": model.labels[i],
                "score": float(scores[i]),
                "truth": bool(truth[i]),
                "positive": bool(positive[i]),
                "correct": bool(positive[i]) == bool(truth[i]),
            }
            for i in order
            if advanced or positive[i]
        ]
        image_id, name = items.get(item_id, (None, "?"))
        rows.append(
            {
                "item": item_id,
                "image_id": image_id,
                "image_name": name,
                "correct": correct,
                "truth": [model.labels[i] for i in np.flatnonzero(truth)],
                "predictions": predictions,
                "top_score": float(scores.max()),
            }
        )
    if show == "wrong":
        rows.sort(key=lambda row: -row["top_score"])
    return rows


def detection_predictions(
    *,
    model: ModelVersion,
    checkpoint: str,
    split: str,
    show: str = "all",
    thresholds=None,
    iou=None,
    masks: bool = False,
) -> list[dict]:
    """Per image of the split: its true boxes, found or missed, and the predicted boxes at the thresholds in use,
    right (matching a true box at the IoU, COCO's way) or wrong. "wrong" lists images with a mistake, the most
    mistakes first; "right" those without. With `masks`, an instance model's boxes carry their masks (`rle`)."""
    part = boxes_load(model, checkpoint).subset(split)
    limits = np.asarray(thresholds or model.thresholds_for(checkpoint), dtype=np.float64)
    iou = iou or model.iou_threshold
    found_images = DatasetItem.objects.filter(pk__in=[int(i) for i in part.item_ids]).values_list(
        "id", "image_id", "image_name", "image__width", "image__height"
    )
    images = {pk: rest for pk, *rest in found_images}
    rows = []
    for index, (item_id, truth, predicted) in enumerate(zip(part.item_ids, part.truth, part.predicted, strict=True)):
        kept = predicted[:, 5] >= limits[predicted[:, 4].astype(int)]
        shown = predicted[kept]
        ious, truth_masks, shown_masks = None, None, None
        if part.masks is not None:  # an instance model's: right and wrong by the masks' IoU
            truth_masks = part.masks[0][index]
            shown_masks = [m for m, k in zip(part.masks[1][index], kept, strict=True) if k]
            ious = detection_metrics.mask_ious(shown_masks, truth_masks)
        hit, target = detection_metrics.match(truth, shown, iou, ious)
        found = set(target[hit].tolist())
        image_id, name, width, height = images[int(item_id)]
        truth_boxes = [{**_box(model, row), "found": index in found} for index, row in enumerate(truth)]
        boxes = [
            {**_box(model, row), "score": float(row[5]), "correct": bool(h)} for row, h in zip(shown, hit, strict=True)
        ]
        if masks and truth_masks is not None:
            for box, rle in [*zip(truth_boxes, truth_masks, strict=True), *zip(boxes, shown_masks, strict=True)]:
                box["rle"] = rle
        mistakes = int((~hit).sum()) + len(truth) - len(found)
        rows.append(
            {
                "item": int(item_id),
                "image_id": image_id,
                "image_name": name,
                "width": width or 1,
                "height": height or 1,
                "truth": truth_boxes,
                "boxes": boxes,
                "mistakes": mistakes,
                "correct": mistakes == 0,
            }
        )
    if show == "wrong":
        return sorted((r for r in rows if not r["correct"]), key=lambda r: -r["mistakes"])
    if show == "right":
        return [r for r in rows if r["correct"]]
    return rows


def _box(model: ModelVersion, row) -> dict:
    """An x, y, w, h, label row as the pages and the API show a box."""
    return {"label": model.labels[int(row[4])], "x": row[0], "y": row[1], "width": row[2], "height": row[3]}


def thresholds_parse(raw: str | None, model: ModelVersion) -> list[float] | None:
    """`0.4` for every label, or one comma-separated number per label; None when not given."""
    if not raw:
        return None
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        raise ValidationError({"thresholds": ["Give numbers from 0 to 1, separated by commas."]}) from None
    if len(values) == 1:
        values = values * len(model.labels)
    if len(values) != len(model.labels) or not all(0 <= v <= 1 for v in values):
        raise ValidationError({"thresholds": [f"Give one number from 0 to 1, or {len(model.labels)} of them."]})
    return values
