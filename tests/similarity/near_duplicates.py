"""Real images and near-duplicates of them, for the similarity quality test and benchmark.

Originals: scikit-image's sample photos and scikit-learn's handwritten digits. Each copy is one
original cropped to 80-95%, resized, rotated a little, re-lit and saved as JPEG at quality 50.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage
from PIL import ImageEnhance


def originals(digits: int = 100) -> list[tuple[str, bytes]]:
    """(name, PNG bytes): the 18 sample photos of the demo, then `digits` digits scaled up to 64 px."""
    from sklearn.datasets import load_digits

    from projects.demo import sample_photos

    out = [(name, data) for name, data, _ in sample_photos()]
    for index, pixels in enumerate(load_digits().images[:digits]):
        image = PILImage.fromarray((pixels * 255 / 16).astype(np.uint8)).resize((64, 64), PILImage.Resampling.BILINEAR)
        out.append((f"digit_{index:04}.png", _png(image)))
    return out


STEPS = ("crop", "resize", "rotate", "brightness", "jpeg")


def near_duplicate(data: bytes, seed: int, steps: tuple[str, ...] = STEPS) -> bytes:
    """A crop of 80-95% of each side, resized by 70-130%, rotated up to 5 degrees, brightness 0.8-1.2, JPEG 50.

    `steps` applies only some of them (the benchmark measures each alone); the random draws are the
    same whichever are applied, so a step alone is exactly that step of the full copy.
    """
    rng = np.random.default_rng(seed)
    with PILImage.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    width, height = image.size
    keep_w, keep_h = (int(side * rng.uniform(0.80, 0.95)) for side in (width, height))
    left, top = int(rng.integers(0, width - keep_w + 1)), int(rng.integers(0, height - keep_h + 1))
    scale, angle, light = rng.uniform(0.7, 1.3), rng.uniform(-5, 5), rng.uniform(0.8, 1.2)
    if "crop" in steps:
        image = image.crop((left, top, left + keep_w, top + keep_h))
    if "resize" in steps:
        image = image.resize(
            (max(8, int(image.width * scale)), max(8, int(image.height * scale))), PILImage.Resampling.BILINEAR
        )
    if "rotate" in steps:
        image = image.rotate(angle, resample=PILImage.Resampling.BILINEAR, expand=False, fillcolor=(128, 128, 128))
    if "brightness" in steps:
        image = ImageEnhance.Brightness(image).enhance(light)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=50) if "jpeg" in steps else image.save(out, "PNG")
    return out.getvalue()


def _png(image: PILImage.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
