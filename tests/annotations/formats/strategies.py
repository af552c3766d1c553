"""Hypothesis strategies for whole datasets: every kind of shape, on images of random sizes."""

import numpy as np
from hypothesis import strategies as st

from annotations.formats.base import Dataset, DatasetImage, LabelInfo, Shape
from annotations.geometry import encode_mask

LABELS = [
    LabelInfo("cat", "#ff0000", ["left eye", "right eye"]),
    LabelInfo("dog", "#00ff00", []),
    LabelInfo("big cat", "#0000ff", []),
]


@st.composite
def shapes(draw, width: int, height: int) -> Shape:
    kind = draw(st.sampled_from(["box", "polygon", "polygon-hole", "mask", "polyline", "points"]))
    x = draw(st.integers(0, width - 8))
    y = draw(st.integers(0, height - 8))
    w = draw(st.integers(4, width - x))
    h = draw(st.integers(4, height - y))
    label = draw(st.sampled_from(LABELS)).name
    keypoints = []
    if kind == "box":
        geometry = {"x": float(x), "y": float(y), "width": float(w), "height": float(h)}
    elif kind == "polygon":
        outer = [[float(x), float(y)], [float(x + w), float(y)], [float(x + w // 2), float(y + h)]]
        geometry = {"parts": [{"outer": outer, "holes": []}]}
        kind = "polygon"
    elif kind == "polygon-hole":
        outer = [[float(x), float(y)], [float(x + w), float(y)], [float(x + w), float(y + h)], [float(x), float(y + h)]]
        hole = [[x + 1.0, y + 1.0], [x + 3.0, y + 1.0], [x + 3.0, y + 3.0], [x + 1.0, y + 3.0]]
        geometry = {"parts": [{"outer": outer, "holes": [hole]}]}
        kind = "polygon"
    elif kind == "mask":
        mask = np.zeros((height, width), dtype=bool)
        mask[y : y + h, x : x + w] = True
        geometry = {"rle": encode_mask(mask)}
    else:
        count = 2 if kind == "polyline" else 1
        points = [[float(draw(st.integers(0, width))), float(draw(st.integers(0, height)))] for _ in range(count + 1)]
        geometry = {"points": points}
    if label == "cat" and kind in {"box", "polygon"}:
        keypoints = [{"name": "left eye", "x": float(x + 1), "y": float(y + 1), "visible": draw(st.booleans())}]
    return Shape(
        label=label,
        kind=kind,
        geometry=geometry,
        occluded=draw(st.booleans()),
        keypoints=keypoints,
        attributes=draw(st.sampled_from([{}, {"age": "adult"}])),
        source=draw(st.sampled_from(["manual", "prediction"])),
        score=draw(st.sampled_from([None, 0.5, 0.875])),
    )


@st.composite
def images(draw, index: int) -> DatasetImage:
    width, height = draw(st.integers(20, 80)), draw(st.integers(20, 60))
    classes = draw(st.lists(st.sampled_from([label.name for label in LABELS]), unique=True, max_size=3))
    return DatasetImage(
        name=f"folder/img{index}.png",
        width=width,
        height=height,
        classifications=classes,
        shapes=draw(st.lists(shapes(width, height), max_size=5)),
        split=draw(st.sampled_from(["train", "valid"])),
    )


@st.composite
def datasets(draw) -> Dataset:
    count = draw(st.integers(1, 3))
    return Dataset(labels=list(LABELS), images=[draw(images(i)) for i in range(count)])
