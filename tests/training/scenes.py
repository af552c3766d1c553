"""Generated detection scenes: a textured grey background and a few objects of three kinds, with their boxes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

KINDS = ("disc", "square", "triangle")
COLOURS = {"disc": (220, 40, 40), "square": (40, 200, 60), "triangle": (40, 60, 220)}


def scene(seed: int, *, width: int = 160, height: int = 120, objects: tuple[int, int] = (1, 3), sizes=(18, 48)):
    """PNG bytes and the boxes drawn: [(x, y, w, h, kind)], in pixels. Objects may overlap a little."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(90, 150, (height, width, 1)).repeat(3, axis=2).astype(np.uint8)
    image = PILImage.fromarray(noise)
    draw = ImageDraw.Draw(image)
    boxes = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        side = int(rng.integers(sizes[0], sizes[1] + 1))
        x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        corners = (x, y, x + side - 1, y + side - 1)
        if kind == "disc":
            draw.ellipse(corners, fill=COLOURS[kind])
        elif kind == "square":
            draw.rectangle(corners, fill=COLOURS[kind])
        else:
            draw.polygon([(x, y + side - 1), (x + side - 1, y + side - 1), (x + side // 2, y)], fill=COLOURS[kind])
        boxes.append((x, y, side, side, kind))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), boxes


def ring_scene(seed: int, *, width: int = 160, height: int = 120):
    """PNG bytes, a red ring (a polygon with a hole) and a green square that may cover part of it: the ring's outer
    and inner circles as point lists, and the square's x, y, side."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(90, 150, (height, width, 1)).repeat(3, axis=2).astype(np.uint8)
    image = PILImage.fromarray(noise)
    draw = ImageDraw.Draw(image)
    radius = int(rng.integers(18, 34))
    cx, cy = int(rng.integers(radius, width - radius)), int(rng.integers(radius, height - radius))
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    outer = [[round(cx + radius * np.cos(a), 2), round(cy + radius * np.sin(a), 2)] for a in angles]
    inner = [[round(cx + radius / 2 * np.cos(a), 2), round(cy + radius / 2 * np.sin(a), 2)] for a in angles[::-1]]
    draw.polygon([tuple(p) for p in outer], fill=(220, 40, 40))
    draw.polygon([tuple(p) for p in inner], fill=tuple(int(v) for v in noise[cy, cx]))
    side = int(rng.integers(16, 36))
    x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    draw.rectangle((x, y, x + side - 1, y + side - 1), fill=(40, 200, 60))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), outer, inner, (x, y, side)
