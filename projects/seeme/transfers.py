"""Export and import of a SeeMe dataset version as the SDK's ZIP layouts.

- Classification: one folder per split, then one per label: `train/gull/bird01.png`; an image with no label sits
  in its split's folder, and one in no split in `_no_split/`. An image in several splits is in the first of them.
- Object detection (the version has boxes): flat YOLO, as the SDK's `import_yolo_dataset` reads it: `{split}.txt`
  listing bare image names, each image beside a `.txt` of its boxes (empty when it has none), `{version_id}.names`
  (one label per line, its line the class index) and `config.json` with every label's colour.

Import takes the classification layout: splits and labels are matched by name, and made when missing."""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from collections import defaultdict
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from annotations.models import Annotation, Classification
from annotations.services import classifications_add, classifications_set_many
from projects import archives
from projects.files import stored_bytes
from projects.models import Image, Label, Project, Split
from projects.seeme.services import NO_SPLIT
from projects.services import labels_get_or_create
from projects.uploads import image_files_delete, images_store

MAX_EXPORT_IMAGES = 5000  # a GET that answers a ZIP at once; larger exports go through the web app's export job


def has_boxes(project: Project) -> bool:
    return Annotation.objects.filter(image__project=project, kind="box").exists()


def _members(project: Project, only: Split | None) -> dict[int, list[str]]:
    """Each image's split (for `only` one split if given). An image in several splits is exported in the first
    (`valid` before the others, then by id), as the layouts and the SDK's import take each image once. The whole
    version's export holds the images in no split too (those uploaded in the web app, say), with no split."""
    splits = [only] if only else list(Split.objects.filter(project=project))
    found: dict[int, list[str]] = defaultdict(list)
    if only is None:
        for pk in Image.objects.filter(project=project).values_list("pk", flat=True):
            found[pk] = []
    for split in splits:
        ids = (
            Image.objects.filter(project=project, is_validation=True).values_list("pk", flat=True)
            if split.name == Split.VALID
            else split.images.values_list("pk", flat=True)
        )
        for pk in ids:
            found[pk].append(split.name)
    first = sorted(splits, key=lambda split: (split.name != Split.VALID, split.pk))
    order = {split.name: n for n, split in enumerate(first)}
    return {pk: sorted(names, key=order.__getitem__)[:1] for pk, names in found.items()}


def _part(text: str) -> str:
    """A name safe as one part of an archive path: no folder, no "..", never empty."""
    cleaned = text.replace("/", "_").replace("\\", "_").strip().lstrip(".")
    return cleaned or "_"


RESERVED_STEMS = {"config"}  # config.json; split lists and .names are kept apart by _file_names' `taken`


def _file_names(images: list[Image], taken: set[str]) -> dict[int, str]:
    """A flat name per image, whose stem is unique in the archive (YOLO pairs b0.png with b0.txt) and is none of
    `taken` (the split lists' and the label file's stems): its own, or with its id in front."""
    flat = {image.pk: _part(image.name.replace("/", "_")) for image in images}
    stems: dict[str, int] = defaultdict(int)
    for name in flat.values():
        stems[PurePosixPath(name).stem.lower()] += 1
    blocked = {stem.lower() for stem in taken} | RESERVED_STEMS
    out = {}
    for pk, name in flat.items():
        stem = PurePosixPath(name).stem.lower()
        out[pk] = name if stems[stem] == 1 and stem not in blocked else f"{pk}-{name}"
    return out


def _exported_id(name: str) -> int | None:
    """The image id `_file_names` put in front of a name it had to change, if the name has one."""
    prefix, dash, _ = name.partition("-")
    return int(prefix) if dash and prefix.isdigit() else None


def version_export(*, project: Project, only: Split | None = None):
    """The version (or one split of it) as the SDK's ZIP, in a temporary file positioned at its start."""
    members = _members(project, only)
    images = list(Image.objects.filter(project=project, pk__in=list(members)).order_by("id"))
    if len(images) > MAX_EXPORT_IMAGES:
        raise ValidationError(
            {"download": f"{len(images)} images: export at most {MAX_EXPORT_IMAGES} here, or use the web app's export."}
        )
    splits = [only.name] if only else list(Split.objects.filter(project=project).values_list("name", flat=True))
    names = _file_names(images, {_part(name) for name in splits} | {str(project.pk), NO_SPLIT})
    out = tempfile.TemporaryFile()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        if has_boxes(project):
            _yolo(archive, project, images, names, members, [_part(name) for name in splits])
        else:
            _folders(archive, project, images, names, members)
    out.seek(0)
    return out


def _folders(archive, project, images, names, members) -> None:
    labels = defaultdict(list)
    rows = Classification.objects.filter(image__in=images).order_by("-is_default", "id")
    for image_id, name in rows.values_list("image_id", "label__name"):
        labels[image_id].append(name)
    for image in images:
        data = stored_bytes(image.file.name)
        for split in members[image.pk] or [NO_SPLIT]:
            folder = f"{_part(split)}/{_part(labels[image.pk][0])}" if labels[image.pk] else _part(split)
            archive.writestr(f"{folder}/{names[image.pk]}", data)


