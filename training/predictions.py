"""Predicting with a trained model: image bytes in, labels with scores out, best first.

Loaded checkpoints stay in memory (a few per process), so a stream of predictions pays the
loading once. The bytes are checked like an upload (type, truncation, decompression bombs).
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError

from projects.files import stored_bytes
from projects.imaging import ACCEPTED_FORMATS, ImageRejected, open_guarded
from training.models import ModelVersion, Task

if TYPE_CHECKING:  # torch: imported where a model is loaded
    from training.ml.classification import Classifier
    from training.ml.detection import Detector
    from training.ml.heads import Heads
    from training.ml.instances import InstanceSegmenter
    from training.ml.segmentation import Segmenter

NMS_DEFAULT = 0.40  # spec 004's default (training.ml.detection.NMS_DEFAULT, which imports torch)


@functools.lru_cache(maxsize=4)
def classifier_load(name: str) -> Classifier:
    import torch

    from training.ml.classification import Classifier
    from training.ml.runtime import loaded_objects_freeze

    model = Classifier(torch.load(io.BytesIO(stored_bytes(name)), map_location="cpu", weights_only=True))
    loaded_objects_freeze()  # torch and the model stay loaded: keep the collector off them
    return model


@functools.lru_cache(maxsize=4)
def detector_load(name: str) -> Detector:
    import torch

    from training.ml.detection import Detector
    from training.ml.runtime import loaded_objects_freeze

    model = Detector(torch.load(io.BytesIO(stored_bytes(name)), map_location="cpu", weights_only=True))
    loaded_objects_freeze()
    return model


@functools.lru_cache(maxsize=4)
def heads_load(name: str) -> Heads:
    import torch

    from training.ml.heads import Heads
    from training.ml.runtime import loaded_objects_freeze

    model = Heads(torch.load(io.BytesIO(stored_bytes(name)), map_location="cpu", weights_only=True))
    loaded_objects_freeze()
    return model


@functools.lru_cache(maxsize=4)
def segmenter_load(name: str) -> Segmenter:
    import torch

    from training.ml.runtime import loaded_objects_freeze
    from training.ml.segmentation import Segmenter

    model = Segmenter(torch.load(io.BytesIO(stored_bytes(name)), map_location="cpu", weights_only=True))
    loaded_objects_freeze()
    return model


@functools.lru_cache(maxsize=4)
def instance_segmenter_load(name: str) -> InstanceSegmenter:
    import torch

    from training.ml.instances import InstanceSegmenter
    from training.ml.runtime import loaded_objects_freeze

    model = InstanceSegmenter(torch.load(io.BytesIO(stored_bytes(name)), map_location="cpu", weights_only=True))
    loaded_objects_freeze()
    return model


def upload_read(upload) -> bytes:
    """An uploaded file's bytes, refusing one over the upload limit before reading it into memory."""
    limit = settings.SIGHTLINE_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise ValidationError({"file": [f"The image is {upload.size:,} bytes, more than the limit of {limit:,}."]})
    return upload.read()


def image_check(data: bytes) -> None:
    """Refuse bytes a model should not read, by the same guarded decoder as uploads (limits, damage, format)."""
    try:
        with open_guarded(data, copies=1) as image:
            if image.format not in ACCEPTED_FORMATS:
                raise ImageRejected(f"{image.format} images are not accepted; use JPEG, PNG, WEBP, BMP, TIFF or GIF.")
    except ImageRejected as exc:
        raise ValidationError({"file": [str(exc)]}) from None


def predictions_rank(model: ModelVersion, checkpoint: str, scores: np.ndarray) -> list[dict]:
    """Labels with scores, best first. Multi-label rows say whether each reaches its threshold."""
    thresholds = model.thresholds_for(checkpoint)
    order = np.argsort(-scores, kind="stable")
    out = []
    for i in order:
        row = {"label": model.labels[i], "score": round(float(scores[i]), 6)}
        if thresholds is not None:
            row["threshold"] = round(thresholds[i], 6)
            row["positive"] = bool(scores[i] >= thresholds[i])
        out.append(row)
    return out


def images_predict(*, model: ModelVersion, checkpoint: str, images: list[bytes]) -> list[list[dict]]:
    for data in images:
        image_check(data)
    classifier = classifier_load(model.checkpoint_file(checkpoint).name)
    return [predictions_rank(model, checkpoint, row) for row in classifier.predict(images)]


def boxes_predict(
    *,
    model: ModelVersion,
    checkpoint: str,
    images: list[bytes],
    threshold: float | None = None,
    nms: float = NMS_DEFAULT,
) -> list[list[dict]]:
    """Per image, the boxes that reach their label's threshold (or `threshold` for every label), best first, in
    the pixels of the original image turned upright by its EXIF orientation. A detector with a segmentation head
    answers its boxes, then one mask per label its segmentation head gives any pixel (as masks_predict's, with
    `rle`)."""
    for data in images:
        image_check(data)
    thresholds = [threshold] * len(model.labels) if threshold is not None else model.thresholds_for(checkpoint)
    from training.ml.boxes import boxes_answer

    if model.segmentation_head:
        from training.ml.masks import masks_answer

        both = heads_load(model.checkpoint_file(checkpoint).name).predict(images, score=min(thresholds), nms=nms)
        return [
            boxes_answer(rows, model.labels, thresholds) + masks_answer(pixels.labels, pixels.confidence, model.labels)
            for rows, pixels in both
        ]
    detector = detector_load(model.checkpoint_file(checkpoint).name)
    found = detector.predict(images, score=min(thresholds), nms=nms)
    return [boxes_answer(rows, model.labels, thresholds) for rows in found]


