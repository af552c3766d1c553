"""Reading the fields of a file someone gave us: each helper returns the value or raises a FormatError that
names where it is, so that no malformed file reaches a line that would fail with a TypeError (a 500)."""

from __future__ import annotations

import math
from typing import Any

from annotations.formats.base import FormatError


def text(data: bytes, where: str) -> str:
    """A file member as text: UTF-8 (a byte-order mark allowed), without NUL characters PostgreSQL cannot store."""
    try:
        decoded = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{where}: not UTF-8 text (byte {exc.start}).") from None
    if "\x00" in decoded:
        raise FormatError(f"{where}: contains a NUL character.")
    return decoded


def string(value: Any, where: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise FormatError(f"{where}: expected text, got {_kind(value)}.")
    if "\x00" in value:
        raise FormatError(f"{where}: contains a NUL character.")
    return value


def number(value: Any, where: str) -> float:
    """A finite number; numeric text (as XML and CSV hold numbers) is read too."""
    if isinstance(value, bool) or value is None:
        raise FormatError(f"{where}: expected a number, got {_kind(value)}.")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise FormatError(f"{where}: expected a number, got {_kind(value)}.") from None
    if not math.isfinite(result):
        raise FormatError(f"{where}: expected a finite number.")
    return result


def integer(value: Any, where: str, *, minimum: int | None = None) -> int:
    result = number(value, where)
    if result != int(result):
        raise FormatError(f"{where}: expected a whole number.")
    if minimum is not None and result < minimum:
        raise FormatError(f"{where}: must be at least {minimum}.")
    return int(result)


def size(value: Any, where: str) -> int:
    """An image width or height: a whole number from 0 (unknown) to a million."""
    if value in (None, ""):
        return 0
    result = integer(value, where, minimum=0)
    if result > 1_000_000:
        raise FormatError(f"{where}: {result} pixels is not a real image size.")
    return result


def numbers(value: Any, where: str, *, count: int | None = None) -> list[float]:
    if not isinstance(value, list):
        raise FormatError(f"{where}: expected a list of numbers, got {_kind(value)}.")
    if count is not None and len(value) != count:
        raise FormatError(f"{where}: expected {count} numbers, got {len(value)}.")
    return [number(v, f"{where}[{i}]") for i, v in enumerate(value)]


def identifier(value: Any, where: str) -> int | str:
    """An id that other entries refer to: a number or a text, never a list or an object."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise FormatError(f"{where}: expected a number or a text id, got {_kind(value)}.")
    return value


def score(value: Any, where: str) -> float | None:
    if value in (None, ""):
        return None
    result = number(value, where)
    if not 0 <= result <= 1:
        raise FormatError(f"{where}: a score is from 0 to 1, got {result:g}.")
    return result


def json_object(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError(f"{where}: expected an object, got {_kind(value)}.")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"[:60]
    if isinstance(value, str):
        return f"the text {value[:30]!r}"
    return (
        type(value).__name__
        if not isinstance(value, (list, dict))
        else ("a list" if isinstance(value, list) else "an object")
    )


def dataset_text_check(dataset) -> None:
    """Refuse a NUL character anywhere in names, labels or attributes: PostgreSQL cannot store one."""
    for i, label in enumerate(dataset.labels):
        _no_nul([label.name, label.keypoint_template, label.attributes, label.color], f"labels[{i}] ({label.name!r})")
    for image in dataset.images:
        where = f"image {image.name!r}"
        _no_nul([image.name, image.classifications], where)
        for j, shape in enumerate(image.shapes):
            _no_nul([shape.label, shape.kind, shape.attributes, shape.keypoints, shape.source], f"{where} shape {j}")


def _no_nul(values, where: str) -> None:
    import json

    if "\\u0000" in json.dumps(values, default=str):
        raise FormatError(f"{where}: contains a NUL character.")


def source(value: Any) -> str:
    """Who made a shape: manual, smart or prediction; anything else a file says counts as manual."""
    return value if isinstance(value, str) and value in {"manual", "smart", "prediction"} else "manual"


def colour(value: Any, where: str) -> str:
    """A #rrggbb colour, lower case."""
    import re

    if not isinstance(value, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", value.strip()):
        raise FormatError(f"{where}: expected a colour like #1f77b4, got {_kind(value)}.")
    return value.strip().lower()


def csv_records(data: bytes, where: str) -> list[tuple[int, dict]]:
    """A CSV member's rows by its header, each with its line number; a malformed CSV names its line."""
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text(data, where)))
    try:
        return [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise FormatError(f"{where} line {reader.line_num}: {exc}.") from None