def _yolo(archive, project, images, names, members, splits: list[str]) -> None:
    labels = list(Label.objects.filter(project=project).order_by("id"))
    index = {label.pk: n for n, label in enumerate(labels)}
    boxes = defaultdict(list)
    for image_id, label_id, g in Annotation.objects.filter(image__in=images, kind="box").values_list(
        "image_id", "label_id", "geometry"
    ):
        boxes[image_id].append((label_id, g))
    listed = {split: [] for split in splits}  # an empty split's list too: the SDK's import opens each it is told of
    for image in images:
        archive.writestr(names[image.pk], stored_bytes(image.file.name))
        lines = [
            f"{index[label_id]} {(g['x'] + g['width'] / 2) / image.width:.6f} "
            f"{(g['y'] + g['height'] / 2) / image.height:.6f} {g['width'] / image.width:.6f} "
            f"{g['height'] / image.height:.6f}"
            for label_id, g in boxes[image.pk]
        ]
        archive.writestr(f"{PurePosixPath(names[image.pk]).stem}.txt", "".join(line + "\n" for line in lines))
        for split in members[image.pk]:
            listed[_part(split)].append(names[image.pk])
    for split, files in listed.items():
        archive.writestr(f"{split}.txt", "".join(name + "\n" for name in files))
    archive.writestr(f"{project.pk}.names", "".join(label.name + "\n" for label in labels))
    archive.writestr("config.json", json.dumps({"colors": {label.name: label.color for label in labels}}))


def _known_by_stored_bytes(project, members, hashes, *, known: dict[str, Image]) -> dict[str, Image]:
    """The version's images that files the upload hashes missed are, matched by their exported name and then by the
    bytes stored. An EXIF-turned photo is stored upright, so its export's bytes are not the bytes first uploaded."""
    missed = [(info, sha256) for info, sha256 in zip(members, hashes, strict=True) if sha256 not in known]
    if not missed:
        return {}
    names = {PurePosixPath(info.filename).name for info, _ in missed}
    ids = {pk for pk in map(_exported_id, names) if pk is not None}
    candidates = (
        Image.objects.filter(project=project)
        .filter(Q(name__in=names) | Q(pk__in=ids))
        .exclude(pk__in=[image.pk for image in known.values()])
    )
    by_stored = {hashlib.sha256(stored_bytes(image.file.name)).hexdigest(): image for image in candidates}
    return {sha256: by_stored[sha256] for _, sha256 in missed if sha256 in by_stored}


def version_import(*, project: Project, user, fileobj) -> dict:
    """The classification layout into the version, in one transaction: `{split}/{label}/{file}` or
    `{split}/{file}`. A file whose bytes the version (or the archive, in another folder) has already is that image:
    it gains the folder's split and label, so importing an export again changes nothing, and an image exported in
    several folders is one image. A refused archive, or a file that is no image, leaves nothing behind."""
    try:
        archive, members = archives.open_checked(fileobj, limits=archives.limits_from_settings())
    except archives.ArchiveRejected as exc:
        raise ValidationError({"file": str(exc)}) from None
    stored: list[Image] = []
    try:
        with archive, transaction.atomic():
            for info in members:
                if len(PurePosixPath(info.filename).parts) not in (2, 3):
                    raise ValidationError({"file": f"{info.filename}: expected split/label/file or split/file."})
            try:
                hashes = [hashlib.sha256(archives.member_read(archive, info)).hexdigest() for info in members]
                images = {i.sha256: i for i in Image.objects.filter(project=project, sha256__in=set(hashes))}
                images.update(_known_by_stored_bytes(project, members, hashes, known=images))
                new: dict[str, zipfile.ZipInfo] = {}  # the first file of each image the version lacks
                for info, sha256 in zip(members, hashes, strict=True):
                    if sha256 not in images:
                        new.setdefault(sha256, info)
                named = ((PurePosixPath(i.filename).name, archives.member_read(archive, i)) for i in new.values())
                result = images_store(project=project, user=user, named=named)
            except archives.ArchiveRejected as exc:  # a member found damaged as it is read
                raise ValidationError({"file": str(exc)}) from None
            stored = result.stored
            if result.rejected:
                refused = result.rejected[0]
                raise ValidationError({"file": f"{refused.name}: {refused.reason}"})
            new_ids = {image.pk for image in stored}
            images.update((image.sha256, image) for image in stored)
            splits = {split.name: split for split in Split.objects.filter(project=project)}
            labelled: dict[Label, list[int]] = defaultdict(list)  # images the version had, by the label they gain
            for info, sha256 in zip(members, hashes, strict=True):
                image = images[sha256]
                parts = PurePosixPath(info.filename).parts
                name = parts[0][:100]
                if name not in splits and name != NO_SPLIT:
                    splits[name] = Split.objects.create(project=project, name=name)
                if name == Split.VALID:
                    Image.objects.filter(pk=image.pk).update(is_validation=True)
                elif name != NO_SPLIT:
                    splits[name].images.add(image)
                if len(parts) == 3:
                    [label] = labels_get_or_create(project=project, names=[parts[1]])
                    if image.pk in new_ids:
                        classifications_add(images=[image], labels=[label])
                    else:
                        labelled[label].append(image.pk)
            for label, image_ids in labelled.items():  # locked, with a new revision, as the labeler's saves are
                classifications_set_many(project=project, image_ids=image_ids, label=label, present=True)
    except BaseException:
        for image in stored:
            image_files_delete(image)
        raise
    return {
        "images": len(stored),
        "known": len(members) - len(stored),
        "splits": sorted({PurePosixPath(i.filename).parts[0] for i in members}),
    }
