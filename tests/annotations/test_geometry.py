"""Geometry rules as tables and properties: validation, rasterizing as pycocotools does, tracing masks back."""

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from annotations.geometry import GeometryError, bbox, decode_mask, encode_mask, polygonize, rasterize, validate


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(bad):
    with pytest.raises(GeometryError, match="^box x must be a finite number$"):
        validate("box", {"x": bad, "y": 0, "width": 1, "height": 1}, width=10, height=10)
    with pytest.raises(GeometryError, match="^polyline point 1 x must be a finite number$"):
        validate("polyline", {"points": [[0, 0], [bad, 1]]}, width=10, height=10)


def test_booleans_are_not_numbers():
    with pytest.raises(GeometryError, match="^box x must be a number$"):
        validate("box", {"x": True, "y": 0, "width": 1, "height": 1}, width=10, height=10)


def test_a_ring_clipped_onto_one_edge_has_no_area():
    with pytest.raises(GeometryError, match="^polygon part 0 outer ring has no area"):
        validate("polygon", {"parts": [{"outer": [[20, 0], [30, 5], [25, 9]]}]}, width=10, height=10)


def test_rasterized_polygons_match_pycocotools_for_coco_polygons():
    ring = [[2.5, 1.0], [17.2, 3.3], [12.0, 14.9], [3.1, 11.0]]
    ours = decode_mask(rasterize("polygon", {"parts": [{"outer": ring, "holes": []}]}, width=20, height=16)["rle"])
    flat = [c for p in ring for c in p]
    theirs = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([flat], 16, 20))).astype(bool)
    assert np.array_equal(ours, theirs)
    assert int(ours.sum()) == int(theirs.sum()) > 100


def test_rasterize_box_and_polygon_with_holes_and_parts():
    box = decode_mask(rasterize("box", {"x": 1, "y": 1, "width": 3, "height": 2}, width=6, height=5)["rle"])
    assert box.astype(int).tolist() == [
        [0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    polygon = {
        "parts": [
            {"outer": [[0, 0], [8, 0], [8, 8], [0, 8]], "holes": [[[2, 2], [6, 2], [6, 6], [2, 6]]]},
            {"outer": [[3, 3], [5, 3], [5, 5], [3, 5]], "holes": []},  # an island inside the hole
        ]
    }
    mask = decode_mask(rasterize("polygon", polygon, width=10, height=10)["rle"])
    assert int(mask.sum()) == 64 - 16 + 4
    assert mask[4, 4] and not mask[2, 2] and mask[0, 0] and not mask[9, 9]


def test_polygonize_traces_pixel_edges_exactly_with_holes():
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:35, 10:45] = True
    mask[12:20, 15:30] = False
    traced = polygonize({"rle": encode_mask(mask)})
    [part] = traced["parts"]
    assert sorted(part["outer"]) == [[10.0, 5.0], [10.0, 35.0], [45.0, 5.0], [45.0, 35.0]]
    assert len(part["holes"]) == 1
    assert np.array_equal(decode_mask(rasterize("polygon", traced, width=50, height=40)["rle"]), mask)


def test_polygonize_keeps_pixels_joined_only_at_a_corner():
    """Contour tracing loses a pixel that touches the rest at a corner only (its outline is a spike of no area); the
    traced polygons still rasterize to exactly the mask, on a square with a corner pixel and on random noise."""
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:20, 10:20] = True
    mask[20, 20] = True  # touches the square's corner
    traced = polygonize({"rle": encode_mask(mask)})
    assert np.array_equal(decode_mask(rasterize("polygon", traced, width=50, height=40)["rle"]), mask)
    thin = np.zeros((40, 50), dtype=bool)
    thin[30, 5:25] = True  # a line one pixel thick
    thin[[3, 4, 5, 6], [40, 41, 42, 43]] = True  # a diagonal of single pixels
    traced = polygonize({"rle": encode_mask(thin)})
    assert np.array_equal(decode_mask(rasterize("polygon", traced, width=50, height=40)["rle"]), thin)
    noise = np.zeros((40, 50), dtype=bool)
    noise[5:35, 5:45] = np.random.default_rng(3).random((30, 40)) < 0.6
    traced = polygonize({"rle": encode_mask(noise)})
    assert np.array_equal(decode_mask(rasterize("polygon", traced, width=50, height=40)["rle"]), noise)


