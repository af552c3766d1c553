"""COCO instances: boxes, polygons (as RLE when they have holes), masks as RLE, keypoints, scores.

Boxes are written with their rectangle as the segmentation, so pycocotools draws them; on
import, a segmentation that is exactly its bbox's rectangle is a box again. Polylines, points
and image classifications have no place in COCO and are counted in the summary.
"""

from __future__ import annotations

import json
import shutil
import tempfile

import orjson
from pycocotools import mask as coco_mask

from annotations import geometry as geo
from annotations.formats import fields
from annotations.formats.base import (
    Dataset,
    DatasetImage,
    Exported,
    FormatError,
    LabelInfo,
    Shape,
    Summary,
    archived_images,
    is_zip,
    read_zip,
)

KEY = "coco"
INCLUDES_IMAGES = True  # "Include images": instances.json and images/<file_name> in one ZIP


def image_path(image: DatasetImage) -> str:
    return image.name


VISIBLE, HIDDEN, ABSENT = 2, 1, 0


def write(dataset: Dataset) -> Exported:
    """instances.json, written as the images go by: annotations are encoded and spooled to disk image by image,
    so a project's shapes are never all held, as dicts or as text."""
    summary = Summary(images=len(dataset.images))
    categories = [
        {"id": i, "name": label.name, "supercategory": "", "keypoints": label.keypoint_template, "skeleton": []}
        for i, label in enumerate(dataset.labels, start=1)
    ]
    category_ids = {c["name"]: c["id"] for c in categories}
    templates = {label.name: label.keypoint_template for label in dataset.labels}
    images = []
    with tempfile.TemporaryFile() as spooled:
        for image_id, image in enumerate(dataset.images, start=1):
            images.append({"id": image_id, "file_name": image.name, "width": image.width, "height": image.height})
            if image.classifications:
                summary.cannot_hold("image classification labels (COCO instances has none)", len(image.classifications))
            for shape in image.shapes:
                entry = _annotation(shape, image, templates.get(shape.label, []), summary)
                if entry is None:
                    continue
                summary.shapes += 1
                entry.update({"id": summary.shapes, "image_id": image_id, "category_id": category_ids[shape.label]})
                spooled.write(b"," if summary.shapes > 1 else b"")
                spooled.write(orjson.dumps(entry))
        out = tempfile.TemporaryFile()
        head = {"info": {"description": "Exported from Sightline", "version": "1.0"}, "licenses": [], "images": images}
        out.write(orjson.dumps(head)[:-1] + b', "annotations": [')
        spooled.seek(0)
        shutil.copyfileobj(spooled, out, 1024 * 1024)
        out.write(b'], "categories": ' + orjson.dumps(categories) + b"}")
    out.seek(0)
    return Exported("instances.json", out, "application/json", summary)


def _annotation(shape: Shape, image: DatasetImage, template: list[str], summary: Summary) -> dict | None:
    if shape.kind in {"polyline", "points"}:
        summary.cannot_hold(f"{shape.kind} objects (COCO instances has no {shape.kind})")
        return None
    x, y, w, h = geo.bbox(shape.kind, shape.geometry)
    if shape.kind == "box":
        segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        area = w * h
    elif shape.kind == "polygon" and not any(part["holes"] for part in shape.geometry["parts"]):
        segmentation = [[c for point in part["outer"] for c in point] for part in shape.geometry["parts"]]
        area = float(coco_mask.area(coco_mask.merge(coco_mask.frPyObjects(segmentation, image.height, image.width))))
    else:  # masks, and polygons with holes, which COCO polygons cannot hold
        rle = (
            shape.geometry["rle"]
            if shape.kind == "mask"
            else geo.rasterize("polygon", shape.geometry, width=image.width, height=image.height)["rle"]
        )
        segmentation = {"size": rle["size"], "counts": rle["counts"]}
        area = float(coco_mask.area({"size": rle["size"], "counts": rle["counts"].encode()}))
    entry = {
        "segmentation": segmentation,
        "area": area,
        "bbox": [x, y, w, h],
        "iscrowd": 0,
        "attributes": {**shape.attributes, "occluded": shape.occluded, "source": shape.source},
    }
    if shape.score is not None:
        entry["score"] = shape.score
    if template:
        by_name = {k["name"]: k for k in shape.keypoints}
        flat = []
        for name in template:
            point = by_name.get(name)
            flat += (
                [0, 0, ABSENT] if point is None else [point["x"], point["y"], VISIBLE if point["visible"] else HIDDEN]
            )
        entry["keypoints"] = flat
        entry["num_keypoints"] = sum(1 for v in flat[2::3] if v != ABSENT)
    return entry


def read(content: bytes, *, known: dict[str, tuple[int, int]] | None = None) -> Dataset:
    """A COCO JSON file, or a ZIP with one JSON file and the images in `images/` (as Include images writes it)."""
    carried = {}
    if is_zip(content):
        files = read_zip(content)
        documents = [path for path in files if path.endswith(".json")]
        if len(documents) != 1:
            raise FormatError(f"The ZIP needs exactly one COCO .json file; it has {len(documents)}.")
        content, carried = files[documents[0]], archived_images(files)
    dataset = _read_json(content)
    for image in dataset.images:
        image.load = carried.get(image.name)  # read when it is stored, one image at a time
    return dataset


