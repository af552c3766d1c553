"""Bitmap formats of spec 000: a PNG colour bitmap per image, and a ZIP of black/white masks per object.

`png-masks`: `masks/<image>.png`, black background, one colour per object, and `objects.csv`
(image, colour, label) saying which colour is which label. Objects drawn later cover earlier
ones where they overlap. `bw-masks-zip`: `bitmaps/<image>/<label>/object_<n>.png`, white on
black, one file per object, so nothing overlaps. Boxes and polygons are rasterized; both come
back as masks.
"""

from __future__ import annotations

import csv
import io

import numpy as np
from PIL import Image as PILImage

from annotations import geometry as geo
from annotations.formats import fields
from annotations.formats.base import (
    Dataset,
    DatasetImage,
    Exported,
    FormatError,
    LabelInfo,
    Shape,
    Summary,
    by_stem,
    flat_name,
    read_zip,
    stem,
    zip_file,
)
from projects.imaging import ImageRejected, open_guarded

AREA_KINDS = {"box", "polygon", "mask"}


def _mask(shape: Shape, image: DatasetImage) -> np.ndarray:
    rle = (
        shape.geometry["rle"]
        if shape.kind == "mask"
        else geo.rasterize(shape.kind, shape.geometry, width=image.width, height=image.height)["rle"]
    )
    return geo.decode_mask(rle)


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, "PNG", optimize=False)
    return out.getvalue()


def _decode_png(data: bytes, where: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask's RGB pixels, by the guarded decoder; a mask of a known image must have that image's size, which
    is checked from the header, before anything is decoded."""
    try:
        # Copies: the decoded PNG, its RGB conversion and the arrays compared against each colour.
        with open_guarded(data, copies=3, size=size) as picture:
            return np.asarray(picture.convert("RGB"))
    except ImageRejected as exc:
        raise FormatError(f"{where}: {exc}") from None


def _color(index: int) -> tuple[int, int, int]:
    """Distinct, never black: object n's colour, spread over the RGB cube."""
    n = index + 1
    return ((n * 97) % 251 + 4, (n * 57) % 241 + 8, (n * 23) % 239 + 12)


def _not_held(shape: Shape, summary: Summary, key: str) -> bool:
    if shape.kind in AREA_KINDS:
        return False
    summary.cannot_hold(f"{shape.kind} objects ({key} holds areas: boxes, polygons and masks)")
    return True


class PngMasks:
    KEY = "png-masks"

    def write(self, dataset: Dataset) -> Exported:
        summary = Summary(images=len(dataset.images))
        files, rows = {}, []
        for image in dataset.images:
            canvas = np.zeros((image.height, image.width, 3), dtype=np.uint8)
            painted = np.zeros((image.height, image.width), dtype=np.int32)
            objects = [s for s in image.shapes if not _not_held(s, summary, self.KEY)]
            for index, shape in enumerate(objects):
                mask = _mask(shape, image)
                canvas[mask] = _color(index)
                painted[mask] = index + 1
                rows.append([image.name, "#%02x%02x%02x" % _color(index), shape.label])
            hidden = sum(1 for index in range(len(objects)) if not (painted == index + 1).any())
            if hidden:
                summary.cannot_hold("objects wholly covered by later objects (one colour per pixel)", hidden)
            summary.shapes += len(objects) - hidden
            if image.classifications:
                summary.cannot_hold(
                    "image classification labels (bitmaps hold objects only)", len(image.classifications)
                )
            files[f"masks/{stem(flat_name(image.name))}.png"] = _png(canvas)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["image", "color", "label"])
        writer.writerows(rows)
        files["objects.csv"] = out.getvalue().encode()
        return Exported("png-masks.zip", zip_file(files), "application/zip", summary)

    def read(self, content: bytes, *, known: dict[str, tuple[int, int]] | None = None) -> Dataset:
        files = read_zip(content)
        if "objects.csv" not in files:
            raise FormatError("The ZIP needs objects.csv with the columns image, color, label.")
        colours: dict[str, list[tuple[str, str]]] = {}
        for line, row in fields.csv_records(files["objects.csv"], "objects.csv"):
            if not row.get("image") or not row.get("color") or not row.get("label"):
                raise FormatError(f"objects.csv line {line}: needs image, color and label.")
            colour = fields.colour(row["color"], f"objects.csv line {line}")
            colours.setdefault(row["image"], []).append((colour, row["label"]))
        dataset = Dataset()
        stems = by_stem(known)
        for path, data in ((path, files[path]) for path in sorted(files)):
            if not (path.startswith("masks/") and path.lower().endswith(".png")):
                continue
            name = stems.get(stem(path.removeprefix("masks/")), path)
            pixels = _decode_png(data, path, (known or {}).get(name))
            image = DatasetImage(name=name, width=pixels.shape[1], height=pixels.shape[0])
            for colour, label in colours.get(name, []):
                rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
                mask = np.all(pixels == rgb, axis=2)
                if mask.any():
                    image.shapes.append(Shape(label=label, kind="mask", geometry={"rle": geo.encode_mask(mask)}))
            dataset.images.append(image)
        dataset.labels = [LabelInfo(n) for n in dict.fromkeys(s.label for i in dataset.images for s in i.shapes)]
        return dataset


