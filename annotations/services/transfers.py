"""Moving a project's annotations in and out: build a Dataset from the database, apply one to it."""

from __future__ import annotations

import functools
import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from annotations.formats import FORMAT_NAMES, FORMATS, fields
from annotations.formats.base import (
    Dataset,
    DatasetImage,
    Exported,
    FormatError,
    LabelInfo,
    Shape,
    Summary,
    with_images,
)
from annotations.services import documents
from jobs.services import job_submit
from projects.files import stored_bytes
from projects.models import Image, Label, Project
from projects.services import label_create

CHUNK = 2000  # images read per query batch, so memory stays flat on big projects


def dataset_build(*, project: Project, with_content: bool = False, progress=None) -> Dataset:
    """Everything the project holds, as a plain Dataset whose images are read CHUNK at a time as a format
    iterates them (image bytes only when a format carries them, and only when it writes each one)."""
    labels = list(project.labels.order_by("name"))
    dataset = Dataset(
        labels=[
            LabelInfo(label.name, label.color, list(label.keypoint_template), list(label.attributes))
            for label in labels
        ]
    )
    rows = list(
        Image.objects.for_project(project)
        .order_by("id")
        .values_list("id", "name", "width", "height", "is_validation", "sha256", "file")
    )
    dataset.images = ProjectImages(rows, {label.pk: label.name for label in labels}, with_content, progress)
    return dataset


class ProjectImages:
    """The project's images for an export, loaded with their annotations one chunk at a time on each pass,
    so a large project's shapes are never all in memory at once. Supports len() and iteration."""

    def __init__(self, rows: list[tuple], names: dict[int, str], with_content: bool, progress):
        self.rows, self.names, self.with_content, self.progress = rows, names, with_content, progress

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        for start in range(0, len(self.rows), CHUNK):
            yield from self._chunk(self.rows[start : start + CHUNK])
            if self.progress:
                self.progress(min(1.0, (start + CHUNK) / max(len(self.rows), 1)))
        self.progress = None  # a second pass (the images of an export that includes them) reports nothing new

    def _chunk(self, chunk: list[tuple]) -> list[DatasetImage]:
        ids = [row[0] for row in chunk]
        classifications = documents.classifications_read(image_ids=ids)
        shapes = documents.shapes_read(image_ids=ids)
        images = []
        for image_id, name, width, height, is_validation, sha256, file_name in chunk:
            image = DatasetImage(
                name=name,
                width=width,
                height=height,
                split="valid" if is_validation else "train",
                sha256=sha256,
                classifications=[c["name"] for c in classifications.get(image_id, [])],
                shapes=[_shape(s, self.names) for s in shapes.get(image_id, [])],
                suffix=file_name[file_name.rfind(".") :] if "." in file_name else ".jpg",
            )
            if self.with_content:  # read when the format writes it, one image at a time
                image.load = functools.partial(stored_bytes, file_name)
            images.append(image)
        return images


def _shape(row: dict, names: dict[int, str]) -> Shape:
    return Shape(
        label=names[row["label"]],
        kind=row["kind"],
        geometry=row["geometry"],
        occluded=row["occluded"],
        keypoints=row["keypoints"],
        attributes=row["attributes"],
        source=row["source"],
        score=row["score"],
    )


def project_export(*, project: Project, format_key: str, include_images: bool = False, progress=None) -> Exported:
    """The project in a format; `include_images` puts the image files in the same ZIP (COCO, YOLO)."""
    module = FORMATS[format_key]
    if include_images and not getattr(module, "INCLUDES_IMAGES", False):
        raise FormatError(f"{FORMAT_NAMES[format_key]} exports cannot include the images; COCO and YOLO can.")
    carries = getattr(module, "CARRIES_IMAGES", False)
    dataset = dataset_build(project=project, with_content=carries or include_images, progress=progress)
    if not dataset.images:
        raise FormatError("The project has no images yet; there is nothing to export.")
    exported = module.write(dataset)
    return with_images(exported, dataset, path_of=module.image_path) if include_images else exported


def project_import(
    *, project: Project, user, format_key: str, content: bytes, mode: str = "append", progress=None
) -> Summary:
    """Read the file, then apply it in one transaction; a malformed file raises and imports nothing.

    Labels the file names that the project lacks are created only if `user` may manage labels.
    `progress(fraction, phase)` hears of the steps; it is never called inside the transaction, so a
    job's row is not locked by it while the import holds its locks.
    """
    progress = progress or (lambda fraction, phase=None: None)
    module = FORMATS[format_key]
    known = {name: (w, h) for name, w, h in Image.objects.for_project(project).values_list("name", "width", "height")}
    dataset = _read(module, content, known)
    may_create = _may_create_labels(user, project)
    progress(0.3, f"Applying {len(dataset.images)} images' annotations")
    written = []
    try:
        with transaction.atomic():
            written = _carried_images_store(project=project, user=user, dataset=dataset, known=known)
            summary = dataset_apply(
                project=project, user=user, dataset=dataset, mode=mode, may_create_labels=may_create
            )
    except BaseException:
        from projects.uploads import image_files_delete

        for image in written:  # the transaction took the rows back; the files go here
            image_files_delete(image)
        raise
    progress(1.0, "Imported")
    return summary


