"""Where a model is right and wrong, as four galleries (spec 001): All, Matched, Missing and Extra.

Classification shows whole images, detection shows boxes. Only the images of the model's dataset version
appear, on one split at a time, for one label at a time, at the thresholds in use:
- All: every prediction of the label, highest score first (with where the threshold falls).
- Matched: predictions at or above the threshold that agree with the annotation, highest score first; for
  classification, images annotated with the label and predicted with it.
- Missing: predictions at or above the threshold with no annotation to match (false positives), highest first.
- Extra: annotations the model did not predict at the threshold (false negatives). Classification orders them
  by the label's score, highest first. A detector has no score for a box it missed, so each missed box is
  ordered by its best match among the predicted boxes of its label below the threshold: the highest IoU first
  (the near misses), then by that box's score.

Semantic segmentation judges each image's pixels of the label, at the IoU threshold: All has every image where the
label is true or predicted, highest IoU first; Matched those at the IoU or more; of those under it, Missing those
with pixels predicted as the label where it is not (most such pixels first), Extra those with pixels of the label
the model did not find (most missed pixels first); an image can be in both. The tiles draw the pixels over the
image: right, predicted only, missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.core.exceptions import ValidationError

from training import statistics
from training.ml import detection_metrics
from training.models import OBJECT_TASKS, DatasetItem, ModelVersion, Task

TABS = ("all", "matched", "missing", "extra")
PAGE_SIZE = 48


@dataclass(frozen=True)
class Item:
    image_id: int | None
    image_name: str
    score: float | None
    box: tuple[float, float, float, float] | None = None  # detection: x, y, w, h in image pixels
    note: str = ""  # what the tile says under the picture
    above: bool = True  # at or above the threshold (All tab)
    item_id: int | None = None  # semantic segmentation: the dataset item, whose pixels the tile draws
    mask: dict | None = None  # instance segmentation: the object's mask (COCO RLE), drawn over its crop
    right: bool | None = None  # and whether it is right (green), wrong (red) or a missed true object (None: blue)


def gallery(
    *,
    model: ModelVersion,
    checkpoint: str,
    split: str,
    tab: str,
    label: int,
    thresholds=None,
    iou=None,
    pixels: bool = False,
) -> dict:
    """Every item of one tab, ordered, and the position of the first one below the threshold (All). A detector's
    boxes match at `iou`, or the model's IoU threshold. With `pixels`, a detector's segmentation head's gallery."""
    if tab not in TABS:
        raise ValidationError({"tab": [f"Choose one of {', '.join(TABS)}."]})
    if not 0 <= label < len(model.labels):
        raise ValidationError({"label": ["Choose one of the model's labels."]})
    thresholds = thresholds or model.thresholds_for(checkpoint)
    if pixels and not model.segmentation_head:
        raise ValidationError({"head": ["This model has no segmentation head."]})
    if model.task in OBJECT_TASKS and not pixels:
        items = _boxes(model, checkpoint, split, tab, label, thresholds, iou or model.iou_threshold)
    elif model.task == Task.SEMANTIC or pixels:
        items = _pixels(model, checkpoint, split, tab, label, iou or model.iou_threshold)
    else:
        items = _images(model, checkpoint, split, tab, label, thresholds)
    first_below = next((i for i, item in enumerate(items) if not item.above), None)
    return {"items": items, "threshold": thresholds[label] if thresholds else None, "first_below": first_below}


def _names(item_ids) -> dict[int, tuple[int | None, str]]:
    rows = DatasetItem.objects.filter(pk__in=[int(i) for i in item_ids]).values_list("id", "image_id", "image_name")
    return {pk: (image_id, name) for pk, image_id, name in rows}


