"""What every format reads and writes: a plain, Django-free picture of a project's annotations.

Exporting turns the database into a `Dataset` and a format writes it; importing has a format
read a `Dataset`, which one service applies in one transaction. Formats know nothing of models.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO


class FormatError(ValueError):
    """The file cannot be imported; the message names the line, entry or field, for a person."""


@dataclass
class LabelInfo:
    name: str
    color: str | None = None  # None: the project's next palette colour
    keypoint_template: list[str] = field(default_factory=list)
    attributes: list[dict] = field(default_factory=list)  # definitions, as projects/attributes.py has them


@dataclass
class Shape:
    label: str
    kind: str
    geometry: dict
    occluded: bool = False
    keypoints: list[dict] = field(default_factory=list)
    attributes: dict = field(default_factory=dict)
    source: str = "manual"
    score: float | None = None


@dataclass
class DatasetImage:
    name: str
    width: int
    height: int
    classifications: list[str] = field(default_factory=list)  # the first is the default
    shapes: list[Shape] = field(default_factory=list)
    split: str = "train"  # "train" or "valid"
    sha256: str = ""
    content: bytes | None = None  # the image bytes, for formats that carry them (an import's, read from the file)
    suffix: str = ".jpg"
    load: Callable[[], bytes] | None = None  # an export's: reads the stored file when the writer gets to it

    @property
    def has_data(self) -> bool:
        return self.content is not None or self.load is not None

    def data(self) -> bytes | None:
        """The image's bytes, read only now, so an export holds one image in memory at a time."""
        return self.content if self.content is not None else (self.load() if self.load else None)


@dataclass
class Dataset:
    labels: list[LabelInfo] = field(default_factory=list)
    images: list[DatasetImage] = field(default_factory=list)
    splits_known: bool = False  # the file says which images are in the validation set

    def label(self, name: str) -> LabelInfo:
        return next(label for label in self.labels if label.name == name)


@dataclass
class Summary:
    """What an export wrote and what it could not hold; what an import read and what it skipped."""

    images: int = 0
    shapes: int = 0
    classifications: int = 0
    not_held: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped: list[str] = field(default_factory=list)

    def cannot_hold(self, reason: str, count: int = 1) -> None:
        self.not_held[reason] = self.not_held.get(reason, 0) + count

    def as_dict(self) -> dict:
        return {
            "images": self.images,
            "shapes": self.shapes,
            "classifications": self.classifications,
            "not_held": [{"reason": r, "count": c} for r, c in sorted(self.not_held.items())],
            "skipped": self.skipped,
        }


@dataclass
class Exported:
    """A written export: a file object at its start (a temporary file for archives, so that nothing big is held
    in memory) that the caller streams to a response or to storage."""

    filename: str
    file: BinaryIO
    media_type: str
    summary: Summary

    @classmethod
    def of(cls, filename: str, content: bytes, media_type: str, summary: Summary) -> Exported:
        return cls(filename, io.BytesIO(content), media_type, summary)

    @property
    def content(self) -> bytes:
        """The whole file (small exports and tests); the position is left at the start."""
        self.file.seek(0)
        data = self.file.read()
        self.file.seek(0)
        return data

    @property
    def size(self) -> int:
        self.file.seek(0, io.SEEK_END)
        size = self.file.tell()
        self.file.seek(0)
        return size


# Already compressed: storing them again deflated costs time and saves nothing.
STORED_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".zip")


