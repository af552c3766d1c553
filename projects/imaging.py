"""Decode uploaded bytes into a checked image: size limits, truncation, EXIF orientation, thumbnail.

Pure Pillow, no Django models, so every rule here is a table test away.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

# What the grid, the labeler and torch all read. Multi-frame formats keep their first frame.
ACCEPTED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".gif": "image/gif",
}
EXIF_ORIENTATION = 0x0112


class ImageRejected(ValueError):
    """The bytes are not an image Sightline will store; the message says why, for a person."""


@dataclass(frozen=True)
class DecodedImage:
    content: bytes  # what is stored: the upload itself, or re-encoded upright when EXIF rotated it
    suffix: str
    width: int
    height: int
    sha256: str  # of the uploaded bytes, so the same file is recognised whatever we stored
    thumbnail: bytes  # WEBP


def decode_image(data: bytes, *, max_pixels: int, thumbnail_size: int = 256) -> DecodedImage:
    if not data:
        raise ImageRejected("The file is empty.")
    with warnings.catch_warnings():
        # Pillow warns between its limit and twice its limit; a bomb is an error at any size.
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageRejected("This is not an image file Sightline can read.") from None
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
            raise ImageRejected(f"The image has more than {max_pixels:,} pixels (a decompression bomb?).") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            # A header cut short or malformed: Pillow raises these rather than UnidentifiedImageError.
            raise ImageRejected(f"The image is damaged or truncated ({exc}).") from None
        if image.format not in ACCEPTED_FORMATS:
            raise ImageRejected(f"{image.format} images are not accepted; use JPEG, PNG, WEBP, BMP, TIFF or GIF.")
        width, height = image.size
        if width * height > max_pixels:
            raise ImageRejected(
                f"The image is {width}x{height} = {width * height:,} pixels, more than the limit of "
                f"{max_pixels:,} (a decompression bomb?)."
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejected(f"The image is damaged or truncated ({exc}).") from None

    upright = ImageOps.exif_transpose(image)
    rotated = upright.size != image.size or image.getexif().get(EXIF_ORIENTATION, 1) != 1
    content = _encode(upright, image.format) if rotated else data
    return DecodedImage(
        content=content,
        suffix=ACCEPTED_FORMATS[image.format],
        width=upright.width,
        height=upright.height,
        sha256=hashlib.sha256(data).hexdigest(),
        thumbnail=make_thumbnail(upright, thumbnail_size),
    )


def make_thumbnail(image: PILImage.Image, size: int) -> bytes:
    """A WEBP no larger than size x size, keeping the aspect ratio."""
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info
    thumb = image.convert("RGBA" if has_alpha else "RGB")
    thumb.thumbnail((size, size), PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    thumb.save(out, "WEBP", quality=80, method=4)
    return out.getvalue()


def _encode(image: PILImage.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=95, subsampling=0)
    else:
        image.save(out, fmt)
    return out.getvalue()
