"""An image's annotation document: read it, and save it whole against the revision it was read at.

The document is the API contract the labeler and scripts share:
`{"revision": n, "classifications": [...], "shapes": [...]}`. A save replaces the image's
annotations in one transaction; a save based on an old revision is refused with the current
document, never merged.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotations import geometry
from annotations.models import Annotation, Classification, ImageStatus
from projects.models import Image, Label

MAX_ATTRIBUTES_BYTES = 4096
SHAPE_FIELDS = {"id", "label", "kind", "geometry", "occluded", "keypoints", "attributes", "source", "score"}
# A client may send back a shape as it read it; these are the server's to set, so they are ignored.
SHAPE_READ_ONLY_FIELDS = {"author", "created_at", "updated_at"}
CLASSIFICATION_FIELDS = {"label", "default"}


class StaleRevision(Exception):
    """The save was based on an older revision; `current` is the document as it is now."""

    def __init__(self, current: dict):
        super().__init__(f"stale revision; the image is at revision {current['revision']}")
        self.current = current


# --- reading ---------------------------------------------------------------------------------


def document_read(*, image: Image) -> dict:
    return {
        "image": image.pk,
        "revision": image.annotation_revision,
        "classifications": classifications_read(image_ids=[image.pk]).get(image.pk, []),
        "shapes": shapes_read(image_ids=[image.pk]).get(image.pk, []),
    }


def classifications_read(*, image_ids: list[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    rows = Classification.objects.filter(image_id__in=image_ids).values_list(
        "image_id", "label_id", "label__name", "is_default"
    )
    for image_id, label_id, name, is_default in rows.order_by("image_id", "-is_default", "label__name"):
        out.setdefault(image_id, []).append({"label": label_id, "name": name, "default": is_default})
    return out


def shapes_read(*, image_ids: list[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    rows = Annotation.objects.filter(image_id__in=image_ids).order_by("image_id", "id").values(
        "id", "image_id", "label_id", "kind", "geometry", "occluded", "keypoints", "attributes", "source", "score",
        "author_id", "created_at", "updated_at",
    )  # fmt: skip
    for row in rows:
        out.setdefault(row["image_id"], []).append({
            "id": row["id"], "label": row["label_id"], "kind": row["kind"], "geometry": row["geometry"],
            "occluded": row["occluded"], "keypoints": row["keypoints"], "attributes": row["attributes"],
            "source": row["source"], "score": row["score"], "author": row["author_id"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
        })  # fmt: skip
    return out


# --- cleaning input --------------------------------------------------------------------------


def _fail(where: str, message: str) -> ValidationError:
    return ValidationError({"shapes": [f"{where}: {message}"]})


def shape_clean(raw: Any, *, where: str, image: Image, labels: dict[int, Label]) -> dict:
    """Validate one incoming shape and return the fields to store. `where` names it in errors."""
    if not isinstance(raw, dict):
        raise _fail(where, "must be a JSON object")
    unknown = sorted(set(raw) - SHAPE_FIELDS - SHAPE_READ_ONLY_FIELDS)
    if unknown:
        raise _fail(where, f"unknown fields: {', '.join(unknown)}")
    label = labels.get(raw.get("label")) if isinstance(raw.get("label"), int) else None
    if label is None:
        raise _fail(where, f"label {raw.get('label')!r} is not a label of this project")
    kind = raw.get("kind")
    try:
        shape_geometry = geometry.validate(kind, raw.get("geometry"), width=image.width, height=image.height)
        keypoints = geometry.validate_keypoints(kind, raw.get("keypoints"), width=image.width, height=image.height)
    except geometry.GeometryError as exc:
        raise _fail(where, str(exc)) from None
    occluded = raw.get("occluded", False)
    if not isinstance(occluded, bool):
        raise _fail(where, "occluded must be true or false")
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict) or len(json.dumps(attributes)) > MAX_ATTRIBUTES_BYTES:
        raise _fail(where, f"attributes must be a JSON object of at most {MAX_ATTRIBUTES_BYTES} bytes")
    source = raw.get("source", Annotation.Source.MANUAL)
    if source not in Annotation.Source.values:
        raise _fail(where, f"source must be one of {', '.join(Annotation.Source.values)}")
    score = raw.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1):
        raise _fail(where, "score must be a number from 0 to 1, or null")
    return {
        "id": raw.get("id") if isinstance(raw.get("id"), int) else None,
        "label": label, "kind": kind, "geometry": shape_geometry, "occluded": occluded, "keypoints": keypoints,
        "attributes": attributes, "source": source, "score": None if score is None else float(score),
    }  # fmt: skip


def classifications_clean(raw: Any, *, labels: dict[int, Label], where: str = "classifications") -> list[tuple]:
    """(label, is_default) pairs; the first is the default when none is marked."""
    if not isinstance(raw, list):
        raise ValidationError({"classifications": [f"{where}: must be a list"]})
    out: list[tuple[Label, bool]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - CLASSIFICATION_FIELDS:
            raise ValidationError({"classifications": [f"{where}[{index}]: must be {{\"label\": id, \"default\": bool}}"]})
        label = labels.get(item.get("label")) if isinstance(item.get("label"), int) else None
        if label is None:
            raise ValidationError(
                {"classifications": [f"{where}[{index}]: label {item.get('label')!r} is not a label of this project"]}
            )
        if any(existing is label for existing, _ in out):
            continue
        out.append((label, bool(item.get("default", False))))
    defaults = [label for label, is_default in out if is_default]
    if len(defaults) > 1:
        raise ValidationError({"classifications": [f"{where}: only one label can be the default"]})
    if out and not defaults:
        out[0] = (out[0][0], True)
    return out


# --- saving ----------------------------------------------------------------------------------


def project_labels(project_id: int) -> dict[int, Label]:
    return {label.pk: label for label in Label.objects.filter(project_id=project_id)}


@transaction.atomic
def document_save(*, image: Image, user, revision: int, classifications: Any, shapes: Any) -> dict:
    """Replace the image's annotations if `revision` is current; raise StaleRevision otherwise."""
    image = Image.objects.select_for_update().select_related("project").get(pk=image.pk)
    if image.annotation_revision != revision:
        raise StaleRevision(document_read(image=image))
    labels = project_labels(image.project_id)
    if not isinstance(shapes, list):
        raise ValidationError({"shapes": ["must be a list"]})
    cleaned = [shape_clean(raw, where=f"shape {i}", image=image, labels=labels) for i, raw in enumerate(shapes)]
    pairs = classifications_clean(classifications, labels=labels)
    _shapes_replace(image, user, cleaned)
    _classifications_replace(image, pairs, sync=image.project.sync_labels, shapes=cleaned)
    _revision_bump(image, user, labeled=bool(cleaned or pairs))
    return document_read(image=image)