def _boxes(model: ModelVersion, checkpoint: str, split: str, tab: str, label: int, thresholds, iou) -> list[Item]:
    part = statistics.boxes_load(model, checkpoint).subset(split)
    names = _names(part.item_ids)
    matched = detection_metrics.Matched(part.truth, part.predicted, len(model.labels), iou, part.masks)
    rows, hits = matched.rows, matched.hits
    mine = rows[:, 4] == label if len(rows) else np.zeros(0, bool)
    above = rows[:, 5] >= thresholds[label] if len(rows) else np.zeros(0, bool)

    starts = np.cumsum([0, *(len(p) for p in part.predicted)])  # where each image's rows begin in `rows`

    def prediction(i: int, note: str) -> Item:
        image = int(matched.images[i])
        image_id, name = names.get(int(part.item_ids[image]), (None, "?"))
        x, y, w, h, _, score = rows[i]
        mask = None if part.masks is None else part.masks[1][image][i - starts[image]]
        box = (float(x), float(y), float(w), float(h))
        return Item(image_id, name, float(score), box, note, bool(above[i]), mask=mask, right=bool(hits[i]))

    if tab != "extra":
        keep = {"all": mine, "matched": mine & above & hits, "missing": mine & above & ~hits}[tab]
        chosen = np.flatnonzero(keep)
        chosen = chosen[np.argsort(-rows[chosen, 5], kind="mergesort")]
        return [prediction(int(i), "right" if hits[i] else "no such object") for i in chosen]
    # Extra: true boxes of the label that no prediction at or above the threshold found.
    found = {(int(matched.images[i]), int(matched.targets[i])) for i in np.flatnonzero(mine & above & hits)}
    missed = []
    for image, truth in enumerate(part.truth):
        for index in np.flatnonzero(truth[:, 4] == label):
            if (image, int(index)) in found:
                continue
            candidates = part.predicted[image]
            chosen = np.flatnonzero((candidates[:, 4] == label) & (candidates[:, 5] < thresholds[label]))
            below = candidates[chosen]
            if part.masks is None:
                ious = detection_metrics.iou_matrix(truth[index : index + 1, :4], below[:, :4])[0]
            else:  # an instance model's: by the masks
                predicted_masks = [part.masks[1][image][k] for k in chosen]
                ious = detection_metrics.mask_ious(predicted_masks, [part.masks[0][image][index]])[:, 0]
            best = int(np.argmax(ious)) if len(ious) else -1
            iou, score = (float(ious[best]), float(below[best, 5])) if best >= 0 else (0.0, 0.0)
            image_id, name = names.get(int(part.item_ids[image]), (None, "?"))
            note = f"best match below the threshold: IoU {iou:.2f}, score {score:.2f}" if best >= 0 else "no match"
            mask = None if part.masks is None else part.masks[0][image][index]
            box = tuple(map(float, truth[index, :4]))
            missed.append(((-iou, -score), Item(image_id, name, None, box, note, mask=mask)))
    missed.sort(key=lambda pair: pair[0])
    return [item for _, item in missed]


def _images(model: ModelVersion, checkpoint: str, split: str, tab: str, label: int, thresholds) -> list[Item]:
    part = statistics.evaluation_load(model, checkpoint).subset(split)
    names = _names(part.item_ids)
    scores, truth = part.scores[:, label], part.targets[:, label] > 0
    if model.multi_label:
        predicted = scores >= thresholds[label]
    else:
        predicted = part.scores.argmax(axis=1) == label
    keep = {"all": np.ones(len(scores), bool), "matched": truth & predicted, "missing": predicted & ~truth}.get(
        tab, truth & ~predicted
    )
    chosen = np.flatnonzero(keep)
    chosen = chosen[np.argsort(-scores[chosen], kind="mergesort")]
    out = []
    for i in chosen:
        image_id, name = names.get(int(part.item_ids[i]), (None, "?"))
        note = "annotated" if truth[i] else "not annotated"
        out.append(Item(image_id, name, float(scores[i]), None, note, bool(predicted[i])))
    return out


def _pixels(model: ModelVersion, checkpoint: str, split: str, tab: str, label: int, iou: float) -> list[Item]:
    item_ids, pixels = statistics.pixels_load(model, checkpoint, split)
    names = _names(item_ids)
    both, true, predicted = (pixels[:, row, label + 1].astype(np.float64) for row in range(3))
    union = true + predicted - both
    ious = np.divide(both, union, out=np.zeros_like(both), where=union > 0)
    wrong = (union > 0) & (ious < iou)
    if tab == "all":
        chosen, order = np.flatnonzero(union > 0), -ious
    elif tab == "matched":
        chosen, order = np.flatnonzero((union > 0) & (ious >= iou)), -ious
    elif tab == "missing":
        chosen, order = np.flatnonzero(wrong & (predicted > both)), -(predicted - both)
    else:
        chosen, order = np.flatnonzero(wrong & (true > both)), -(true - both)
    chosen = chosen[np.argsort(order[chosen], kind="mergesort")]
    out = []
    for i in chosen:
        image_id, name = names.get(int(item_ids[i]), (None, "?"))
        note = (
            f"{int(predicted[i] - both[i])} px predicted wrongly, {int(true[i] - both[i])} px missed"
            if ious[i] < 1
            else "every pixel right"
        )
        above = bool(ious[i] >= iou)
        out.append(Item(image_id, name, float(ious[i]), note=note, above=above, item_id=int(item_ids[i])))
    return out


