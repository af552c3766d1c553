"""Pure decoding rules, table by table, plus random bytes that must never crash the decoder."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from projects.imaging import ImageRejected, Limits, decode_image

LIMITS = Limits(max_pixels=10**6, max_decoded_bytes=64 * 1024 * 1024)


def encode(image: PILImage.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "suffix", "thumb_mode"),
    [
        ("JPEG", "RGB", ".jpg", "RGB"),
        ("PNG", "RGBA", ".png", "RGBA"),
        ("PNG", "L", ".png", "RGB"),
        ("WEBP", "RGB", ".webp", "RGB"),
        ("BMP", "RGB", ".bmp", "RGB"),
        ("TIFF", "RGB", ".tif", "RGB"),
        ("GIF", "P", ".gif", "RGB"),
    ],
)
def test_accepted_formats_keep_their_bytes_and_get_a_webp_thumbnail(fmt, mode, suffix, thumb_mode):
    data = encode(PILImage.new(mode, (600, 300)), fmt)
    decoded = decode_image(data, limits=LIMITS, thumbnail_size=256)
    assert (decoded.content, decoded.suffix, decoded.width, decoded.height) == (data, suffix, 600, 300)
    with PILImage.open(io.BytesIO(decoded.thumbnail)) as thumb:
        assert (thumb.format, thumb.size, thumb.mode) == ("WEBP", (256, 128), thumb_mode)


def test_other_formats_are_refused_by_name():
    data = encode(PILImage.new("RGB", (16, 16)), "ICO")
    with pytest.raises(ImageRejected, match="^ICO images are not accepted; use JPEG, PNG, WEBP, BMP, TIFF or GIF.$"):
        decode_image(data, limits=LIMITS)


@pytest.mark.parametrize(("orientation", "size"), [(1, (40, 10)), (3, (40, 10)), (6, (10, 40)), (8, (10, 40))])
def test_exif_orientation(orientation, size):
    image = PILImage.new("RGB", (40, 10), (255, 0, 0))
    image.putpixel((0, 0), (0, 0, 255))
    exif = image.getexif()
    exif[0x0112] = orientation
    data = encode(image, "PNG", exif=exif.tobytes())
    decoded = decode_image(data, limits=LIMITS)
    assert (decoded.width, decoded.height) == size
    assert (decoded.content == data) is (orientation == 1)
    with PILImage.open(io.BytesIO(decoded.content)) as stored:
        assert stored.size == size


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused_or_decoded_never_crash(data):
    try:
        decoded = decode_image(data, limits=LIMITS)
    except ImageRejected as exc:
        assert str(exc)
    else:
        assert decoded.width * decoded.height <= 10**6


def test_every_cut_of_a_png_is_refused_cleanly():
    rng = np.random.default_rng(7)
    data = encode(PILImage.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)), "PNG")
    # The last bytes are zlib's and the chunk's checksums and the IEND trailer: cutting only those
    # leaves every pixel intact, which Pillow accepts. Any cut into the pixels or before them is refused.
    refused = 0
    for cut in range(len(data) - 24):
        with pytest.raises(ImageRejected):
            decode_image(data[:cut], limits=LIMITS)
        refused += 1
    assert refused == len(data) - 24
