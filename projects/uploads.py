"""The image upload service: many files (or ZIPs of them) per request, each stored or refused alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from accounts.models import User
from annotations.services import classifications_add
from projects import archives
from projects.imaging import DecodedImage, ImageRejected, decode_image
from projects.models import Image, Label, Project
from projects.services import labels_get_or_create


@dataclass(frozen=True)
class Rejection:
    name: str
    reason: str


@dataclass
class UploadResult:
    stored: list[Image] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def images_upload(*, project: Project, user: User, files: list[UploadedFile], labels: list[str]) -> UploadResult:
    """Store every acceptable image, refuse the rest one by one with a reason.

    `labels` (classification labels typed at upload) go on every stored image; inside a ZIP,
    each image's folder name is added as a label too. Labels that do not exist are created.
    """
    result = UploadResult()
    try:
        common = labels_get_or_create(project=project, names=labels)
    except ValidationError as exc:
        raise ValidationError({"labels": exc.messages}) from None
    seen: set[str] = set()
    for upload in files:
        name = upload.name or "unnamed"
        if upload.size > settings.SIGHTLINE_MAX_UPLOAD_BYTES and not _looks_like_zip(upload):
            result.rejected.append(
                Rejection(name, f"The file is {upload.size:,} bytes; the limit is {settings.SIGHTLINE_MAX_UPLOAD_BYTES:,}.")
            )
            continue
        if _looks_like_zip(upload):
            _store_archive(project, user, upload, common, seen, result)
        else:
            _store_one(project, user, name, upload.read(), common, seen, result)
    return result


def _looks_like_zip(upload: UploadedFile) -> bool:
    upload.seek(0)
    head = upload.read(4)
    upload.seek(0)
    return archives.is_zip(upload.name or "", head)


def _store_archive(project, user, upload, common, seen, result) -> None:
    """A ZIP is stored as a unit: if it turns out unsafe part-way, none of it stays."""
    limits = archives.Limits(
        max_entries=settings.SIGHTLINE_ZIP_MAX_ENTRIES,
        max_unpacked_bytes=settings.SIGHTLINE_ZIP_MAX_UNPACKED_BYTES,
        max_ratio=settings.SIGHTLINE_ZIP_MAX_RATIO,
    )
    archive_result = UploadResult()
    archive_seen = set(seen)
    try:
        with transaction.atomic():
            for entry in archives.read_entries(upload, limits=limits):
                folder_labels = labels_get_or_create(project=project, names=[entry.folder]) if entry.folder else []
                _store_one(
                    project, user, f"{upload.name}/{entry.path}", entry.data,
                    [*common, *folder_labels], archive_seen, archive_result,
                )  # fmt: skip
    except archives.ArchiveRejected as exc:
        for image in archive_result.stored:
            _delete_files(image)
        result.rejected.append(Rejection(upload.name, str(exc)))
        return
    seen |= archive_seen
    result.stored += archive_result.stored
    result.rejected += archive_result.rejected


def _store_one(project, user, name: str, data: bytes, labels: list[Label], seen: set[str], result) -> None:
    try:
        decoded = decode_image(
            data, max_pixels=settings.SIGHTLINE_MAX_IMAGE_PIXELS, thumbnail_size=settings.SIGHTLINE_THUMBNAIL_SIZE
        )
    except ImageRejected as exc:
        result.rejected.append(Rejection(name, str(exc)))
        return
    if decoded.sha256 in seen or Image.objects.filter(project=project, sha256=decoded.sha256).exists():
        result.rejected.append(Rejection(name, "The same image is already in this project (duplicate)."))
        return
    image = _image_save(project, user, name, decoded)
    if image is None:  # a concurrent upload of the same bytes won the race
        result.rejected.append(Rejection(name, "The same image is already in this project (duplicate)."))
        return
    seen.add(decoded.sha256)
    classifications_add(images=[image], labels=labels)
    result.stored.append(image)


def _image_save(project: Project, user: User, name: str, decoded: DecodedImage) -> Image | None:
    image = Image(
        project=project,
        name=name[-255:],
        width=decoded.width,
        height=decoded.height,
        sha256=decoded.sha256,
        uploaded_by=user,
    )
    image.file.save(f"upload{decoded.suffix}", ContentFile(decoded.content), save=False)
    image.thumbnail.save("thumbnail.webp", ContentFile(decoded.thumbnail), save=False)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        _delete_files(image)
        return None
    return image


def _delete_files(image: Image) -> None:
    image.file.delete(save=False)
    image.thumbnail.delete(save=False)

