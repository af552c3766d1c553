"""Read a ZIP of images safely: no paths out of the archive, no bombs, bounded memory.

An unsafe archive is refused whole, before any of it is read: a ZIP with one `../` entry is
somebody's mistake or an attack, and half of it imported is worse than none.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# Entries the OS or an archiver adds that are nobody's images.
IGNORED_PREFIXES = ("__MACOSX/",)
IGNORED_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
# Ratios only matter for entries big enough to hurt; small files compress well honestly.
RATIO_FLOOR_BYTES = 1024 * 1024


class ArchiveRejected(ValueError):
    """The archive is refused whole; the message says why, for a person."""


@dataclass(frozen=True)
class Limits:
    max_entries: int
    max_unpacked_bytes: int
    max_ratio: int
    max_entry_bytes: int


def limits_from_settings() -> Limits:
    """The configured limits, for every place that reads a ZIP a person sent (uploads and imports)."""
    from django.conf import settings

    return Limits(
        max_entries=settings.SIGHTLINE_ZIP_MAX_ENTRIES,
        max_unpacked_bytes=settings.SIGHTLINE_ZIP_MAX_UNPACKED_BYTES,
        max_ratio=settings.SIGHTLINE_ZIP_MAX_RATIO,
        max_entry_bytes=settings.SIGHTLINE_MAX_UPLOAD_BYTES,
    )


@dataclass(frozen=True)
class ArchiveEntry:
    path: str
    folder: str | None  # the folder an entry sits in, which becomes its classification label
    data: bytes | None  # None when the entry is refused alone; `refusal` says why
    refusal: str | None = None


def is_zip(name: str, head: bytes) -> bool:
    return name.lower().endswith(".zip") or head.startswith(b"PK\x03\x04")


def read_entries(fileobj: BinaryIO, *, limits: Limits) -> Iterator[ArchiveEntry]:
    """Check the whole archive first, then yield its files one at a time."""
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError):
        raise ArchiveRejected("This is not a valid ZIP archive.") from None
    with archive:
        members = _checked_members(archive, limits)
        for info in members:
            folder = _folder(info.filename)
            if info.file_size > limits.max_entry_bytes:
                refusal = f"The file is {info.file_size:,} bytes; the limit is {limits.max_entry_bytes:,}."
                yield ArchiveEntry(path=info.filename, folder=folder, data=None, refusal=refusal)
                continue
            yield ArchiveEntry(path=info.filename, folder=folder, data=_read(archive, info))


def open_checked(fileobj: BinaryIO, *, limits: Limits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The archive, open, and its files, once the whole of it passed the checks; read each with `member_read`."""
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError):
        raise ArchiveRejected("This is not a valid ZIP archive.") from None
    try:
        members = _checked_members(archive, limits)
        for info in members:
            if info.file_size > limits.max_entry_bytes:
                raise ArchiveRejected(
                    f"{info.filename}: the file is {info.file_size:,} bytes; the limit is {limits.max_entry_bytes:,}."
                )
    except BaseException:
        archive.close()
        raise
    return archive, members


def member_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    return _read(archive, info)


def _checked_members(archive: zipfile.ZipFile, limits: Limits) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveRejected(f"The archive has {len(infos):,} entries; the limit is {limits.max_entries:,}.")
    total = 0
    members = []
    for info in infos:
        _check_path(info.filename)
        if info.flag_bits & 0x1:
            raise ArchiveRejected(f"{info.filename} is encrypted; upload an archive without a password.")
        total += info.file_size
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ArchiveRejected(
                f"{info.filename} unpacks {info.file_size / max(info.compress_size, 1):,.0f} times larger than it "
                f"is packed (limit {limits.max_ratio}:1); this looks like a ZIP bomb."
            )
        if not info.is_dir() and not _ignored(info.filename):
            members.append(info)
    if total > limits.max_unpacked_bytes:
        raise ArchiveRejected(f"The archive unpacks to {total:,} bytes; the limit is {limits.max_unpacked_bytes:,}.")
    # Many small entries each under the floor can still add up to a bomb: the whole archive is checked too.
    packed = sum(info.compress_size for info in infos)
    if total > RATIO_FLOOR_BYTES and total > limits.max_ratio * max(packed, 1):
        raise ArchiveRejected(
            f"The archive unpacks {total / max(packed, 1):,.0f} times larger than it is packed (limit "
            f"{limits.max_ratio}:1); this looks like a ZIP bomb."
        )
    return members


def _check_path(name: str) -> None:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise ArchiveRejected(f"The archive holds an absolute path ({name}); refusing it.")
    if ".." in normalised.split("/"):
        raise ArchiveRejected(f"The archive holds a path leading outside it ({name}); refusing it.")
    if "\x00" in name:
        raise ArchiveRejected("The archive holds a file name with a NUL byte; refusing it.")


def _ignored(name: str) -> bool:
    base = posixpath.basename(name)
    return name.startswith(IGNORED_PREFIXES) or base in IGNORED_NAMES or base.startswith("._")


def _folder(name: str) -> str | None:
    parent = posixpath.dirname(name.replace("\\", "/"))
    return posixpath.basename(parent) or None


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    # Never trust the declared size: read one byte past it and refuse an entry that lies.
    try:
        with archive.open(info) as stream:
            data = stream.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise ArchiveRejected(f"{info.filename} cannot be unpacked ({exc}).") from None
    if len(data) > info.file_size:
        raise ArchiveRejected(f"{info.filename} unpacks larger than the archive declares; refusing it.")
    return data
