"""The image upload service: many files (or ZIPs of them) per request, each stored or refused alone."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
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
from projects.permissions import project_permissions
from projects.services import labels_get_or_create, labels_validate

DUPLICATE = "The same image is already in this project (duplicate)."
UPLOAD_BATCH = 50  # files whose rows commit together


@dataclass(frozen=True)
class Rejection:
    name: str
    reason: str


@dataclass
class UploadResult:
    stored: list[Image] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # Names that would have become new labels, had the uploader the right to create labels.
    labels_not_created: list[str] = field(default_factory=list)

    @property
    def notice(self) -> str:
        if not self.labels_not_created:
            return ""
        names = ", ".join(self.labels_not_created)
        return (
            f"The images were stored without the labels {names}: they do not exist in this project, and your role "
            "may not create labels. Ask someone who manages labels to add them."
        )


@dataclass
class _Batch:
    """What one request has written so far, so that a failure can take its files back."""

    project: Project
    user: User
    result: UploadResult = field(default_factory=UploadResult)
    seen: set[str] = field(default_factory=set)
    labels: dict[str, Label] = field(default_factory=dict)  # created on the first stored image that needs them
    may_create_labels: bool = True
    written: list[Image] = field(default_factory=list)  # every image whose files are on disk
    pk: int | None = None  # the id the one image takes (reserved for it: a SeeMe item's)


def images_upload(*, project: Project, user: User, files: list[UploadedFile], labels: list[str]) -> UploadResult:
    """Store every acceptable image, refuse the rest one by one with a reason.

    `labels` (classification labels typed at upload) go on every stored image; inside a ZIP,
    each image's folder name is added as a label too. Labels that do not exist are created, but
    only when an image that carries them is stored: a refused upload leaves no label behind, and only when
    the user may manage labels; otherwise the images are stored without them, and the result says which.
    Rows are committed UPLOAD_BATCH files at a time, so a large upload holds no transaction (and no
    lock) for its whole length. An unexpected error takes back the batch it happened in, rows and
    files; the batches before it stay stored.
    """
    may_create = "manage_labels_project" in project_permissions(user, project)
    batch = _Batch(project=project, user=user, may_create_labels=may_create)
    try:
        common = labels_validate(project=project, names=labels)
    except ValidationError as exc:
        raise ValidationError({"labels": exc.messages}) from None
    for start in range(0, len(files), UPLOAD_BATCH):
        batch.written = []
        committed = len(batch.result.stored)
        try:
            with transaction.atomic():
                for upload in files[start : start + UPLOAD_BATCH]:
                    _store_upload(batch, upload, common)
                if len(batch.result.stored) > committed:
                    # New images join the similarity index in the background, once they are committed.
                    from similarity.services import embeddings_schedule

                    embeddings_schedule(project_id=project.pk)
        except BaseException:
            for image in batch.written:
                image_files_delete(image)
            del batch.result.stored[committed:]
            raise
    return batch.result


def images_store(
    *, project: Project, user: User, named: Iterable[tuple[str, bytes]], pk: int | None = None
) -> UploadResult:
    """Store images that arrive as bytes (an import archive's, read one at a time), each checked as an upload is;
    `pk`: the id reserved for the one image given (image_id_reserve).

    Runs inside the caller's transaction; the caller deletes `stored` images' files if it fails later.
    """
    batch = _Batch(project=project, user=user, pk=pk)
    try:
        for name, data in named:
            _store_one(batch, name, data, [])
    except BaseException:
        for image in batch.written:
            image_files_delete(image)
        raise
    if batch.result.stored:
        from similarity.services import embeddings_schedule

        embeddings_schedule(project_id=project.pk)
    return batch.result


def _store_upload(batch: _Batch, upload: UploadedFile, common: list[str]) -> None:
    name = upload.name or "unnamed"
    if _looks_like_zip(upload):
        _store_archive(batch, upload, common)
        return
    if upload.size > settings.SIGHTLINE_MAX_UPLOAD_BYTES:
        reason = f"The file is {upload.size:,} bytes; the limit is {settings.SIGHTLINE_MAX_UPLOAD_BYTES:,}."
        batch.result.rejected.append(Rejection(name, reason))
        return
    _store_one(batch, name, upload.read(), common)


def _looks_like_zip(upload: UploadedFile) -> bool:
    upload.seek(0)
    head = upload.read(4)
    upload.seek(0)
    return archives.is_zip(upload.name or "", head)


def _store_archive(batch: _Batch, upload: UploadedFile, common: list[str]) -> None:
    """A ZIP is stored as a unit: if it turns out unsafe part-way, none of it stays.

    Its images are named by their path inside the ZIP (the part that tells them apart); refusals
    name the ZIP too, so a person finds the file.
    """
    limits = archives.limits_from_settings()
    before = (len(batch.result.stored), len(batch.result.rejected), set(batch.seen), dict(batch.labels))
    try:
        with transaction.atomic():
            for entry in archives.read_entries(upload, limits=limits):
                shown = f"{upload.name}/{entry.path}"
                if entry.refusal is not None:
                    batch.result.rejected.append(Rejection(shown, entry.refusal))
                    continue
                folder = _folder_label(batch, entry.folder)
                if isinstance(folder, Rejection):
                    batch.result.rejected.append(Rejection(shown, folder.reason))
                    continue
                _store_one(batch, entry.path, entry.data, [*common, *folder], shown=shown)
    except archives.ArchiveRejected as exc:
        stored, rejected, seen, labels = before
        batch.labels = labels
        for image in batch.result.stored[stored:]:
            image_files_delete(image)
        del batch.result.stored[stored:]
        del batch.result.rejected[rejected:]
        batch.seen = seen
        batch.result.rejected.append(Rejection(upload.name, str(exc)))


def _folder_label(batch: _Batch, folder: str | None) -> list[str] | Rejection:
    """The folder's label name, checked now and created only with the first image stored under it."""
    if folder is None:
        return []
    try:
        return labels_validate(project=batch.project, names=[folder])
    except ValidationError as exc:
        return Rejection(folder, f"Its folder name {folder[:40]!r} cannot be a label: {' '.join(exc.messages)}")


def _store_one(batch: _Batch, name: str, data: bytes, labels: list[str], *, shown: str | None = None) -> None:
    shown = shown or name
    # The hash is of the uploaded bytes: a duplicate is refused before it costs a decode.
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 in batch.seen or Image.objects.filter(project=batch.project, sha256=sha256).exists():
        batch.result.rejected.append(Rejection(shown, DUPLICATE))
        return
    try:
        decoded = decode_image(data, thumbnail_size=settings.SIGHTLINE_THUMBNAIL_SIZE)
    except ImageRejected as exc:
        batch.result.rejected.append(Rejection(shown, str(exc)))
        return
    image = _image_save(batch, name, decoded)
    if image is None:  # a concurrent upload of the same bytes won the race
        batch.result.rejected.append(Rejection(shown, DUPLICATE))
        return
    batch.seen.add(decoded.sha256)
    classifications_add(images=[image], labels=_labels_for(batch, labels))
    batch.result.stored.append(image)


def _labels_for(batch: _Batch, names: list[str]) -> list[Label]:
    names = list(dict.fromkeys(names))  # a ZIP folder may repeat a label typed for the whole upload
    missing = [name for name in names if name not in batch.labels]
    if batch.may_create_labels:
        found = labels_get_or_create(project=batch.project, names=missing)
    else:
        found = list(Label.objects.filter(project=batch.project, name__in=missing))
        for name in sorted(set(missing) - {label.name for label in found}):
            if name not in batch.result.labels_not_created:
                batch.result.labels_not_created.append(name)
    for label in found:
        batch.labels[label.name] = label
    return [batch.labels[name] for name in names if name in batch.labels]


def _image_save(batch: _Batch, name: str, decoded: DecodedImage) -> Image | None:
    image = Image(
        pk=batch.pk,
        project=batch.project,
        name=name[-255:],
        width=decoded.width,
        height=decoded.height,
        sha256=decoded.sha256,
        uploaded_by=batch.user,
    )
    batch.written.append(image)
    image.file.save(f"upload{decoded.suffix}", ContentFile(decoded.content), save=False)
    image.thumbnail.save("thumbnail.webp", ContentFile(decoded.thumbnail), save=False)
    try:
        with transaction.atomic():
            image.save(force_insert=True)
    except IntegrityError:
        image_files_delete(image)
        return None
    return image


def image_files_delete(image: Image) -> None:
    """Remove an image's file and thumbnail from storage (its row is the caller's, or a rolled-back one)."""
    image.file.delete(save=False)
    image.thumbnail.delete(save=False)


def image_id_reserve() -> int:
    """An id no image has or will be given: for an item that exists before its image (the SeeMe SDK's)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('projects_image', 'id'))")
        return int(cursor.fetchone()[0])