def masks_predict(*, model: ModelVersion, checkpoint: str, images: list[bytes]) -> list[list[dict]]:
    """Per image, one mask per label the semantic segmentation model gives any pixel, most confident first: the
    label, its score (the mean probability over its pixels), its area in pixels, its bounding box, and the mask as
    COCO RLE ({"size": [height, width], "counts": str}) in the pixels of the original image turned upright."""
    for data in images:
        image_check(data)
    from training.ml.masks import masks_answer

    segmenter = segmenter_load(model.checkpoint_file(checkpoint).name)
    return [masks_answer(result.labels, result.confidence, model.labels) for result in segmenter.predict(images)]


def instances_predict(
    *,
    model: ModelVersion,
    checkpoint: str,
    images: list[bytes],
    threshold: float | None = None,
    nms: float = NMS_DEFAULT,
    polygons: bool = True,
) -> list[list[dict]]:
    """Per image, the instances that reach their label's threshold (or `threshold` for every label), best first, in
    the pixels of the original image turned upright: each one's label, score, box (the detector's), area, mask as
    COCO RLE ({"size": [height, width], "counts": str}) and, with `polygons`, the mask traced as polygons, holes
    kept ({"parts": [{"outer", "holes"}]}, as annotations store them), which rasterize back to exactly its pixels."""
    for data in images:
        image_check(data)
    thresholds = [threshold] * len(model.labels) if threshold is not None else model.thresholds_for(checkpoint)
    segmenter = instance_segmenter_load(model.checkpoint_file(checkpoint).name)
    found = segmenter.predict(images, score=min(thresholds), nms=nms)
    from annotations.geometry import polygonize
    from training.ml.instance_masks import instances_answer

    return [instances_answer(image, model.labels, thresholds, polygonize if polygons else None) for image in found]


BOX_FLOOR = 0.05  # the lowest score the predict page's slider reaches
PREVIEW_SIDE = 960


def boxes_shown(*, model: ModelVersion, checkpoint: str, images: list[bytes], names: list[str]) -> list[dict]:
    """A detector's boxes on uploaded images for the predict page, each shown from a downscaled copy, each box in its
    label's colour; the page's slider hides those below its score."""
    colours = dict(model.project.labels.values_list("name", "color"))
    found = boxes_predict(model=model, checkpoint=checkpoint, images=images, threshold=BOX_FLOOR)
    results = []
    for name, raw, answer in zip(names, images, found, strict=True):
        width, height, source = _preview(raw)
        boxes = [item for item in answer if "rle" not in item]
        for box in boxes:
            box["color"] = colours.get(box["label"], "#ff3b30")
        masks = [mask_drawn(item, colours.get(item["label"], "#ff3b30")) for item in answer if "rle" in item]
        results.append(
            {
                "name": name,
                "source": source,
                "width": width,
                "height": height,
                "boxes": boxes,
                "masks": masks,  # a segmentation head's, one per label
                "text_size": text_size(width, height),
            }
        )
    return results


def masks_shown(*, model: ModelVersion, checkpoint: str, images: list[bytes], names: list[str]) -> list[dict]:
    """A segmentation model's masks (one per label, or one per instance) on uploaded images for the predict page:
    the image and each mask as a picture of the preview's size in its label's colour; the page's sliders set their
    opacity and hide those below a score."""
    colours = dict(model.project.labels.values_list("name", "color"))
    if model.task == Task.INSTANCE:
        found = instances_predict(
            model=model, checkpoint=checkpoint, images=images, threshold=BOX_FLOOR, polygons=False
        )
    else:
        found = masks_predict(model=model, checkpoint=checkpoint, images=images)
    results = []
    for name, raw, masks in zip(names, images, found, strict=True):
        width, height, source = _preview(raw)
        results.append(
            {
                "name": name,
                "source": source,
                "width": width,
                "height": height,
                "masks": [mask_drawn(mask, colours.get(mask["label"], "#ff3b30")) for mask in masks],
                "text_size": text_size(width, height),
            }
        )
    return results


def mask_drawn(mask: dict, colour: str) -> dict:
    """A mask answer (label, score, box, rle) with its picture: a PNG data URL, the mask in `colour`, elsewhere
    clear, at most PREVIEW_SIDE px (the page stretches it over the image)."""
    import base64

    from PIL import Image as PILImage

    from annotations.geometry import decode_mask

    shape = PILImage.fromarray(decode_mask(mask["rle"]).astype(np.uint8) * 255)
    shape.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), PILImage.Resampling.NEAREST)  # small first, then coloured
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    picture = PILImage.new("RGBA", shape.size, (red, green, blue, 0))
    picture.putalpha(shape)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return {
        "label": mask["label"],
        "score": mask["score"],
        "color": colour,
        "box": mask["box"],
        "area": mask.get("area"),
        "picture": "data:image/png;base64," + base64.b64encode(out.getvalue()).decode(),
    }


def _preview(data: bytes) -> tuple[int, int, str]:
    """The upright size of image bytes, and a JPEG data URL of it at most PREVIEW_SIDE px, decoded by the guard."""
    import base64

    from PIL import ImageOps

    with open_guarded(data, copies=2) as opened:
        upright = ImageOps.exif_transpose(opened)
        width, height = upright.size
        preview = upright.convert("RGB")
        preview.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        out = io.BytesIO()
        preview.save(out, "JPEG", quality=85)
    return width, height, "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def text_size(width: int, height: int) -> int:
    """The size of a box's label on an image drawn at its own pixels: legible whatever the image's size."""
    return max(8, round(max(width, height) / 45))
