"""Every format reads back what it wrote, for everything it can hold (property tests), and counts the rest."""

import json

import numpy as np
from hypothesis import given, settings
from pycocotools.coco import COCO

from annotations import geometry as geo
from annotations.formats import coco, csv_labels, sightline_json
from tests.annotations.formats.strategies import datasets


def known(dataset):
    return {image.name: (image.width, image.height) for image in dataset.images}


def pixels(shape, image):
    if shape.kind == "mask":
        return geo.decode_mask(shape.geometry["rle"])
    return geo.decode_mask(geo.rasterize(shape.kind, shape.geometry, width=image.width, height=image.height)["rle"])


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_json_keeps_everything(dataset):
    back = sightline_json.read(sightline_json.write(dataset).content, known=known(dataset))
    assert back.labels == dataset.labels
    assert back.images == dataset.images


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_csv_keeps_classification_labels_and_counts_the_objects_it_cannot_hold(dataset):
    exported = csv_labels.write(dataset)
    back = csv_labels.read(exported.content, known=known(dataset))
    assert [(i.name, i.classifications) for i in back.images] == [(i.name, i.classifications) for i in dataset.images]
    objects = sum(len(i.shapes) for i in dataset.images)
    assert exported.summary.not_held == ({"objects (CSV holds classification labels only)": objects} if objects else {})


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_coco_keeps_boxes_polygons_masks_and_keypoints(dataset):
    exported = coco.write(dataset)
    back = coco.read(exported.content, known=known(dataset))
    assert [i.name for i in back.images] == [i.name for i in dataset.images]
    for original, restored in zip(dataset.images, back.images, strict=True):
        held = [s for s in original.shapes if s.kind in {"box", "polygon", "mask"}]
        assert len(restored.shapes) == len(held)
        for before, after in zip(held, restored.shapes, strict=True):
            holes = before.kind == "polygon" and any(p["holes"] for p in before.geometry["parts"])
            assert after.kind == ("mask" if holes else before.kind)
            if not holes:
                assert after.geometry == before.geometry
            assert np.array_equal(pixels(after, original), pixels(before, original))
            assert (after.label, after.occluded, after.attributes, after.source, after.score) == (
                before.label, before.occluded, before.attributes, before.source, before.score,
            )  # fmt: skip
            assert after.keypoints == before.keypoints
    lines = sum(1 for i in dataset.images for s in i.shapes if s.kind == "polyline")
    points = sum(1 for i in dataset.images for s in i.shapes if s.kind == "points")
    classes = sum(len(i.classifications) for i in dataset.images)
    expected = {
        "polyline objects (COCO instances has no polyline)": lines,
        "points objects (COCO instances has no points)": points,
        "image classification labels (COCO instances has none)": classes,
    }
    assert exported.summary.not_held == {k: v for k, v in expected.items() if v}


@settings(max_examples=25, deadline=None)
@given(dataset=datasets())
def test_coco_output_loads_in_pycocotools_with_our_masks_pixel_for_pixel(tmp_path_factory, dataset):
    path = tmp_path_factory.mktemp("coco") / "instances.json"
    path.write_bytes(coco.write(dataset).content)
    api = COCO(str(path))
    held = [(image, s) for image in dataset.images for s in image.shapes if s.kind in {"box", "polygon", "mask"}]
    annotations = api.loadAnns(api.getAnnIds())
    assert len(annotations) == len(held)
    for (image, shape), annotation in zip(held, annotations, strict=True):
        assert np.array_equal(api.annToMask(annotation).astype(bool), pixels(shape, image))
    assert json.loads(path.read_text())["categories"][0]["keypoints"] == ["left eye", "right eye"]