RIGHT, PREDICTED_ONLY, MISSED = (46, 204, 64, 150), (255, 59, 48, 170), (0, 122, 255, 170)


def pixels_drawn(model: ModelVersion, checkpoint: str, label: int, tiles: list[dict]) -> list[dict]:
    """A semantic segmentation gallery's tiles, each with one label's pixels drawn as a PNG data URL at the training
    size (green where right, red where only predicted, blue where missed) and its width and height."""
    import base64
    import io

    from PIL import Image as PILImage

    from training.ml.segmentation import label_map

    wanted = [tile["item"].item_id for tile in tiles if tile["item"].item_id is not None]
    items = DatasetItem.objects.filter(pk__in=wanted).select_related("image").in_bulk()  # one query for the page
    for tile in tiles:
        item = items.get(tile["item"].item_id)
        predicted = statistics.predicted_map(model, checkpoint, item.pk) if item and item.image else None
        if predicted is None:
            continue
        height, width = predicted.shape
        scale = model.image_size / max(item.image.width, item.image.height)  # as training resized it
        shapes = [(row[0], row[1], row[2]) for row in item.targets["shapes"]]
        true, guessed = label_map(shapes, scale, height, width) == label + 1, predicted == label + 1
        picture = np.zeros((height, width, 4), np.uint8)
        picture[true & guessed], picture[guessed & ~true], picture[true & ~guessed] = RIGHT, PREDICTED_ONLY, MISSED
        out = io.BytesIO()
        PILImage.fromarray(picture).save(out, "PNG", optimize=True)
        tile["pixels"] = ("data:image/png;base64," + base64.b64encode(out.getvalue()).decode(), width, height)
    return tiles


def tiles(items: list[Item], start: int, size: int) -> list[dict]:
    """One page of items; a box gets the crop around it (a quarter of its size of context, 16 px at least) as an
    SVG viewBox over the whole image, which the browser fetches once however many boxes it has."""
    from projects.models import Image

    page = items[start : start + size]
    ids = {item.image_id for item in page if item.image_id}
    sizes = {pk: (w, h) for pk, w, h in Image.objects.filter(pk__in=ids).values_list("id", "width", "height")}
    out = []
    for offset, item in enumerate(page):
        tile = {"index": start + offset, "item": item, "size": sizes.get(item.image_id)}
        if item.box and tile["size"]:
            x, y, w, h = item.box
            pad = max(16.0, 0.25 * max(w, h))
            width, height = tile["size"]
            left, top = max(0.0, x - pad), max(0.0, y - pad)
            right, bottom = min(float(width), x + w + pad), min(float(height), y + h + pad)
            tile["view"] = f"{left:.1f} {top:.1f} {max(1.0, right - left):.1f} {max(1.0, bottom - top):.1f}"
            if item.mask is not None:
                tile["mask"] = _mask_drawn(item, int(left), int(top), int(np.ceil(right)), int(np.ceil(bottom)))
        out.append(tile)
    return out


def _mask_drawn(item: Item, left: int, top: int, right: int, bottom: int) -> tuple[str, int, int, int, int]:
    """An instance's mask within its crop as a PNG data URL, in the colour of what it is (green right, red wrong,
    blue a missed true object), with where it goes: x, y, width and height in the image's pixels."""
    import base64
    import io

    from PIL import Image as PILImage

    from annotations.geometry import decode_mask

    window = decode_mask(item.mask)[top:bottom, left:right]
    picture = np.zeros((*window.shape, 4), np.uint8)
    picture[window] = MISSED if item.right is None else RIGHT if item.right else PREDICTED_ONLY
    out = io.BytesIO()
    PILImage.fromarray(picture).save(out, "PNG", optimize=True)
    url = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    return url, left, top, window.shape[1], window.shape[0]