def _shapes_replace(image: Image, user, cleaned: list[dict]) -> None:
    existing = {a.pk: a for a in Annotation.objects.filter(image=image)}
    keep, create, update = set(), [], []
    fields = ["label", "kind", "geometry", "occluded", "keypoints", "attributes", "source", "score"]
    now = timezone.now()
    for shape in cleaned:
        current = existing.get(shape["id"])
        if current is None or current.pk in keep:
            create.append(Annotation(image=image, author=user, **{f: shape[f] for f in fields}))
            continue
        keep.add(current.pk)
        if any(getattr(current, f) != shape[f] for f in fields):
            for f in fields:
                setattr(current, f, shape[f])
            current.updated_at = now  # bulk_update does not apply auto_now
            update.append(current)
    Annotation.objects.filter(image=image).exclude(pk__in=keep).delete()
    if update:
        Annotation.objects.bulk_update(update, [*fields, "updated_at"])
    Annotation.objects.bulk_create(create)


def _classifications_replace(image: Image, pairs: list[tuple], *, sync: bool, shapes: list[dict]) -> None:
    if sync:
        present = {label.pk for label, _ in pairs}
        for shape in shapes:
            if shape["label"].pk not in present:
                pairs.append((shape["label"], not pairs))
                present.add(shape["label"].pk)
    Classification.objects.filter(image=image).delete()
    Classification.objects.bulk_create(
        Classification(image=image, label=label, is_default=is_default) for label, is_default in pairs
    )


def _revision_bump(image: Image, user, *, labeled: bool) -> None:
    Image.objects.filter(pk=image.pk).update(annotation_revision=F("annotation_revision") + 1)
    image.refresh_from_db(fields=["annotation_revision"])
    if user is not None and user.is_authenticated:
        ImageStatus.objects.update_or_create(
            image=image, user=user,
            defaults={"status": ImageStatus.Status.LABELED if labeled else ImageStatus.Status.SEEN},
        )  # fmt: skip


# --- many images at once ---------------------------------------------------------------------

MAX_BULK_IMAGES = 10_000


class StaleRevisions(Exception):
    """Some images moved on since the revisions a bulk save named; `current` maps image id -> revision."""

    def __init__(self, current: dict[int, int]):
        super().__init__(f"{len(current)} image(s) have newer revisions")
        self.current = current


