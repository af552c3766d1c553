"""CSV classification labels: the file name, then its labels, rows of varying length (spec 000)."""

from __future__ import annotations

import csv
import io

from annotations.formats.base import Dataset, DatasetImage, Exported, FormatError, Summary

KEY = "csv"


def write(dataset: Dataset) -> Exported:
    summary = Summary(images=len(dataset.images))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for image in dataset.images:
        writer.writerow([image.name, *image.classifications])
        summary.classifications += len(image.classifications)
        if image.shapes:
            summary.cannot_hold("objects (CSV holds classification labels only)", len(image.shapes))
    return Exported.of("labels.csv", out.getvalue().encode(), "text/csv", summary)


def read(content: bytes, *, known: dict[str, tuple[int, int]] | None = None) -> Dataset:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"The CSV is not UTF-8 text ({exc}).") from None
    dataset = Dataset()
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            name = row[0].strip()
            if not name:
                raise FormatError(f"Line {reader.line_num}: the first field must be the image's file name.")
            labels = [cell.strip() for cell in row[1:] if cell.strip()]
            dataset.images.append(DatasetImage(name=name, width=0, height=0, classifications=labels))
    except csv.Error as exc:
        raise FormatError(f"The CSV cannot be read: {exc}.") from None
    return dataset
