"""The classification ZIP of spec 003: a folder per split, in it a folder per label holding its images.

`train/<label>/<image>` and `valid/<label>/<image>`; an image with several labels is in each
of their folders, one without labels sits in its split's folder. `default_labels.csv` keeps
which label is each image's default, which folders alone cannot say. On import, images are
found by their bytes (sha256) first, so renamed files still match, then by name.
"""

from __future__ import annotations

import csv
import hashlib
import io

from annotations.formats import fields
from annotations.formats.base import (
    Dataset,
    DatasetImage,
    Exported,
    FormatError,
    LabelInfo,
    Summary,
    flat_name,
    read_zip,
    zip_file,
)

KEY = "classification-zip"
CARRIES_IMAGES = True
SPLITS = ("train", "valid")


def _file_name(image: DatasetImage) -> str:
    name = flat_name(image.name)
    return name if "." in name.rsplit("/", 1)[-1] else f"{name}{image.suffix}"


def write(dataset: Dataset) -> Exported:
    summary = Summary(images=len(dataset.images))
    files, defaults = {}, []
    for image in dataset.images:
        if not image.has_data:
            raise FormatError(f"{image.name}: the image file is missing.")
        folders = [f"{image.split}/{label}" for label in image.classifications] or [image.split]
        for folder in folders:
            files[f"{folder}/{_file_name(image)}"] = image.data  # read when the ZIP gets to it
        if image.classifications:
            defaults.append([_file_name(image), image.classifications[0]])
        summary.classifications += len(image.classifications)
        if image.shapes:
            summary.cannot_hold("objects (the classification ZIP holds image labels only)", len(image.shapes))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "default_label"])
    writer.writerows(defaults)
    files["default_labels.csv"] = out.getvalue().encode()
    return Exported("classification.zip", zip_file(files), "application/zip", summary)


def read(content: bytes, *, known: dict[str, tuple[int, int]] | None = None) -> Dataset:
    files = read_zip(content)
    defaults = {}
    if "default_labels.csv" in files:
        for _, row in fields.csv_records(files["default_labels.csv"], "default_labels.csv"):
            defaults[row.get("file") or ""] = row.get("default_label") or ""
    flat = {flat_name(name): name for name in (known or {})}
    images: dict[str, DatasetImage] = {}
    for path in sorted(files):
        parts = path.split("/")
        if path == "default_labels.csv" or len(parts) < 2:
            continue
        if parts[0] not in SPLITS:
            raise FormatError(f"{path}: the top folders must be the splits {' and '.join(SPLITS)}.")
        if len(parts) > 3:
            raise FormatError(f"{path}: expected split/label/image or split/image.")
        file_name = parts[-1]
        image = images.get(file_name)
        if image is None:
            image = DatasetImage(
                name=flat.get(file_name, file_name),
                width=0,
                height=0,
                split=parts[0],
                sha256=hashlib.sha256(files[path]).hexdigest(),
                load=files.reader(path),  # read again only if it is stored: one image in memory at a time
            )
            images[file_name] = image
        if len(parts) == 3 and parts[1] not in image.classifications:
            image.classifications.append(parts[1])
    for file_name, image in images.items():
        default = defaults.get(file_name)
        if default in image.classifications:
            image.classifications.remove(default)
            image.classifications.insert(0, default)
    labels = dict.fromkeys(label for image in images.values() for label in image.classifications)
    return Dataset(labels=[LabelInfo(n) for n in labels], images=list(images.values()), splits_known=True)
