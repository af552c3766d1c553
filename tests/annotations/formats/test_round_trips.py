"""Every format reads back what it wrote, for everything it can hold (property tests), and counts the rest."""

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from pycocotools.coco import COCO

from annotations import geometry as geo
from annotations.formats import classification_zip, coco, csv_labels, masks, sightline_json, voc, yolo
from annotations.formats.base import FormatError
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
                before.label,
                before.occluded,
                before.attributes,
                before.source,
                before.score,
            )
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


def held(dataset, kinds):
    return [[s for s in image.shapes if s.kind in kinds] for image in dataset.images]


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_yolo_keeps_boxes(dataset):
    exported = yolo.detection.write(dataset)
    back = yolo.detection.read(exported.content, known=known(dataset))
    assert sorted(i.name for i in back.images) == sorted(i.name for i in dataset.images)
    restored = {i.name: i.shapes for i in back.images}
    for image, boxes in zip(dataset.images, held(dataset, {"box"}), strict=True):
        assert [(s.label, s.geometry) for s in restored[image.name]] == [(s.label, s.geometry) for s in boxes]
    others = sum(1 for i in dataset.images for s in i.shapes if s.kind != "box")
    assert sum(v for k, v in exported.summary.not_held.items() if k.endswith("(yolo holds boxes only)")) == others


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_yolo_seg_keeps_polygon_outlines(dataset):
    exported = yolo.segmentation.write(dataset)
    back = {i.name: i.shapes for i in yolo.segmentation.read(exported.content, known=known(dataset)).images}
    for image, polygons in zip(dataset.images, held(dataset, {"polygon"}), strict=True):
        expected = [(s.label, {"parts": [{"outer": s.geometry["parts"][0]["outer"], "holes": []}]}) for s in polygons]
        assert [(s.label, s.geometry) for s in back[image.name]] == expected
    holes = sum(
        len(p["holes"]) for i in dataset.images for s in i.shapes if s.kind == "polygon" for p in s.geometry["parts"]
    )
    assert exported.summary.not_held.get("polygon holes (yolo-seg has none; the outlines are kept)", 0) == holes


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_voc_keeps_boxes_with_occlusion_source_and_score(dataset):
    back = {i.name: i.shapes for i in voc.read(voc.write(dataset).content, known=known(dataset)).images}
    for image, boxes in zip(dataset.images, held(dataset, {"box"}), strict=True):
        assert [(s.label, s.geometry, s.occluded, s.source, s.score) for s in back[image.name]] == [
            (s.label, s.geometry, s.occluded, s.source, s.score) for s in boxes
        ]


@settings(max_examples=30, deadline=None)
@given(datasets())
def test_png_masks_keep_every_visible_pixel_of_every_area_object(dataset):
    exported = masks.png_masks.write(dataset)
    back = {i.name: i.shapes for i in masks.png_masks.read(exported.content, known=known(dataset)).images}
    hidden = 0
    for image, areas in zip(dataset.images, held(dataset, {"box", "polygon", "mask"}), strict=True):
        drawn = [pixels(s, image) for s in areas]
        expected = []
        for index, (shape, mask) in enumerate(zip(areas, drawn, strict=True)):
            visible = mask & ~np.logical_or.reduce([np.zeros_like(mask), *drawn[index + 1 :]])
            if visible.any():
                expected.append((shape.label, visible))
            else:
                hidden += 1
        restored = back[image.name]
        assert [s.label for s in restored] == [label for label, _ in expected]
        for shape, (_, visible) in zip(restored, expected, strict=True):
            assert np.array_equal(geo.decode_mask(shape.geometry["rle"]), visible)
    assert exported.summary.not_held.get("objects wholly covered by later objects (one colour per pixel)", 0) == hidden


@settings(max_examples=30, deadline=None)
@given(datasets())
def test_bw_masks_keep_every_area_object_whole(dataset):
    areas = held(dataset, {"box", "polygon", "mask"})
    if not any(areas):
        with pytest.raises(FormatError, match="No object can be written as a black/white mask"):
            masks.bw_masks.write(dataset)
        return
    back = {
        i.name: i.shapes
        for i in masks.bw_masks.read(masks.bw_masks.write(dataset).content, known=known(dataset)).images
    }
    for image, shapes in zip(dataset.images, areas, strict=True):
        expected = sorted((s.label, pixels(s, image).tobytes()) for s in shapes)
        got = sorted((s.label, geo.decode_mask(s.geometry["rle"]).tobytes()) for s in back.get(image.name, []))
        assert got == expected


@settings(max_examples=30, deadline=None)
@given(datasets())
def test_classification_zip_keeps_labels_defaults_and_splits(dataset):
    for index, image in enumerate(dataset.images):
        image.content = f"bytes of image {index}".encode()
    back = classification_zip.read(classification_zip.write(dataset).content, known=known(dataset))
    assert back.splits_known is True
    restored = {i.name: i for i in back.images}
    for image in dataset.images:
        # The default comes first; folders cannot order the others, and the database sorts them by name anyway.
        got = restored[image.name].classifications
        assert (got[:1], sorted(got[1:]), restored[image.name].split) == (
            image.classifications[:1],
            sorted(image.classifications[1:]),
            image.split,
        )
        assert restored[image.name].sha256 == hashlib.sha256(image.content).hexdigest()


def test_coco_keypoint_names_given_as_a_string_are_refused_not_split_into_letters():
    document = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "bird", "keypoints": "beak"}]}
    with pytest.raises(FormatError) as refused:
        coco.read(json.dumps(document).encode())
    assert str(refused.value) == 'categories[0].keypoints: expected a list of keypoint names, like ["nose", "tail"].'
    document["categories"][0]["keypoints"] = ["beak", "tail"]
    assert coco.read(json.dumps(document).encode()).labels[0].keypoint_template == ["beak", "tail"]
