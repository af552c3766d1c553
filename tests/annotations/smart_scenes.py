"""Generated scenes for the smart tool: a shape on a textured background, its exact mask, a work area
around it and the few scribbles a person would draw (tests and bench/smart.py share them)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPES = ("ellipse", "ring", "star", "blob")


@dataclass(frozen=True)
class Scene:
    rgb: np.ndarray
    truth: np.ndarray  # bool, the shape's pixels
    box: dict  # the work area, {x, y, width, height}
    foreground: list  # strokes [[x, y], ...]
    background: list


def scene(shape: str, seed: int = 0, *, width: int = 640, height: int = 480, area_side: int = 0) -> Scene:
    """`area_side` scales the whole scene so the work area's longer side is about that many pixels."""
    rng = np.random.default_rng(seed)
    cx, cy, r = width / 2, height / 2, min(width, height) * 0.3
    truth = np.zeros((height, width), np.uint8)
    center = (round(cx), round(cy))
    foreground = [[[cx - r * 0.5, cy], [cx + r * 0.5, cy]]]
    background = []
    if shape == "ellipse":
        cv2.ellipse(truth, center, (round(r * 1.3), round(r * 0.8)), 15, 0, 360, 1, -1)
    elif shape == "ring":
        cv2.circle(truth, center, round(r), 1, -1)
        cv2.circle(truth, center, round(r * 0.45), 0, -1)
        foreground = [[[cx + r * 0.72 * np.cos(a), cy + r * 0.72 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 24)]]
        background = [[cx, cy]]  # a click in the hole
    elif shape == "star":
        angles = np.linspace(0, 2 * np.pi, 11)[:-1] - np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(truth, [np.round(points).astype(np.int32)], 1)
        foreground = [[[cx, cy - r * 0.8], [cx, cy + r * 0.3]], [[cx - r * 0.3, cy], [cx + r * 0.3, cy]]]
    elif shape == "blob":
        for _ in range(5):
            offset = rng.uniform(-0.45, 0.45, 2) * r
            cv2.circle(truth, (round(cx + offset[0]), round(cy + offset[1])), round(r * rng.uniform(0.4, 0.6)), 1, -1)
        inside = np.argwhere(cv2.erode(truth, np.ones((25, 25), np.uint8)) > 0)[:, ::-1]
        foreground = [[[float(x), float(y)] for x, y in inside[:: max(1, len(inside) // 8)]]]
    else:
        raise ValueError(shape)
    mask = truth.astype(bool)
    ys, xs = np.nonzero(mask)
    margin = r * 0.25
    x0, y0 = max(0.0, xs.min() - margin), max(0.0, ys.min() - margin)
    x1, y1 = min(float(width), xs.max() + 1 + margin), min(float(height), ys.max() + 1 + margin)
    background = background + [[[x0 + 4, y0 + 4], [x1 - 4, y0 + 4]], [[x0 + 4, y1 - 4], [x1 - 4, y1 - 4]]]

    # A textured background and a differently coloured, textured object; a soft shadow-like gradient.
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([90 + 40 * np.sin(xx / 37.0), 110 + 30 * np.cos(yy / 23.0), 80 + 0.1 * xx], axis=-1)
    colour = np.array([170, 90, 60]) + rng.uniform(-20, 20, 3)
    rgb = np.where(mask[..., None], colour, base) + rng.normal(0, 14, (height, width, 3))
    rgb = rgb.clip(0, 255).astype(np.uint8)
    result = Scene(rgb, mask, {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}, foreground, background)
    if area_side:
        result = _scaled(result, area_side / max(x1 - x0, y1 - y0))
    return result


def _scaled(s: Scene, factor: float) -> Scene:
    height, width = s.truth.shape
    size = (round(width * factor), round(height * factor))
    rgb = cv2.resize(s.rgb, size, interpolation=cv2.INTER_LINEAR)
    truth = cv2.resize(s.truth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    box = {k: v * factor for k, v in s.box.items()}

    def scale(marks: list) -> list:
        return [
            [p * factor for p in m] if not isinstance(m[0], list) else [[x * factor, y * factor] for x, y in m]
            for m in marks
        ]

    return Scene(rgb, truth, box, scale(s.foreground), scale(s.background))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())