def _read(module, content: bytes, known: dict) -> Dataset:
    """The format's picture of the file; anything malformed is a 400 that names where."""
    try:
        dataset = module.read(content, known=known)
        fields.dataset_text_check(dataset)
    except FormatError as exc:
        raise ValidationError({"file": [str(exc)]}) from None
    return dataset


def _carried_images_store(*, project: Project, user, dataset: Dataset, known: dict) -> list:
    """Store the images an archive carries that the project lacks, so their annotations have somewhere to go.

    Needs the right to upload; an image the upload checks refuse (corrupt, too large, a duplicate
    under another name) is named in the summary's skipped list by the apply step.
    """
    from projects.permissions import project_permissions
    from projects.uploads import image_files_delete, images_store

    shas = set(Image.objects.for_project(project).values_list("sha256", flat=True))
    carried = []
    for entry in dataset.images:
        if not entry.has_data or entry.name in known:
            continue
        entry.sha256 = entry.sha256 or hashlib.sha256(entry.data()).hexdigest()
        if entry.sha256 not in shas:  # the same bytes under another name are matched, not stored again
            carried.append(entry)
            shas.add(entry.sha256)
    if not carried:
        return []
    if "upload_project" not in project_permissions(user, project):
        raise ValidationError(
            {"file": ["The archive brings images the project lacks, and your role may not upload images."]}
        )
    # Read from the archive as each is stored: one image's bytes in memory at a time.
    result = images_store(project=project, user=user, named=((entry.name, entry.data()) for entry in carried))
    if result.rejected:
        for image in result.stored:  # the rows go with the transaction; their files go here
            image_files_delete(image)
        refused = "; ".join(f"{r.name}: {r.reason}" for r in result.rejected[:5])
        raise ValidationError({"file": [f"Images in the archive were refused, so nothing was imported: {refused}"]})
    return result.stored


def import_preview(*, project: Project, format_key: str, upload) -> dict:
    """How many images, objects and classification labels a replace with this file would overwrite.

    A file small enough to import at once is read to find the images it names; for a larger one the
    answer is an upper bound, the whole project, so the page never reads a big file in a request.
    """
    from annotations.models import Annotation, Classification

    images = Image.objects.for_project(project)
    exact = upload.size <= SYNC_IMPORT_BYTES
    if exact:
        known = {name: (w, h) for name, w, h in images.values_list("name", "width", "height")}
        dataset = _read(FORMATS[format_key], upload.read(), known)
        names = [entry.name for entry in dataset.images]
        shas = [entry.sha256 for entry in dataset.images if entry.sha256]
        images = images.filter(Q(name__in=names) | Q(sha256__in=shas))
    return {
        "exact": exact,
        "images": images.count(),
        "objects": Annotation.objects.filter(image__in=images).count(),
        "classifications": Classification.objects.filter(image__in=images).count(),
    }


def dataset_apply(*, project: Project, user, dataset: Dataset, mode: str, may_create_labels: bool = True) -> Summary:
    summary = Summary()
    rows = Image.objects.for_project(project).values_list("name", "pk", "sha256", "is_validation")
    by_name = {name: (pk, is_validation) for name, pk, _, is_validation in rows}
    by_sha = {sha256: (pk, is_validation) for _, pk, sha256, is_validation in rows}
    labels = _labels_ensure(project, dataset, may_create=may_create_labels)
    items, names, validation = [], [], {True: [], False: []}
    for entry in dataset.images:
        found = by_name.get(entry.name) or (by_sha.get(entry.sha256) if entry.sha256 else None)
        if found is None:
            summary.skipped.append(f"{entry.name}: no image of this name in the project")
            continue
        pk, is_validation = found
        items.append(
            {
                "image": pk,
                "classifications": [{"label": labels[name].pk} for name in entry.classifications],
                "shapes": [_raw_shape(shape, labels) for shape in entry.shapes],
            }
        )
        names.append(entry.name)
        if dataset.splits_known and is_validation != (entry.split == "valid"):
            validation[entry.split == "valid"].append(pk)
        summary.images += 1
        summary.shapes += len(entry.shapes)
        summary.classifications += len(entry.classifications)
    if items:
        documents.documents_save_many(
            project=project,
            user=user,
            items=items,
            mode="overwrite" if mode == "replace" else "append",
            names=names,
            reason="import",
        )
    for flag, ids in validation.items():
        Image.objects.filter(pk__in=ids).update(is_validation=flag)
    return summary


