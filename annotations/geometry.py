"""Shapes in image pixels: validation with clipping, rasterizing to masks and tracing masks back to polygons.

Pure numpy / pycocotools / OpenCV / shapely; no Django. A pixel (row i, column j) covers
[j, j+1] x [i, i+1], as in COCO, so rasterizing here and in pycocotools agree pixel for pixel.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask
from shapely.geometry import MultiPolygon, Polygon
from shapely.validation import explain_validity, make_valid

KINDS = ("box", "polygon", "polyline", "points", "mask")
KEYPOINT_KINDS = {"box", "polygon"}


class GeometryError(ValueError):
    """The geometry is not acceptable; the message says what is wrong, for a person."""


# --- validation ------------------------------------------------------------------------------


def validate(kind: str, geometry: Any, *, width: int, height: int, repair: bool = False) -> dict:
    """Check a shape and return it normalised: numbers as floats, coordinates clipped to the image. A polygon
    must be valid as shapely defines it (no self-intersection); with `repair`, an invalid one is made valid."""
    if kind not in KINDS:
        raise GeometryError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if not isinstance(geometry, dict):
        raise GeometryError("geometry must be a JSON object")
    if kind == "polygon":
        return _polygon(geometry, width, height, repair=repair)
    return _VALIDATORS[kind](geometry, width, height)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GeometryError(f"{what} must be a number")
    if not math.isfinite(value):
        raise GeometryError(f"{what} must be a finite number")
    return float(value)


def _points(value: Any, what: str, minimum: int, width: int, height: int) -> list[list[float]]:
    if not isinstance(value, list):
        raise GeometryError(f"{what} must be a list of [x, y] points")
    if len(value) < minimum:
        raise GeometryError(f"{what} needs at least {minimum} points, got {len(value)}")
    # Fast path for the common case (labelers save thousands of vertices a second); anything
    # unusual falls through to the point-by-point check, which names the bad point.
    try:
        array = np.asarray(value)
    except ValueError:
        array = None
    if array is not None and array.dtype.kind in "iuf" and array.ndim == 2 and array.shape[1] == 2:
        array = array.astype(np.float64)
        if np.isfinite(array).all():
            # ufuncs directly: np.clip's Python wrapper costs more than the clipping here.
            np.maximum(array, 0.0, out=array)
            np.minimum(array, (float(width), float(height)), out=array)
            return array.tolist()
    out = []
    for index, point in enumerate(value):
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise GeometryError(f"{what} point {index} must be [x, y]")
        x = _number(point[0], f"{what} point {index} x")
        y = _number(point[1], f"{what} point {index} y")
        out.append([min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))])
    return out


def _ring_area(ring: list[list[float]]) -> float:
    """Shoelace formula; plain Python beats numpy for the few dozen vertices a ring has."""
    twice = 0.0
    previous_x, previous_y = ring[-1]
    for x, y in ring:
        twice += previous_x * y - x * previous_y
        previous_x, previous_y = x, y
    return abs(twice) / 2


def _ring(value: Any, what: str, width: int, height: int) -> list[list[float]]:
    ring = _points(value, what, 3, width, height)
    if _ring_area(ring) == 0:
        raise GeometryError(f"{what} has no area (inside the image)")
    return ring


def _box(geometry: dict, width: int, height: int) -> dict:
    _only(geometry, {"x", "y", "width", "height"}, "box")
    x, y = _number(geometry.get("x"), "box x"), _number(geometry.get("y"), "box y")
    w, h = _number(geometry.get("width"), "box width"), _number(geometry.get("height"), "box height")
    if w <= 0 or h <= 0:
        raise GeometryError("box width and height must be positive")
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 <= x0 or y1 <= y0:
        raise GeometryError("box lies outside the image")
    return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}


def _polygon(geometry: dict, width: int, height: int, *, repair: bool = False) -> dict:
    _only(geometry, {"parts"}, "polygon")
    parts = geometry.get("parts")
    if not isinstance(parts, list) or not parts:
        raise GeometryError("polygon needs a non-empty list of parts")
    out = []
    for p, part in enumerate(parts):
        if not isinstance(part, dict):
            raise GeometryError(f"polygon part {p} must be an object with outer and holes")
        _only(part, {"outer", "holes"}, f"polygon part {p}")
        holes = part.get("holes", [])
        if not isinstance(holes, list):
            raise GeometryError(f"polygon part {p} holes must be a list of rings")
        outer = _ring(part.get("outer"), f"polygon part {p} outer ring", width, height)
        rings = [_ring(hole, f"polygon part {p} hole {h}", width, height) for h, hole in enumerate(holes)]
        if len(outer) == 3 and not rings:  # a triangle with an area is always valid: skip shapely's check
            out.append({"outer": outer, "holes": []})
            continue
        shape = Polygon(outer, rings)
        if shape.is_valid:
            out.append({"outer": outer, "holes": rings})
        elif repair:
            out.extend(_valid_parts(shape))
        else:
            raise GeometryError(
                f"polygon part {p} is not a valid polygon ({explain_validity(shape)}); fix it, or send "
                '"repair": true to have it split into valid parts'
            )
    if not out:
        raise GeometryError("polygon has no area once made valid")
    return {"parts": out}


def _valid_parts(polygon: Polygon) -> list[dict]:
    """The polygon made valid (shapely's make_valid), as parts with an area; lines and points it yields go."""
    parts = []
    fixed = make_valid(polygon)
    for piece in getattr(fixed, "geoms", [fixed]):
        if isinstance(piece, MultiPolygon):
            parts.extend(_part(p) for p in piece.geoms if p.area > 0)
        elif isinstance(piece, Polygon) and piece.area > 0:
            parts.append(_part(piece))
    return parts


def _polyline(geometry: dict, width: int, height: int) -> dict:
    _only(geometry, {"points"}, "polyline")
    return {"points": _points(geometry.get("points"), "polyline", 2, width, height)}


def _points_shape(geometry: dict, width: int, height: int) -> dict:
    _only(geometry, {"points"}, "points")
    return {"points": _points(geometry.get("points"), "points", 1, width, height)}


def _mask(geometry: dict, width: int, height: int) -> dict:
    _only(geometry, {"rle"}, "mask")
    rle = geometry.get("rle")
    if not isinstance(rle, dict) or not isinstance(rle.get("counts"), str) or not isinstance(rle.get("size"), list):
        raise GeometryError('mask needs "rle": {"size": [height, width], "counts": "<COCO compressed RLE>"}')
    if [int(v) if isinstance(v, (int, float)) else v for v in rle["size"]] != [height, width]:
        raise GeometryError(f"mask size {rle['size']} is not the image's [height, width] = [{height}, {width}]")
    try:
        decoded = decode_mask({"size": [height, width], "counts": rle["counts"]})
    except Exception:  # pycocotools raises plain Exceptions for bad counts
        raise GeometryError("mask counts are not valid COCO compressed RLE") from None
    # pycocotools decodes some garbage without complaint; a valid RLE re-encodes to itself.
    if encode_mask(decoded)["counts"] != rle["counts"]:
        raise GeometryError("mask counts are not valid COCO compressed RLE")
    if not decoded.any():
        raise GeometryError("mask is empty")
    return {"rle": {"size": [height, width], "counts": rle["counts"]}}


def _only(geometry: dict, allowed: set[str], what: str) -> None:
    unknown = sorted(set(geometry) - allowed)
    if unknown:
        raise GeometryError(f"{what} has unknown fields: {', '.join(unknown)}")


_VALIDATORS = {"box": _box, "polygon": _polygon, "polyline": _polyline, "points": _points_shape, "mask": _mask}


def validate_keypoints(kind: str, keypoints: Any, *, width: int, height: int) -> list[dict]:
    if keypoints in (None, []):
        return []
    if kind not in KEYPOINT_KINDS:
        raise GeometryError(f"keypoints belong to boxes and polygons, not to a {kind}")
    if not isinstance(keypoints, list):
        raise GeometryError("keypoints must be a list")
    out = []
    for index, point in enumerate(keypoints):
        if not isinstance(point, dict) or not isinstance(point.get("name"), str) or not point["name"].strip():
            raise GeometryError(f"keypoint {index} needs a name")
        visible = point.get("visible", True)
        if not isinstance(visible, bool):
            raise GeometryError(f"keypoint {index} visible must be true or false")
        x = min(max(_number(point.get("x"), f"keypoint {index} x"), 0.0), float(width))
        y = min(max(_number(point.get("y"), f"keypoint {index} y"), 0.0), float(height))
        out.append({"name": point["name"].strip(), "x": x, "y": y, "visible": visible})
    return out


# --- masks -----------------------------------------------------------------------------------


def encode_mask(mask: np.ndarray) -> dict:
    """A boolean/0-1 array of shape (height, width) as COCO compressed RLE with str counts."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict) -> np.ndarray:
    counts = rle["counts"].encode("ascii") if isinstance(rle["counts"], str) else rle["counts"]
    return coco_mask.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)


def bbox(kind: str, geometry: dict) -> tuple[float, float, float, float]:
    """x, y, width, height of any shape."""
    if kind == "box":
        return geometry["x"], geometry["y"], geometry["width"], geometry["height"]
    if kind == "mask":
        rle = geometry["rle"]
        x, y, w, h = coco_mask.toBbox({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
        return float(x), float(y), float(w), float(h)
    points = [pt for part in geometry["parts"] for pt in part["outer"]] if kind == "polygon" else geometry["points"]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _ring_mask(ring: list[list[float]], width: int, height: int) -> np.ndarray:
    flat = [coordinate for point in ring for coordinate in point]
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([flat], height, width))).astype(bool)


def rasterize(kind: str, geometry: dict, *, width: int, height: int) -> dict:
    """A box or polygon as a mask geometry, rasterized exactly as pycocotools rasterizes COCO shapes."""
    if kind == "box":
        box = [geometry["x"], geometry["y"], geometry["width"], geometry["height"]]
        rle = coco_mask.frPyObjects(np.array([box], dtype=np.float64), height, width)[0]
        return {"rle": encode_mask(coco_mask.decode(rle).astype(bool))}
    if kind == "polygon":
        mask = np.zeros((height, width), dtype=bool)
        for part in geometry["parts"]:
            filled = _ring_mask(part["outer"], width, height)
            for hole in part["holes"]:
                filled &= ~_ring_mask(hole, width, height)
            mask |= filled
        if not mask.any():
            raise GeometryError("the polygon covers no pixel")
        return {"rle": encode_mask(mask)}
    raise GeometryError(f"only boxes and polygons can be rasterized, not a {kind}")


def polygonize(geometry: dict, *, simplify: float = 0.0) -> dict:
    """Trace a mask into polygon parts with holes; `simplify` is the allowed deviation in pixels."""
    mask = decode_mask(geometry["rle"]).astype(np.uint8)
    # Pad so that regions touching the border still get closed contours.
    contours, hierarchy = cv2.findContours(np.pad(mask, 1), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        raise GeometryError("the mask is empty")
    polygons = []
    for index, contour in enumerate(contours):
        if hierarchy[0][index][3] != -1:  # a hole; handled with its parent
            continue
        outer = _ring_points(contour, simplify)
        holes = []
        child = hierarchy[0][index][2]
        while child != -1:
            hole = _ring_points(contours[child], simplify)
            if len(hole) >= 3:
                holes.append(hole)
            child = hierarchy[0][child][0]
        if len(outer) >= 3:
            # Contours run through the centres of the edge pixels; grow by half a pixel so the
            # outline lies on the pixels' outer edges, as rasterizing expects.
            polygons.append(Polygon(outer, holes).buffer(0.5, join_style="mitre", mitre_limit=2.0))
    parts = [part for polygon in polygons for part in _valid_parts(polygon)]
    if simplify == 0:  # exact: a mask of lines a pixel thick is traced too, pixel by pixel
        parts = _pixels_mended(parts, mask.astype(bool))
    if not parts:
        raise GeometryError("the mask is too thin to trace as a polygon")
    return {"parts": parts}


MENDING_ROUNDS = 3  # a mended outline can leave a new sliver a pixel off (shapely's union meets a slanted edge)


def _pixels_mended(parts: list[dict], mask: np.ndarray) -> list[dict]:
    """Traced parts that rasterize to exactly the mask's pixels: a pixel joined to the rest only at a corner is lost
    by contour tracing (its outline is a spike of no area), so each pixel the outline misses is added as its square
    and each one it covers wrongly taken away, until none is left (at worst, the outline of the pixels' rows).
    Compared within the mask's bounding box (a pixel wider): the parts lie inside it, and a whole image per object
    would cost its every pixel."""
    from shapely.geometry import box
    from shapely.ops import unary_union

    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return parts
    top, left = max(0, rows[0] - 1), max(0, columns[0] - 1)
    window = mask[top : rows[-1] + 2, left : columns[-1] + 2]
    for attempt in range(MENDING_ROUNDS + 1):
        shape = unary_union([Polygon(p["outer"], p["holes"]) for p in parts]) if parts else Polygon()
        missing, extra = _pixels_wrong(shape, window, top, left)
        if not len(missing) and not len(extra):
            return parts
        if attempt == MENDING_ROUNDS:
            break
        shape = unary_union([shape, *(box(x, y, x + 1, y + 1) for y, x in missing)])
        if len(extra):
            shape = shape.difference(unary_union([box(x, y, x + 1, y + 1) for y, x in extra]))
        pieces = getattr(shape, "geoms", [shape])
        parts = [part for piece in pieces if isinstance(piece, Polygon) for part in _valid_parts(piece)] or parts
    squares = unary_union([box(x0, y, x1, y + 1) for y, x0, x1 in _row_runs(window, top, left)])
    return [part for piece in getattr(squares, "geoms", [squares]) for part in _valid_parts(piece)]


def _row_runs(window: np.ndarray, top: int, left: int) -> list[tuple[int, int, int]]:
    """Each row's runs of set pixels as (row, first column, column after the last), in the image's pixels: the
    pixels' squares in as few rectangles as a row allows."""
    padded = np.pad(window.astype(np.int8), ((0, 0), (1, 1)))
    changes = np.diff(padded, axis=1)
    starts, ends = np.argwhere(changes == 1), np.argwhere(changes == -1)
    return [(int(y) + top, int(x0) + left, int(x1) + left) for (y, x0), (_, x1) in zip(starts, ends, strict=True)]


def _pixels_wrong(shape, window: np.ndarray, top: int, left: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (row, column in the image) that the shape, rasterized, misses and those it covers wrongly, within
    the window of the mask whose top left pixel is (top, left)."""
    from shapely.affinity import translate

    shifted = translate(shape, -left, -top)
    pieces = [piece for piece in getattr(shifted, "geoms", [shifted]) if isinstance(piece, Polygon) and piece.area > 0]
    traced = np.zeros_like(window)
    if pieces:
        try:
            moved = {"parts": [_part(piece) for piece in pieces]}
            traced = decode_mask(rasterize("polygon", moved, width=window.shape[1], height=window.shape[0])["rle"])
        except GeometryError:  # the outline covers no pixel
            pass
    return np.argwhere(window & ~traced) + [top, left], np.argwhere(traced & ~window) + [top, left]


def _ring_points(contour: np.ndarray, simplify: float) -> list[list[float]]:
    if simplify > 0:
        contour = cv2.approxPolyDP(contour, simplify, True)
    # Pixel centre (j, i) of the padded mask is at (j - 1 + 0.5, i - 1 + 0.5) in image coordinates.
    return [[float(x) - 0.5, float(y) - 0.5] for x, y in contour.reshape(-1, 2)]


def _part(polygon: Polygon) -> dict:
    def ring(coords) -> list[list[float]]:
        return [[round(x, 2), round(y, 2)] for x, y in list(coords)[:-1]]

    return {"outer": ring(polygon.exterior.coords), "holes": [ring(h.coords) for h in polygon.interiors]}
