"""Decoding for training and prediction: upright by EXIF, square, RGB whatever came in."""

import io

import numpy as np
from PIL import Image as PILImage

from training.ml.images import decode_rgb, upright_guide

EXIF_ORIENTATION = 0x0112


def asymmetric(width=60, height=40) -> PILImage.Image:
    """Red on the left third, blue elsewhere: any rotation shows."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 3] = (255, 0, 0)
    pixels[:, width // 3 :] = (0, 0, 255)
    return PILImage.fromarray(pixels)


def encoded(image: PILImage.Image, fmt="PNG", orientation: int | None = None) -> bytes:
    out = io.BytesIO()
    exif = PILImage.Exif()
    if orientation:
        exif[EXIF_ORIENTATION] = orientation
    image.save(out, fmt, exif=exif.tobytes()) if orientation else image.save(out, fmt)
    return out.getvalue()


def test_a_photo_rotated_by_exif_decodes_like_its_upright_copy():
    upright = asymmetric()
    # Orientation 6: the stored pixels must be turned 90° clockwise to be upright.
    stored_sideways = upright.transpose(PILImage.Transpose.ROTATE_90)
    sideways = decode_rgb(encoded(stored_sideways, "PNG", orientation=6), 32)
    straight = decode_rgb(encoded(upright), 32)
    assert np.array_equal(sideways, straight)
    assert tuple(straight[16, 2]) == (255, 0, 0) and tuple(straight[16, 30]) == (0, 0, 255)


def test_grayscale_palette_and_alpha_become_rgb_at_the_asked_size():
    for mode in ("L", "P", "RGBA", "LA"):
        decoded = decode_rgb(encoded(asymmetric().convert(mode)), 24)
        assert decoded.shape == (24, 24, 3) and decoded.dtype == np.uint8, mode


def test_a_guide_is_the_upright_image_at_its_own_size_or_twice_the_networks():
    upright = asymmetric(600, 300)
    stored_sideways = upright.transpose(PILImage.Transpose.ROTATE_90)
    assert upright_guide(encoded(upright), 416).shape == (300, 600, 3)  # under 832 px: its own size
    assert np.array_equal(upright_guide(encoded(stored_sideways, "PNG", orientation=6), 416), np.asarray(upright))
    assert upright_guide(encoded(upright), 200).shape == (200, 400, 3)  # over 400 px: twice the network's
