"""Turning stored image bytes into normalised tensors: decode with Pillow, square resize, optional augmentation."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

ReadBytes = Callable[[str], bytes]


@dataclass(frozen=True)
class Sample:
    """One training or evaluation image: where its bytes are, and its target label indices."""

    source: str
    targets: tuple[int, ...]


GUIDE_SCALE = 2  # a guide image's longer side, at most, in the network's input sides


def read_file(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def decode_rgb(data: bytes, size: int) -> np.ndarray:
    """HxWx3 uint8 at size x size, upright as its EXIF orientation says (uploads are stored upright, so a
    photo sent straight from a phone predicts like its stored copy). Grayscale, palette and alpha become RGB."""
    with PILImage.open(io.BytesIO(data)) as image:
        image.draft("RGB", (size, size))  # JPEGs decode at a reduced scale when they can
        upright = ImageOps.exif_transpose(image)
        rgb = upright.convert("RGB").resize((size, size), PILImage.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def to_tensor(batch: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]):
    """NCHW float tensor (channels-last in memory, which the CPU convolutions prefer), normalised."""
    import torch

    array = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float().div_(255)
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return ((array - mean_t) / std_t).contiguous(memory_format=torch.channels_last)


def augment(image: np.ndarray, rng: np.random.Generator, *, flip: bool) -> np.ndarray:
    """A random crop of 80-100% of each side, resized back, and a horizontal flip when allowed."""
    height, width = image.shape[:2]
    scale = rng.uniform(0.8, 1.0)
    crop_h, crop_w = max(1, int(height * scale)), max(1, int(width * scale))
    top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
    crop = PILImage.fromarray(image[top : top + crop_h, left : left + crop_w])
    out = np.asarray(crop.resize((width, height), PILImage.Resampling.BILINEAR))
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def upright_resized(data: bytes, size: int) -> tuple[np.ndarray, float]:
    """HxWx3 uint8, upright as its EXIF orientation says, the longer side `size`; and the factor from the
    upright original's pixels to these."""
    with PILImage.open(io.BytesIO(data)) as image:
        width, height = _upright_size(image)
        scale = size / max(width, height)
        image.draft("RGB", (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))))
        upright = ImageOps.exif_transpose(image).convert("RGB")
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        return np.array(upright.resize(target, PILImage.Resampling.BILINEAR), dtype=np.uint8), scale


def upright_guide(data: bytes, size: int) -> np.ndarray:
    """HxWx3 uint8, upright: the image at its own size, or with the longer side GUIDE_SCALE x `size` when larger.
    What a segmentation model's masks are refined by (masks.segment), beside the network's `size` pixels."""
    width, height = upright_size(data)
    return upright_resized(data, min(max(width, height), GUIDE_SCALE * size))[0]


def upright_size(data: bytes) -> tuple[int, int]:
    """The width and height of the image turned upright by its EXIF orientation (the header alone is read)."""
    with PILImage.open(io.BytesIO(data)) as image:
        return _upright_size(image)


def _upright_size(image: PILImage.Image) -> tuple[int, int]:
    width, height = image.size
    if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # turned a quarter: the upright image is tall
        return height, width
    return width, height
