"""The smart tool's input: a work area and foreground/background marks, in image pixels.

A mark is a click `[x, y]` or a stroke `[[x, y], [x, y], ...]`; the API takes lists of either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_MARKS = 500
MAX_POINTS = 20_000


class PromptError(ValueError):
    """The marks or the work area cannot be used; the message says why, for a person."""


@dataclass(frozen=True)
class Prompt:
    """`box` is (x0, y0, x1, y1) in whole pixels, x1 and y1 exclusive; strokes are (n, 2) float arrays."""

    box: tuple[int, int, int, int]
    foreground: tuple[np.ndarray, ...]
    background: tuple[np.ndarray, ...]

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    def bound(self, mask: np.ndarray) -> np.ndarray:
        """The mask with everything outside the work area cleared: the area bounds the object (spec 000)."""
        x0, y0, x1, y1 = self.box
        bounded = np.zeros_like(mask)
        bounded[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
        return bounded


def prompt_parse(box: Any, foreground: Any, background: Any, *, width: int, height: int) -> Prompt:
    """Check and normalise what a client sent; the work area defaults to the whole image.

    The counts are checked before any mark is converted, so an oversized request costs next to nothing.
    """
    area = _box(box, width, height)
    _counts_check(foreground, background)
    fg = _marks(foreground, "foreground", width, height)
    bg = _marks(background, "background", width, height)
    return Prompt(box=area, foreground=fg, background=bg)


def _counts_check(*marks: Any) -> None:
    lists = [m for m in marks if isinstance(m, list)]
    if sum(len(m) for m in lists) > MAX_MARKS:
        raise PromptError(f"Send at most {MAX_MARKS} marks.")
    points = sum(1 if _is_point(mark) else len(mark) if isinstance(mark, list) else 1 for m in lists for mark in m)
    if points > MAX_POINTS:
        raise PromptError(f"The marks have more than {MAX_POINTS:,} points; send fewer points per stroke.")


def _box(value: Any, width: int, height: int) -> tuple[int, int, int, int]:
    if value is None:
        return 0, 0, width, height
    if not isinstance(value, dict) or set(value) != {"x", "y", "width", "height"}:
        raise PromptError('The work area ("box") must be {"x": ..., "y": ..., "width": ..., "height": ...}.')
    x, y, w, h = (_number(value[key], f"box.{key}") for key in ("x", "y", "width", "height"))
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(width, int(np.ceil(x + w))), min(height, int(np.ceil(y + h)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise PromptError(f"The work area must be at least 4x4 pixels inside the {width}x{height} image.")
    return x0, y0, x1, y1


def _marks(value: Any, what: str, width: int, height: int) -> tuple[np.ndarray, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PromptError(f"{what} must be a list of clicks [x, y] or strokes [[x, y], ...].")
    marks = []
    for index, mark in enumerate(value):
        points = [mark] if _is_point(mark) else mark
        if not isinstance(points, list) or not points or not all(_is_point(p) for p in points):
            raise PromptError(f"{what}[{index}] is neither a click [x, y] nor a stroke [[x, y], ...].")
        array = np.asarray(points, dtype=np.float64)
        if not np.isfinite(array).all():
            raise PromptError(f"{what}[{index}] has a coordinate that is not a finite number.")
        outside = (array[:, 0] < 0) | (array[:, 0] > width) | (array[:, 1] < 0) | (array[:, 1] > height)
        if outside.any():
            raise PromptError(f"{what}[{index}] goes outside the {width}x{height} image.")
        marks.append(array)
    return tuple(marks)


def _is_point(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise PromptError(f"{what} must be a number.")
    return float(value)


def stroke_points(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """Points along a stroke about `spacing` apart (its ends included): clicks for a point-prompted model."""
    if len(stroke) == 1:
        return stroke
    steps = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    count = max(2, int(along[-1] // max(spacing, 1e-6)) + 1)
    targets = np.linspace(0.0, along[-1], count)
    return np.stack([np.interp(targets, along, stroke[:, 0]), np.interp(targets, along, stroke[:, 1])], axis=1)
