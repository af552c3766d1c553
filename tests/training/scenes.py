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