def test_polygonize_mends_until_exact_where_a_mended_outline_meets_a_slanted_edge():
    """A mask a model predicted: mending its missed pixels once left a slanted edge that missed one more pixel; and
    smooth random blobs, as predicted masks are, which must all round-trip exactly."""
    predicted = {"size": [120, 160], "counts": "nS81f34M1O00000000O[g0LjXO00000O100O10000O1N200O1O1O100O1O1O1O1N1``6"}
    mask = decode_mask(predicted)
    assert int(mask.sum()) == 167
    traced = polygonize({"rle": predicted})
    assert np.array_equal(decode_mask(rasterize("polygon", traced, width=160, height=120)["rle"]), mask)
    rng = np.random.default_rng(11)
    for _ in range(40):
        noise = cv2.GaussianBlur(rng.random((60, 80)).astype(np.float32), (0, 0), float(rng.uniform(1.5, 4)))
        blob = noise > np.quantile(noise, rng.uniform(0.5, 0.9))
        traced = polygonize({"rle": encode_mask(blob)})
        assert np.array_equal(decode_mask(rasterize("polygon", traced, width=80, height=60)["rle"]), blob)


def test_a_mask_mending_cannot_fix_is_traced_as_its_pixels_rows(monkeypatch):
    from annotations import geometry

    monkeypatch.setattr(geometry, "MENDING_ROUNDS", 0)  # straight to the last resort
    noise = np.zeros((40, 50), dtype=bool)
    noise[5:35, 5:45] = np.random.default_rng(4).random((30, 40)) < 0.6
    traced = polygonize({"rle": encode_mask(noise)})
    assert np.array_equal(decode_mask(rasterize("polygon", traced, width=50, height=40)["rle"]), noise)
    assert all(x == int(x) and y == int(y) for part in traced["parts"] for x, y in part["outer"])  # pixel edges


def test_simplify_trades_vertices_for_detail():
    yy, xx = np.mgrid[:200, :200]
    disc = (yy - 100) ** 2 + (xx - 100) ** 2 <= 60**2
    counts = []
    for simplify in (0.0, 1.0, 3.0):
        traced = polygonize({"rle": encode_mask(disc)}, simplify=simplify)
        again = decode_mask(rasterize("polygon", traced, width=200, height=200)["rle"])
        iou = (again & disc).sum() / (again | disc).sum()
        counts.append(len(traced["parts"][0]["outer"]))
        assert iou > {0.0: 0.99, 1.0: 0.98, 3.0: 0.95}[simplify]
    assert counts[0] > counts[1] > counts[2]


def test_bbox_of_every_kind():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:5, 3:9] = True
    assert bbox("mask", {"rle": encode_mask(mask)}) == (3.0, 2.0, 6.0, 3.0)
    assert bbox("polyline", {"points": [[1, 2], [4, 8]]}) == (1, 2, 3, 6)
    assert bbox("box", {"x": 1, "y": 2, "width": 3, "height": 4}) == (1, 2, 3, 4)


rectangles = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(2, 20), st.integers(2, 20)), min_size=1, max_size=4
)


@settings(max_examples=60, deadline=None)
@given(rectangles)
def test_any_union_of_rectangles_survives_a_trace_and_rasterize_round_trip(rects):
    mask = np.zeros((48, 48), dtype=bool)
    for x, y, w, h in rects:
        mask[y : y + h, x : x + w] = True
    traced = polygonize({"rle": encode_mask(mask)})
    again = decode_mask(rasterize("polygon", traced, width=48, height=48)["rle"])
    iou = (again & mask).sum() / (again | mask).sum()
    assert iou >= 0.97


BOWTIE = {"parts": [{"outer": [[0, 0], [10, 10], [10, 0], [0, 6]], "holes": []}]}


def test_a_self_intersecting_polygon_is_refused_with_shapelys_reason():
    with pytest.raises(GeometryError) as caught:
        validate("polygon", BOWTIE, width=20, height=20)
    assert str(caught.value) == (
        "polygon part 0 is not a valid polygon (Self-intersection[3.75 3.75]); fix it, or send "
        '"repair": true to have it split into valid parts'
    )


def test_a_self_intersecting_polygon_is_made_valid_on_request():
    repaired = validate("polygon", BOWTIE, width=20, height=20, repair=True)
    assert sorted(sorted(map(tuple, part["outer"])) for part in repaired["parts"]) == [
        [(0.0, 0.0), (0.0, 6.0), (3.75, 3.75)],
        [(3.75, 3.75), (10.0, 0.0), (10.0, 10.0)],
    ]
    assert [part["holes"] for part in repaired["parts"]] == [[], []]


def test_a_hole_outside_its_outer_ring_is_refused():
    polygon = {"parts": [{"outer": [[0, 0], [10, 0], [10, 10], [0, 10]], "holes": [[[12, 12], [15, 12], [15, 15]]]}]}
    with pytest.raises(GeometryError, match=r"^polygon part 0 is not a valid polygon \(Hole lies outside shell"):
        validate("polygon", polygon, width=20, height=20)
