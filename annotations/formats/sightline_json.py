"""Sightline JSON: everything we store, with the seed's `name`, `mainClassificationLabel`, `classificationLabels`."""

from __future__ import annotations

import json

from annotations.formats import fields
from annotations.formats.base import Dataset, DatasetImage, Exported, FormatError, LabelInfo, Shape, Summary

KEY = "json"
VERSION = 1


def write(dataset: Dataset) -> Exported:
    summary = Summary(images=len(dataset.images))
    images = []
    for image in dataset.images:
        summary.shapes += len(image.shapes)
        summary.classifications += len(image.classifications)
        images.append(
            {
                "name": image.name,
                "width": image.width,
                "height": image.height,
                "split": image.split,
                "mainClassificationLabel": image.classifications[0] if image.classifications else None,
                "classificationLabels": image.classifications,
                "shapes": [shape.__dict__ for shape in image.shapes],
            }
        )
    document = {
        "format": "sightline",
        "version": VERSION,
        "labels": [label.__dict__ for label in dataset.labels],
        "images": images,
    }
    content = json.dumps(document, indent=1, allow_nan=False).encode()
    return Exported.of("annotations.json", content, "application/json", summary)


def read(content: bytes, *, known: dict[str, tuple[int, int]] | None = None) -> Dataset:
    try:
        document = json.loads(content, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"Not valid JSON: {exc}") from None
    if not isinstance(document, (dict, list)):
        raise FormatError("The JSON must be an object with 'images', or a list of images.")
    # The seed's clients upload a bare list of images; ours is an object with labels too.
    images = document if isinstance(document, list) else document.get("images")
    if not isinstance(images, list):
        raise FormatError("'images' must be a list.")
    labels = [] if isinstance(document, list) else document.get("labels", [])
    if not isinstance(labels, list):
        raise FormatError("'labels' must be a list.")
    dataset = Dataset(labels=[_label(raw, f"labels[{i}]") for i, raw in enumerate(labels)], splits_known=True)
    dataset.images = [_image(raw, f"images[{i}]") for i, raw in enumerate(images)]
    return dataset


def _refuse_constant(name: str):
    raise FormatError(f"{name} is not a number JSON allows.")


def _label(raw, where: str) -> LabelInfo:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise FormatError(f"{where}: must be an object with a 'name'.")
    template = raw.get("keypoint_template", [])
    if not isinstance(template, list) or not all(isinstance(n, str) for n in template):
        raise FormatError(f"{where}.keypoint_template: must be a list of names.")
    attributes = raw.get("attributes", [])
    if not isinstance(attributes, list) or not all(isinstance(a, dict) for a in attributes):
        raise FormatError(f"{where}.attributes: must be a list of attribute definitions.")
    color = fields.colour(raw["color"], f"{where}.color") if raw.get("color") else None
    return LabelInfo(name=raw["name"], color=color, keypoint_template=template, attributes=attributes)


def _image(raw, where: str) -> DatasetImage:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise FormatError(f"{where}: must be an object with a 'name'.")
    labels = raw.get("classificationLabels", [])
    if not isinstance(labels, list) or not all(isinstance(n, str) for n in labels):
        raise FormatError(f"{where}.classificationLabels: must be a list of label names.")
    main = raw.get("mainClassificationLabel")
    if main is not None and not isinstance(main, str):
        raise FormatError(f"{where}.mainClassificationLabel: must be a label name.")
    ordered = ([main] if main else []) + [n for n in labels if n != main]
    shapes = raw.get("shapes", [])
    if not isinstance(shapes, list):
        raise FormatError(f"{where}.shapes: must be a list.")
    return DatasetImage(
        name=fields.string(raw["name"], f"{where}.name"),
        width=fields.size(raw.get("width"), f"{where}.width"),
        height=fields.size(raw.get("height"), f"{where}.height"),
        split="valid" if raw.get("split") == "valid" else "train",
        classifications=ordered,
        shapes=[_shape(s, f"{where}.shapes[{j}]") for j, s in enumerate(shapes)],
    )


def _shape(raw, where: str) -> Shape:
    if not isinstance(raw, dict):
        raise FormatError(f"{where}: must be an object.")
    for key, kind in (("label", str), ("kind", str), ("geometry", dict)):
        if not isinstance(raw.get(key), kind):
            raise FormatError(f"{where}.{key}: missing or of the wrong type.")
    keypoints = raw.get("keypoints") or []
    if not isinstance(keypoints, list):
        raise FormatError(f"{where}.keypoints: must be a list.")
    source = raw.get("source") or "manual"
    return Shape(
        label=raw["label"],
        kind=raw["kind"],
        geometry=raw["geometry"],
        occluded=bool(raw.get("occluded", False)),
        keypoints=keypoints,
        attributes=fields.json_object(raw.get("attributes"), f"{where}.attributes"),
        source=fields.source(source),
        score=fields.score(raw.get("score"), f"{where}.score"),
    )
