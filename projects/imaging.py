"""Decode image bytes under guard: size limits from the header, a process-wide budget of decoded bytes in
flight, truncation, EXIF orientation, thumbnail.

Every decode of bytes that came from a person (uploads, predictions, similarity by upload, the smart
tool, mask and image imports) goes through `open_guarded`, so one budget holds for all of them. Pure
Pillow, no Django models, so every rule here is a table test away.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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
MB = 1024 * 1024
# Bytes a pixel takes in Pillow's memory: one-band 8-bit modes take one, 16-bit ones two, and every
# other mode (RGB included) is stored four bytes a pixel.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


class ImageRejected(ValueError):
    """The bytes are not an image Sightline will store; the message says why, for a person."""


class DecodeBusy(Exception):
    """Decodes already in flight hold the process's whole budget: the request should be retried shortly."""


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_decoded_bytes: int


def limits_from_settings() -> Limits:
    from django.conf import settings

    return Limits(settings.SIGHTLINE_MAX_IMAGE_PIXELS, settings.SIGHTLINE_MAX_DECODED_MB * MB)


class DecodeBudget:
    """Bytes of decoded pixels in flight in this process, bounded: a decode waits for room, then gives up."""

    def __init__(self, capacity: int, wait_seconds: float):
        self.capacity = capacity
        self.wait_seconds = wait_seconds
        self.in_flight = 0
        self._room = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        nbytes = min(nbytes, self.capacity)  # one image over the whole budget runs alone
        deadline = time.monotonic() + self.wait_seconds
        with self._room:
            while self.in_flight + nbytes > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodeBusy("The server is decoding other large images; try again in a few seconds.")
                self._room.wait(left)
            self.in_flight += nbytes
        try:
            yield
        finally:
            with self._room:
                self.in_flight -= nbytes
                self._room.notify_all()


_budget: DecodeBudget | None = None


def process_budget() -> DecodeBudget:
    global _budget
    if _budget is None:
        from django.conf import settings

        _budget = DecodeBudget(settings.SIGHTLINE_DECODE_MEMORY_MB * MB, settings.SIGHTLINE_DECODE_WAIT_SECONDS)
    return _budget


def decoded_bytes(image: PILImage.Image, *, copies: int = 1) -> int:
    """What the decoded image and `copies - 1` converted (RGB or RGBA) copies of it take in memory, from its
    header alone."""
    width, height = image.size
    return width * height * (_BYTES_PER_PIXEL.get(image.mode, 4) + 4 * (copies - 1))


@contextmanager
def open_guarded(
    data: bytes, *, limits: Limits | None = None, copies: int = 2, size: tuple[int, int] | None = None
) -> Iterator[PILImage.Image]:
    """Open image bytes, refuse them from the header if decoding would cost too much, and hold a share of
    the process's decode budget while the caller decodes (`copies`: how many decoded copies it makes).

    The image is loaded before it is yielded, so a damaged file is refused here, not in the caller. With
    `size`, an image of any other width and height is refused before it is decoded.
    """
    limits = limits or limits_from_settings()
    if not data:
        raise ImageRejected("The file is empty.")
    with warnings.catch_warnings():
        # Pillow warns between its limit and twice its limit, and raises beyond: the header check below refuses
        # what it warns of, with the image's size in the message.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageRejected("This is not an image file Sightline can read.") from None
        except PILImage.DecompressionBombError:
            raise ImageRejected(
                f"The image has more than {limits.max_pixels:,} pixels (a decompression bomb?)."
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            # A header cut short or malformed: Pillow raises these rather than UnidentifiedImageError.
            raise ImageRejected(f"The image is damaged or truncated ({exc}).") from None
        with image:
            _check_header(image, limits)
            if size is not None and image.size != tuple(size):
                raise ImageRejected(
                    f"It is {image.width}x{image.height}, but it must be {size[0]}x{size[1]} (the size of its image)."
                )
            with process_budget().reserve(decoded_bytes(image, copies=copies)):
                try:
                    image.load()
                except (OSError, SyntaxError, ValueError, EOFError, PILImage.DecompressionBombError) as exc:
                    raise ImageRejected(f"The image is damaged or truncated ({exc}).") from None
                yield image


def _check_header(image: PILImage.Image, limits: Limits) -> None:
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"The image is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{limits.max_pixels:,} (a decompression bomb?)."
        )
    cost = decoded_bytes(image)
    if cost > limits.max_decoded_bytes:
        raise ImageRejected(
            f"The image is {width}x{height} ({image.mode}), {cost / MB:,.0f} MB once decoded, more than the limit "
            f"of {limits.max_decoded_bytes / MB:,.0f} MB."
        )


@dataclass(frozen=True)
class DecodedImage:
    content: bytes  # what is stored: the upload itself, or re-encoded upright when EXIF rotated it
    suffix: str
    width: int
    height: int
    sha256: str  # of the uploaded bytes, so the same file is recognised whatever we stored
    thumbnail: bytes  # WEBP


def decode_image(data: bytes, *, limits: Limits | None = None, thumbnail_size: int = 256) -> DecodedImage:
    """Check and decode an upload; at most two copies of its pixels exist at once (three when EXIF turns it)."""
    with open_guarded(data, limits=limits, copies=2) as image:
        if image.format not in ACCEPTED_FORMATS:
            raise ImageRejected(f"{image.format} images are not accepted; use JPEG, PNG, WEBP, BMP, TIFF or GIF.")
        rotated = image.getexif().get(EXIF_ORIENTATION, 1) != 1
        # exif_transpose copies the pixels even when there is nothing to turn: only call it when there is.
        upright = ImageOps.exif_transpose(image) if rotated else image
        return DecodedImage(
            content=_encode(upright, image.format) if rotated else data,
            suffix=ACCEPTED_FORMATS[image.format],
            width=upright.width,
            height=upright.height,
            sha256=hashlib.sha256(data).hexdigest(),
            thumbnail=make_thumbnail(upright, thumbnail_size),
        )


def image_rgb(data: bytes, *, limits: Limits | None = None) -> PILImage.Image:
    """A person's image bytes as an RGB image, for a model (predict, search by upload): refused like an upload."""
    with open_guarded(data, limits=limits, copies=2) as image:
        if image.format not in ACCEPTED_FORMATS:
            raise ImageRejected(f"{image.format} images are not accepted; use JPEG, PNG, WEBP, BMP, TIFF or GIF.")
        return ImageOps.exif_transpose(image).convert("RGB")


def make_thumbnail(image: PILImage.Image, size: int) -> bytes:
    """A WEBP no larger than size x size, keeping the aspect ratio. It shrinks before it converts, so a
    large image is never copied whole into another mode."""
    has_alpha = image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info
    target = "RGBA" if has_alpha else "RGB"
    if image.mode not in {"RGB", "RGBA", "L", "LA"}:  # palette, bilevel, 16-bit, CMYK: Pillow cannot resample them
        image = image.convert(target)
    if max(image.size) > size:
        scale = size / max(image.size)
        shrunk = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(shrunk, PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    thumb = image.convert(target)
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