def _read_json(content: bytes) -> Dataset:
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"Not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise FormatError("A COCO file is a JSON object with images, annotations and categories.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(document.get(key), list):
            raise FormatError(f"'{key}' must be a list.")
    labels, by_category = [], {}
    for i, category in enumerate(document["categories"]):
        if not isinstance(category, dict) or "id" not in category or not isinstance(category.get("name"), str):
            raise FormatError(f"categories[{i}]: needs an id and a name.")
        names = category.get("keypoints") or []
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise FormatError(f'categories[{i}].keypoints: expected a list of keypoint names, like ["nose", "tail"].')
        label = LabelInfo(name=fields.string(category["name"], f"categories[{i}].name"), keypoint_template=list(names))
        labels.append(label)
        by_category[fields.identifier(category["id"], f"categories[{i}].id")] = label
    images = {}
    for i, raw in enumerate(document["images"]):
        if not isinstance(raw, dict) or "id" not in raw or not isinstance(raw.get("file_name"), str):
            raise FormatError(f"images[{i}]: needs an id and a file_name.")
        images[fields.identifier(raw["id"], f"images[{i}].id")] = DatasetImage(
            name=fields.string(raw["file_name"], f"images[{i}].file_name"),
            width=fields.size(raw.get("width"), f"images[{i}].width"),
            height=fields.size(raw.get("height"), f"images[{i}].height"),
        )
    for i, raw in enumerate(document["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(raw, dict):
            raise FormatError(f"{where}: must be an object.")
        image = images.get(fields.identifier(raw.get("image_id"), f"{where}.image_id"))
        if image is None:
            raise FormatError(f"{where}.image_id: {raw.get('image_id')!r} is not in 'images'.")
        label = by_category.get(fields.identifier(raw.get("category_id"), f"{where}.category_id"))
        if label is None:
            raise FormatError(f"{where}.category_id: {raw.get('category_id')!r} is not in 'categories'.")
        image.shapes.append(_shape(raw, image, label, where))
    return Dataset(labels=labels, images=list(images.values()))


def _shape(raw: dict, image: DatasetImage, label: LabelInfo, where: str) -> Shape:
    attributes = dict(fields.json_object(raw.get("attributes"), f"{where}.attributes"))
    occluded = bool(attributes.pop("occluded", False))
    source = attributes.pop("source", "manual")
    shape = Shape(
        label=label.name,
        kind="",
        geometry={},
        occluded=occluded,
        attributes=attributes,
        source=fields.source(source),
        score=fields.score(raw.get("score"), f"{where}.score"),
    )
    segmentation, bbox = raw.get("segmentation"), raw.get("bbox")
    if bbox is not None:
        bbox = fields.numbers(bbox, f"{where}.bbox", count=4)
    if isinstance(segmentation, dict):
        shape.kind, shape.geometry = "mask", {"rle": _rle(segmentation, f"{where}.segmentation")}
    elif isinstance(segmentation, list) and segmentation:
        if not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation):
            raise FormatError(f"{where}.segmentation: each polygon is a flat list of at least 3 x, y pairs.")
        segmentation = [fields.numbers(p, f"{where}.segmentation[{i}]") for i, p in enumerate(segmentation)]
        if _is_bbox_rectangle(segmentation, bbox):
            shape.kind, shape.geometry = "box", dict(zip(("x", "y", "width", "height"), bbox, strict=True))
        else:
            parts = [{"outer": [[p[j], p[j + 1]] for j in range(0, len(p), 2)], "holes": []} for p in segmentation]
            shape.kind, shape.geometry = "polygon", {"parts": parts}
    elif bbox is not None:
        shape.kind, shape.geometry = "box", dict(zip(("x", "y", "width", "height"), bbox, strict=True))
    else:
        raise FormatError(f"{where}: needs a segmentation or a bbox.")
    shape.keypoints = _keypoints(raw.get("keypoints"), label.keypoint_template, where)
    return shape


def _rle(segmentation: dict, where: str) -> dict:
    """COCO RLE, compressed (a string) or not (a list of run lengths, as crowd annotations use)."""
    size = segmentation.get("size")
    if not (isinstance(size, list) and len(size) == 2):
        raise FormatError(f"{where}: RLE needs 'size' as [height, width] and 'counts'.")
    height, width = (fields.size(v, f"{where}.size[{i}]") for i, v in enumerate(size))
    counts = segmentation.get("counts")
    if isinstance(counts, list):
        runs = [fields.integer(v, f"{where}.counts[{i}]", minimum=0) for i, v in enumerate(counts)]
        if sum(runs) != height * width:
            raise FormatError(f"{where}.counts: the runs cover {sum(runs)} pixels, not {height} x {width}.")
        counts = coco_mask.frPyObjects({"size": [height, width], "counts": runs}, height, width)["counts"].decode()
    if not isinstance(counts, str) or not counts.isascii() or "\x00" in counts:
        raise FormatError(f"{where}: RLE needs 'size' and 'counts'.")
    return {"size": [height, width], "counts": counts}


def _is_bbox_rectangle(segmentation: list, bbox) -> bool:
    if len(segmentation) != 1 or len(segmentation[0]) != 8 or not (isinstance(bbox, list) and len(bbox) == 4):
        return False
    x, y, w, h = bbox
    return segmentation[0] == [x, y, x + w, y, x + w, y + h, x, y + h]


def _keypoints(flat, template: list[str], where: str) -> list[dict]:
    if not flat:
        return []
    if not isinstance(flat, list) or len(flat) != 3 * len(template):
        raise FormatError(f"{where}.keypoints: expected {len(template)} x, y, v triples for its category.")
    flat = fields.numbers(flat, f"{where}.keypoints")
    out = []
    for name, (x, y, v) in zip(template, zip(flat[0::3], flat[1::3], flat[2::3], strict=True), strict=True):
        if v != ABSENT:
            out.append({"name": name, "x": x, "y": y, "visible": v == VISIBLE})
    return out