class BlackWhiteMasks:
    KEY = "bw-masks-zip"

    def write(self, dataset: Dataset) -> Exported:
        summary = Summary(images=len(dataset.images))
        files = {}
        for image in dataset.images:
            counters: dict[str, int] = {}
            for shape in image.shapes:
                if _not_held(shape, summary, self.KEY):
                    continue
                counters[shape.label] = counters.get(shape.label, 0) + 1
                pixels = _mask(shape, image).astype(np.uint8) * 255
                path = f"bitmaps/{flat_name(image.name)}/{shape.label}/object_{counters[shape.label]}.png"
                files[path] = _png(pixels)
                summary.shapes += 1
            if image.classifications:
                summary.cannot_hold(
                    "image classification labels (bitmaps hold objects only)", len(image.classifications)
                )
        if not files:
            raise FormatError("No object can be written as a black/white mask: there are no boxes, polygons or masks.")
        return Exported("bitmaps.zip", zip_file(files), "application/zip", summary)

    def read(self, content: bytes, *, known: dict[str, tuple[int, int]] | None = None) -> Dataset:
        files = read_zip(content)
        flat = {flat_name(name): name for name in (known or {})}
        images: dict[str, DatasetImage] = {}
        for path, data in ((path, files[path]) for path in sorted(files, key=_natural)):
            parts = path.split("/")
            if parts[0] == "bitmaps":
                parts = parts[1:]
            if len(parts) != 3 or not parts[2].lower().endswith(".png"):
                continue
            image_name, label, _ = parts
            pixels = _decode_png(data, path, (known or {}).get(flat.get(image_name, image_name)))
            mask = pixels.max(axis=2) > 127
            name = flat.get(image_name, image_name)
            image = images.setdefault(name, DatasetImage(name=name, width=pixels.shape[1], height=pixels.shape[0]))
            if mask.any():
                image.shapes.append(Shape(label=label, kind="mask", geometry={"rle": geo.encode_mask(mask)}))
        dataset = Dataset(images=list(images.values()))
        dataset.labels = [LabelInfo(n) for n in dict.fromkeys(s.label for i in dataset.images for s in i.shapes)]
        return dataset


def _natural(path: str) -> tuple:
    """object_10 after object_9, so objects come back in the order they were written."""
    head, _, number = path.rpartition("_")
    digits = number.split(".")[0]
    return (head, int(digits) if digits.isascii() and digits.isdigit() else 0, path)


png_masks = PngMasks()
bw_masks = BlackWhiteMasks()
