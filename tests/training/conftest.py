"""Projects with real labelled pixels for training tests: colours a tiny model tells apart in one or two epochs."""

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage
from PIL import ImageDraw

from projects.uploads import images_upload
from tests.factories import make_project

# Fast settings for tests: the real default backbone and weights, only the classifier trains.
FAST = {"epochs": 3, "batch_size": 8, "learning_rate": 0.01, "fine_tune": "head", "patience": 0}


def colour_png(colour, seed: int, size: int = 32) -> bytes:
    """A flat colour with a little noise, so no two images share bytes."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.integers(-20, 20, (size, size, 3)), 0, 255)
    out = io.BytesIO()
    PILImage.fromarray(pixels.astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def shapes_png(kinds: set[str], seed: int, size: int = 64) -> bytes:
    """A grey scene holding a red disc, a green square and/or a blue bar, placed at random."""
    rng = np.random.default_rng(seed)
    image = PILImage.new("RGB", (size, size), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for kind in sorted(kinds):
        x, y = (int(v) for v in rng.integers(2, size - 22, 2))
        if kind == "disc":
            draw.ellipse([x, y, x + 18, y + 18], fill=(220, 30, 30))
        elif kind == "square":
            draw.rectangle([x, y, x + 16, y + 16], fill=(30, 200, 30))
        else:
            draw.rectangle([x, y, x + 20, y + 6], fill=(30, 30, 220))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload(project, user, files: list[tuple[str, bytes]], labels: list[str]):
    uploads = [SimpleUploadedFile(name, data) for name, data in files]
    return images_upload(project=project, user=user, files=uploads, labels=labels).stored


@pytest.fixture
def colours_project(user):
    """12 red and 12 blue images, labelled red and blue."""
    project = make_project(owner=user, name="Colours")
    upload(project, user, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(12)], ["red"])
    upload(project, user, [(f"blue{i}.png", colour_png((30, 30, 220), 100 + i)) for i in range(12)], ["blue"])
    return project