@transaction.atomic
def documents_save_many(*, project, user, items: Any, mode: str, names: list[str] | None = None) -> list[dict]:
    """Save annotations of many images in one transaction, for pre-labeling scripts and imports.

    `mode="replace"`: each item's shapes and classifications replace the image's, and its
    `revision` must be current (else StaleRevisions, nothing saved). `mode="append"`: shapes
    and classifications are added to what is there; no revision is needed. `mode="overwrite"`
    (imports): replace without revisions. `names` name the items in error messages.
    """
    if not isinstance(items, list) or not items:
        raise ValidationError({"images": ["must be a non-empty list"]})
    if len(items) > MAX_BULK_IMAGES:
        raise ValidationError({"images": [f"at most {MAX_BULK_IMAGES:,} images per request, got {len(items):,}"]})
    ids = [_bulk_image_id(item, index) for index, item in enumerate(items)]
    if len(set(ids)) != len(ids):
        raise ValidationError({"images": ["each image may appear only once per request"]})
    # Lock in primary-key order so two bulk saves cannot deadlock each other.
    images = {i.pk: i for i in Image.objects.select_for_update().filter(project=project, pk__in=ids).order_by("pk")}
    labels = project_labels(project.pk)
    plans, stale = [], {}
    for index, (item, image_id) in enumerate(zip(items, ids, strict=True)):
        where = f"image {names[index]!r}" if names else f"images[{index}]"
        image = images.get(image_id)
        if image is None:
            raise ValidationError({"images": [f"{where}: image {image_id} is not an image of this project"]})
        if mode == "replace" and item.get("revision") != image.annotation_revision:
            stale[image.pk] = image.annotation_revision
        shapes = item.get("shapes", [])
        if not isinstance(shapes, list):
            raise ValidationError({"shapes": [f"{where}: shapes must be a list"]})
        cleaned = [
            shape_clean(raw, where=f"{where} shape {s}", image=image, labels=labels) for s, raw in enumerate(shapes)
        ]
        pairs = classifications_clean(item.get("classifications", []), labels=labels, where=f"{where} classifications")
        plans.append((image, cleaned, pairs))
    if stale:
        raise StaleRevisions(stale)
    _bulk_apply(project, user, plans, replace=mode in {"replace", "overwrite"})
    revisions = dict(Image.objects.filter(pk__in=ids).values_list("pk", "annotation_revision"))
    return [{"image": image_id, "revision": revisions[image_id]} for image_id in ids]


def _bulk_image_id(item: Any, index: int) -> int:
    if not isinstance(item, dict) or not isinstance(item.get("image"), int):
        raise ValidationError({"images": [f'images[{index}]: must be an object with an integer "image" id']})
    unknown = sorted(set(item) - {"image", "revision", "classifications", "shapes"})
    if unknown:
        raise ValidationError({"images": [f"images[{index}]: unknown fields: {', '.join(unknown)}"]})
    return item["image"]


def _bulk_apply(project, user, plans: list[tuple], *, replace: bool) -> None:
    image_ids = [image.pk for image, _, _ in plans]
    if replace:
        Annotation.objects.filter(image_id__in=image_ids).delete()
        Classification.objects.filter(image_id__in=image_ids).delete()
    existing = set(Classification.objects.filter(image_id__in=image_ids).values_list("image_id", "label_id"))
    has_default = set(
        Classification.objects.filter(image_id__in=image_ids, is_default=True).values_list("image_id", flat=True)
    )
    fields = ["label", "kind", "geometry", "occluded", "keypoints", "attributes", "source", "score"]
    annotations, classifications = [], []
    for image, cleaned, pairs in plans:
        annotations += [Annotation(image=image, author=user, **{f: s[f] for f in fields}) for s in cleaned]
        if project.sync_labels:
            pairs = pairs + [(s["label"], False) for s in cleaned]
        new = []
        for label, is_default in pairs:
            if (image.pk, label.pk) not in existing:
                existing.add((image.pk, label.pk))
                new.append((label, is_default))
        # An image keeps its default; one without gets the label marked default, else the first.
        chosen = None
        if new and image.pk not in has_default:
            chosen = next((label for label, is_default in new if is_default), new[0][0])
        classifications += [Classification(image=image, label=label, is_default=label is chosen) for label, _ in new]
    Annotation.objects.bulk_create(annotations, batch_size=2000)
    Classification.objects.bulk_create(classifications, batch_size=2000)
    Image.objects.filter(pk__in=image_ids).update(annotation_revision=F("annotation_revision") + 1)
    if user is not None and user.is_authenticated:
        ImageStatus.objects.bulk_create(
            [ImageStatus(image_id=pk, user=user, status=ImageStatus.Status.LABELED) for pk in image_ids],
            update_conflicts=True, unique_fields=["image", "user"], update_fields=["status", "updated_at"],
        )  # fmt: skip