class ZipOut:
    """A ZIP written member by member into a temporary file on disk."""

    def __init__(self):
        self.file = tempfile.TemporaryFile()
        self.archive = zipfile.ZipFile(self.file, "w", zipfile.ZIP_DEFLATED)

    def write(self, name: str, data: bytes) -> None:
        method = zipfile.ZIP_STORED if name.lower().endswith(STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
        self.archive.writestr(name, data, compress_type=method)

    def copy(self, archive: zipfile.ZipFile) -> None:
        """Every member of another ZIP, streamed across."""
        for info in archive.infolist():
            with archive.open(info) as source, self.archive.open(info.filename, "w") as target:
                shutil.copyfileobj(source, target, 1024 * 1024)

    def close(self) -> BinaryIO:
        self.archive.close()
        self.file.seek(0)
        return self.file


def zip_file(files: dict[str, bytes | Callable[[], bytes]]) -> BinaryIO:
    """A ZIP of these files as a temporary file; a callable value is read only when its turn comes."""
    out = ZipOut()
    for name, data in files.items():
        out.write(name, data() if callable(data) else data)
    return out.close()


def stem(name: str) -> str:
    """An image name without its extension, keeping folders: 'a/b.png' -> 'a/b'."""
    head, _, tail = name.rpartition("/")
    base = tail.rsplit(".", 1)[0] if "." in tail else tail
    return f"{head}/{base}" if head else base


class ZipMembers(Mapping):
    """An import archive's files by path, read one at a time when asked for (never all at once), after the
    whole archive passed the same checks as image uploads (paths, bombs, sizes)."""

    def __init__(self, content: bytes):
        from projects import archives

        try:
            self.archive, members = archives.open_checked(io.BytesIO(content), limits=archives.limits_from_settings())
        except archives.ArchiveRejected as exc:
            raise FormatError(str(exc)) from None
        self.members = {info.filename: info for info in members}

    def __getitem__(self, path: str) -> bytes:
        from projects import archives

        try:
            return archives.member_read(self.archive, self.members[path])
        except archives.ArchiveRejected as exc:
            raise FormatError(str(exc)) from None

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def reader(self, path: str) -> Callable[[], bytes]:
        """Reads the file when called: what an image the archive carries keeps instead of its bytes."""
        return lambda: self[path]


def read_zip(content: bytes) -> ZipMembers:
    return ZipMembers(content)


def flat_name(name: str) -> str:
    """An image name as one path segment (its folders joined by '__'), for formats with a file per image."""
    return name.replace("/", "__")


def by_stem(known: dict[str, tuple[int, int]] | None) -> dict[str, str]:
    """Image names keyed by their flattened stem, to find the image a per-image file belongs to."""
    return {stem(flat_name(name)): name for name in (known or {})}


def tidy(value: float) -> float:
    """Undo arithmetic noise from normalising or subtracting: a millionth of a pixel is below anything drawn."""
    return round(value, 6) + 0.0


def with_images(exported: Exported, dataset: Dataset, *, path_of) -> Exported:
    """The export and every image in one ZIP: a ZIP export gains an `images/` folder, a single file
    (COCO's JSON) becomes the ZIP's first member. `path_of(image)` names each image's file in it.
    Images are read one at a time as they are written."""
    out = ZipOut()
    if exported.filename.endswith(".zip"):
        with zipfile.ZipFile(exported.file) as archive:
            out.copy(archive)
    else:
        with out.archive.open(exported.filename, "w") as target:
            shutil.copyfileobj(exported.file, target, 1024 * 1024)
    exported.file.close()
    for image in dataset.images:
        if image.has_data:
            out.write(f"images/{path_of(image)}", image.data())
    stem_name = exported.filename.rsplit(".", 1)[0]
    return Exported(f"{stem_name}-with-images.zip", out.close(), "application/zip", exported.summary)


def archived_images(files: ZipMembers) -> dict[str, Callable[[], bytes]]:
    """Readers of the images an import archive carries in its `images/` folder, by their path below it."""
    return {path.removeprefix("images/"): files.reader(path) for path in files if path.startswith("images/")}


def is_zip(content: bytes) -> bool:
    return content[:4] == b"PK\x03\x04"


def upright_size(content: bytes, *, where: str) -> tuple[int, int]:
    """An image's width and height as Sightline stores it (EXIF orientation applied), without decoding it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112) in {5, 6, 7, 8}
    except (UnidentifiedImageError, OSError):
        raise FormatError(f"{where}: not an image Sightline can read.") from None
    return (height, width) if turned else (width, height)