def _labels_ensure(project: Project, dataset: Dataset, *, may_create: bool) -> dict[str, Label]:
    """The project's labels by name, creating those the file names (with its colours and templates)."""
    labels = {label.name: label for label in project.labels.all()}
    infos = {info.name: info for info in dataset.labels}
    wanted = list(infos) + [n for image in dataset.images for n in image.classifications]
    wanted += [shape.label for image in dataset.images for shape in image.shapes]
    for name in dict.fromkeys(wanted):
        if name in labels:
            continue
        if not may_create:
            raise ValidationError(
                {"file": [f"Label {name!r} is not in this project, and your role may not create labels."]}
            )
        info = infos.get(name)
        try:
            labels[name] = label_create(
                project=project,
                name=name,
                color=info.color if info and _is_color(info.color) else None,
                keypoint_template=info.keypoint_template if info else None,
                attributes=info.attributes if info else None,
            )
        except ValidationError as exc:
            raise ValidationError({"file": [f"Label {name!r}: {' '.join(exc.messages)}"]}) from None
    return labels


def _is_color(value: str | None) -> bool:
    return (
        value is not None
        and len(value) == 7
        and value.startswith("#")
        and all(c in "0123456789abcdefABCDEF" for c in value[1:])
    )


def _raw_shape(shape: Shape, labels: dict[str, Label]) -> dict:
    return {
        "label": labels[shape.label].pk,
        "kind": shape.kind,
        "geometry": shape.geometry,
        "occluded": shape.occluded,
        "keypoints": shape.keypoints,
        "attributes": shape.attributes,
        "source": shape.source,
        "score": shape.score,
        "repair": True,  # other tools' files hold self-intersecting polygons: import them made valid
    }


# --- background jobs -------------------------------------------------------------------------

# Below these, the API answers at once; above, it starts a job and answers 202.
SYNC_EXPORT_IMAGES = 2000
SYNC_IMPORT_BYTES = 5 * 1024 * 1024


def transfer_start(
    *,
    project: Project,
    user,
    direction: str,
    format_key: str,
    upload=None,
    mode: str = "append",
    include_images: bool = False,
):
    """Create the job row (an import's file stored with it) and queue it once the row is committed."""
    from annotations.models import TransferJob

    if format_key not in FORMATS:
        raise ValidationError({"format": [f"Unknown format {format_key!r}; use one of {', '.join(FORMATS)}."]})
    if include_images and not getattr(FORMATS[format_key], "INCLUDES_IMAGES", False):
        raise ValidationError({"include_images": [f"{FORMAT_NAMES[format_key]} exports cannot include the images."]})
    job = TransferJob(
        kind=direction,
        project=project,
        created_by=user,
        direction=direction,
        format=format_key,
        mode=mode,
        include_images=include_images,
    )
    if upload is not None:
        job.filename = _name_shorten(upload.name or "upload")
        job.file.save(job.filename, upload, save=False)
    with transaction.atomic():
        job.save()
        job_submit(job)
    return job


def _name_shorten(name: str, limit: int = 100) -> str:
    """A file name that fits the job's columns, keeping its extension (a long name is not an error)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
    if len(name) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".")
    suffix = f".{suffix[:10]}" if dot and stem else ""
    return (stem if dot and stem else name)[: limit - len(suffix)] + suffix


def transfer_execute(job, context) -> str:
    """The export and import kinds' work (jobs.registry): write the file, or apply one, and say what it held."""
    from django.core.files import File

    from annotations.models import TransferJob

    job = TransferJob.objects.select_related("project", "created_by").get(pk=job.pk)

    def progress(fraction: float, phase: str | None = None) -> None:
        context.check()
        context.progress(fraction, phase)

    try:
        if job.direction == TransferJob.Direction.EXPORT:
            context.progress(0, "Reading the project")
            exported = project_export(
                project=job.project, format_key=job.format, include_images=job.include_images, progress=progress
            )
            context.progress(0.95, f"Storing {exported.filename}")
            with exported.file:  # streamed to storage in chunks (multipart on S3)
                job.file.save(exported.filename, File(exported.file, name=exported.filename), save=False)
            job.filename, job.summary = exported.filename, exported.summary.as_dict()
        else:
            context.progress(0, f"Reading {job.filename}")
            with job.file.open("rb") as stored:
                content = stored.read()
            context.check()
            job.summary = project_import(
                project=job.project,
                user=job.created_by,
                format_key=job.format,
                content=content,
                mode=job.mode,
                progress=progress,
            ).as_dict()
    except FormatError as exc:
        raise ValidationError(str(exc)) from None
    TransferJob.objects.filter(pk=job.pk).update(file=job.file.name, filename=job.filename, summary=job.summary)
    return _summary_text(job.summary)


def _summary_text(summary: dict) -> str:
    parts = [f"{summary.get(key, 0)} {key}" for key in ("images", "shapes", "classifications")]
    return ", ".join(parts)


def _may_create_labels(user, project: Project) -> bool:
    from projects.permissions import project_permissions

    return user is not None and "manage_labels_project" in project_permissions(user, project)
