"""An image's annotation document: read it, and save it whole against the revision it was read at.

The document is the API contract the labeler and scripts share:
`{"revision": n, "classifications": [...], "shapes": [...]}`. A save replaces the image's
annotations in one transaction; a save based on an old revision is refused with the current
document, never merged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F

from annotations import geometry
from annotations.models import Annotation, Classification, ImageStatus
from annotations.services.history import history_record
from projects.attributes import value_problem
from projects.models import Image, Label

MAX_ATTRIBUTES_BYTES = 4096
SHAPE_FIELDS = {"id", "label", "kind", "geometry", "occluded", "keypoints", "attributes", "source", "score", "repair"}
# A client may send back a shape as it read it; these are the server's to set, so they are ignored.
SHAPE_READ_ONLY_FIELDS = {"author", "created_at", "updated_at", "model"}
CLASSIFICATION_FIELDS = {"label", "default"}
CLASSIFICATION_READ_ONLY_FIELDS = {"name"}  # a document read and sent back as it is is accepted


class StaleRevision(Exception):
    """The save was based on an older revision; `current` is the document as it is now."""

    def __init__(self, current: dict):
        super().__init__(f"stale revision; the image is at revision {current['revision']}")
        self.current = current


# --- reading ---------------------------------------------------------------------------------


def document_json(*, image_id: int) -> str:
    """The document as JSON text, built by PostgreSQL: a thousand shapes load without a Python round trip."""
    a, c, i, lb = (m._meta.db_table for m in (Annotation, Classification, Image, Label))
    sql = f"""
        SELECT json_build_object(
            'image', i.id,
            'revision', i.annotation_revision,
            'classifications', coalesce((
                SELECT json_agg(json_build_object('label', c.label_id, 'name', l.name, 'default', c.is_default)
                                ORDER BY c.is_default DESC, l.name)
                FROM {c} c JOIN {lb} l ON l.id = c.label_id WHERE c.image_id = i.id), '[]'),
            'shapes', coalesce((
                SELECT json_agg(json_build_object(
                    'id', a.id, 'label', a.label_id, 'kind', a.kind, 'geometry', a.geometry,
                    'occluded', a.occluded, 'keypoints', a.keypoints, 'attributes', a.attributes,
                    'source', a.source, 'score', a.score, 'model', a.model_version_id, 'author', a.author_id,
                    'created_at', a.created_at, 'updated_at', a.updated_at) ORDER BY a.id)
                FROM {a} a WHERE a.image_id = i.id), '[]')
        )::text
        FROM {i} i WHERE i.id = %s
    """  # noqa: S608  (table names come from model metadata, the id is a parameter)
    with connection.cursor() as cursor:
        cursor.execute(sql, [image_id])
        return cursor.fetchone()[0]


def document_read(*, image: Image) -> dict:
    return json.loads(document_json(image_id=image.pk))


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
    rows = (
        Annotation.objects.filter(image_id__in=image_ids)
        .order_by("image_id", "id")
        .values(
            "id",
            "image_id",
            "label_id",
            "kind",
            "geometry",
            "occluded",
            "keypoints",
            "attributes",
            "source",
            "score",
            "model_version_id",
            "author_id",
            "created_at",
            "updated_at",
        )
    )
    for row in rows:
        out.setdefault(row["image_id"], []).append(
            {
                "id": row["id"],
                "label": row["label_id"],
                "kind": row["kind"],
                "geometry": row["geometry"],
                "occluded": row["occluded"],
                "keypoints": row["keypoints"],
                "attributes": row["attributes"],
                "source": row["source"],
                "score": row["score"],
                "model": row["model_version_id"],
                "author": row["author_id"],
                "created_at": row["created_at"].isoformat(),
                "updated_at": row["updated_at"].isoformat(),
            }
        )
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
    repair = raw.get("repair", False)
    if not isinstance(repair, bool):
        raise _fail(where, "repair must be true or false")
    try:
        shape_geometry = geometry.validate(
            kind, raw.get("geometry"), width=image.width, height=image.height, repair=repair
        )
        keypoints = geometry.validate_keypoints(kind, raw.get("keypoints"), width=image.width, height=image.height)
    except geometry.GeometryError as exc:
        raise _fail(where, str(exc)) from None
    occluded = raw.get("occluded", False)
    if not isinstance(occluded, bool):
        raise _fail(where, "occluded must be true or false")
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict) or len(json.dumps(attributes)) > MAX_ATTRIBUTES_BYTES:
        raise _fail(where, f"attributes must be a JSON object of at most {MAX_ATTRIBUTES_BYTES} bytes")
    for definition in label.attributes:
        problem = value_problem(definition, attributes.get(definition["name"]))
        if problem:
            raise _fail(where, f"attribute {definition['name']!r} {problem}")
    source = raw.get("source", Annotation.Source.MANUAL)
    if source not in Annotation.Source.values:
        raise _fail(where, f"source must be one of {', '.join(Annotation.Source.values)}")
    score = raw.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1):
        raise _fail(where, "score must be a number from 0 to 1, or null")
    return {
        "id": raw.get("id") if isinstance(raw.get("id"), int) else None,
        "label": label,
        "kind": kind,
        "geometry": shape_geometry,
        "occluded": occluded,
        "keypoints": keypoints,
        "attributes": attributes,
        "source": source,
        "score": None if score is None else float(score),
        "model": None,  # the model an accepted prediction came from: the server's to set (document_save's models)
    }


def classifications_clean(raw: Any, *, labels: dict[int, Label], where: str = "classifications") -> list[tuple]:
    """(label, is_default) pairs; the first is the default when none is marked."""
    if not isinstance(raw, list):
        raise ValidationError({"classifications": [f"{where}: must be a list"]})
    out: list[tuple[Label, bool]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - CLASSIFICATION_FIELDS - CLASSIFICATION_READ_ONLY_FIELDS:
            raise ValidationError({"classifications": [f'{where}[{index}]: must be {{"label": id, "default": bool}}']})
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
def document_save(
    *, image: Image, user, revision: int, classifications: Any, shapes: Any, models: dict[int, int] | None = None
) -> int:
    """Replace the image's annotations if `revision` is current (returning the new one); raise StaleRevision otherwise.
    `models` (the server's, never a client's) maps a shape's index to the model version whose prediction it was."""
    # NO KEY UPDATE: rows that only point at the image (predictions stored meanwhile) are not blocked.
    image = Image.objects.select_for_update(no_key=True).select_related("project").get(pk=image.pk)
    if image.annotation_revision != revision:
        raise StaleRevision(document_read(image=image))
    labels = project_labels(image.project_id)
    if not isinstance(shapes, list):
        raise ValidationError({"shapes": ["must be a list"]})
    cleaned = [shape_clean(raw, where=f"shape {i}", image=image, labels=labels) for i, raw in enumerate(shapes)]
    for index, model_id in (models or {}).items():
        cleaned[index]["model"] = model_id
    pairs = classifications_clean(classifications, labels=labels)
    _shapes_replace(image, user, cleaned)
    _classifications_replace(image, pairs, sync=image.project.sync_labels, shapes=cleaned)
    _revision_bump(image, user, labeled=bool(cleaned or pairs))
    return image.annotation_revision


def _shapes_replace(image: Image, user, cleaned: list[dict]) -> None:
    """Write the difference: shapes sent back unchanged stay untouched, changed ones update, the rest go."""
    compared = ["label_id", "kind", "geometry", "occluded", "keypoints", "attributes", "source", "score"]
    existing = {row[0]: row[1:] for row in Annotation.objects.filter(image=image).values_list("id", *compared)}
    keep, create, update = set(), [], []
    for shape in cleaned:
        current = existing.get(shape["id"])
        if current is None or shape["id"] in keep:
            create.append(shape)
            continue
        keep.add(shape["id"])
        if current != (shape["label"].pk, *(shape[f] for f in compared[1:])):
            update.append(shape)
    Annotation.objects.filter(image=image).exclude(pk__in=keep).delete()
    _rows_update(update)
    _rows_insert([(image.pk, shape) for shape in create], author_id=getattr(user, "pk", None))


# A thousand shapes per save is normal; the ORM's per-field preparation costs more than the
# database does, so rows travel as one JSON parameter that PostgreSQL expands itself. Inserts
# keep the order they were sent in, so new ids follow it (the labeler maps them back by order).
_RECORD = (
    "r(id bigint, image_id bigint, label_id bigint, kind text, geometry jsonb, occluded boolean, keypoints jsonb, "
    "attributes jsonb, source text, score double precision, model_version_id bigint)"
)


def _records(rows: list[tuple[int, dict]]) -> str:
    return orjson.dumps(
        [
            {
                "id": shape.get("id"),
                "image_id": image_id,
                "label_id": shape["label"].pk,
                "kind": shape["kind"],
                "geometry": shape["geometry"],
                "occluded": shape["occluded"],
                "keypoints": shape["keypoints"],
                "attributes": shape["attributes"],
                "source": shape["source"],
                "score": shape["score"],
                "model_version_id": shape.get("model"),
            }
            for image_id, shape in rows
        ]
    ).decode()


def _rows_insert(rows: list[tuple[int, dict]], *, author_id: int | None) -> None:
    if not rows:
        return
    table = Annotation._meta.db_table
    sql = f"""
        INSERT INTO {table} (image_id, label_id, kind, geometry, occluded, keypoints, attributes, source, score,
                             model_version_id, author_id, created_at, updated_at)
        SELECT r.image_id, r.label_id, r.kind, r.geometry, r.occluded, r.keypoints, r.attributes, r.source, r.score,
               r.model_version_id, %s, clock_timestamp(), clock_timestamp()
        FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(value, position),
             jsonb_to_record(e.value) AS {_RECORD}
        ORDER BY e.position
    """  # noqa: S608  (the table name comes from model metadata; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [author_id, _records(rows)])


def _rows_update(shapes: list[dict]) -> None:
    if not shapes:
        return
    table = Annotation._meta.db_table
    sql = f"""
        UPDATE {table} AS a SET label_id = r.label_id, kind = r.kind, geometry = r.geometry, occluded = r.occluded,
            keypoints = r.keypoints, attributes = r.attributes, source = r.source, score = r.score,
            updated_at = clock_timestamp()
        FROM jsonb_to_recordset(%s::jsonb) AS {_RECORD}
        WHERE a.id = r.id
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [_records([(0, shape) for shape in shapes])])


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
            image=image,
            user=user,
            defaults={"status": ImageStatus.Status.LABELED if labeled else ImageStatus.Status.SEEN},
        )


# --- many images at once ---------------------------------------------------------------------


class StaleRevisions(Exception):
    """Some images moved on since the revisions a bulk save named; `current` maps image id -> revision."""

    def __init__(self, current: dict[int, int]):
        super().__init__(f"{len(current)} image(s) have newer revisions")
        self.current = current


@transaction.atomic
def documents_save_many(
    *, project, user, items: Any, mode: str, names: list[str] | None = None, reason: str = "bulk save"
) -> list[dict]:
    """Save annotations of many images in one transaction, for pre-labeling scripts and imports.

    `mode="replace"`: each item's shapes and classifications replace the image's, and its
    `revision` must be current (else StaleRevisions, nothing saved). `mode="append"`: shapes
    and classifications are added to what is there; no revision is needed. `mode="overwrite"`
    (imports): replace without revisions. `names` name the items in error messages. What a
    replace overwrites is kept in the history first (annotations.services.history), under `reason`.
    """
    if not isinstance(items, list) or not items:
        raise ValidationError({"images": ["must be a non-empty list"]})
    ids = [_bulk_image_id(item, index) for index, item in enumerate(items)]
    if len(set(ids)) != len(ids):
        raise ValidationError({"images": ["each image may appear only once per request"]})
    images = _images_lock(project.pk, ids)
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
    if mode in {"replace", "overwrite"}:
        history_record(image_ids=ids, user=user, reason=reason)
    _bulk_apply(project, user, plans, replace=mode in {"replace", "overwrite"})
    return [{"image": image_id, "revision": images[image_id].annotation_revision + 1} for image_id in ids]


@dataclass(frozen=True)
class _LockedImage:
    pk: int
    width: int
    height: int
    annotation_revision: int


def _images_lock(project_id: int, ids: list[int]) -> dict[int, _LockedImage]:
    """Lock the project's images with these ids, in primary-key order so two bulk saves cannot deadlock.

    Light rows and one array parameter: an import locks hundreds of thousands of images.
    """
    table = Image._meta.db_table
    sql = f"""
        SELECT i.id, i.width, i.height, i.annotation_revision
        FROM {table} i JOIN unnest(%s::bigint[]) AS wanted(id) ON i.id = wanted.id
        WHERE i.project_id = %s ORDER BY i.id FOR UPDATE OF i
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids, project_id])
        return {row[0]: _LockedImage(*row) for row in cursor.fetchall()}


def _bulk_image_id(item: Any, index: int) -> int:
    if not isinstance(item, dict) or not isinstance(item.get("image"), int):
        raise ValidationError({"images": [f'images[{index}]: must be an object with an integer "image" id']})
    unknown = sorted(set(item) - {"image", "revision", "classifications", "shapes"})
    if unknown:
        raise ValidationError({"images": [f"images[{index}]: unknown fields: {', '.join(unknown)}"]})
    return item["image"]


# Joining an unnested array hashes; `id = ANY(array)` compares every row with every id.
_IDS = "unnest(%s::bigint[]) AS ids(id)"


def _bulk_apply(project, user, plans: list[tuple], *, replace: bool) -> None:
    """Set-based writes for many images: one array or JSON parameter per statement, no model objects."""
    image_ids = [image.pk for image, _, _ in plans]
    a, c, i, s = (m._meta.db_table for m in (Annotation, Classification, Image, ImageStatus))
    with connection.cursor() as cursor:
        if replace:
            for table in (a, c):
                cursor.execute(f"DELETE FROM {table} t USING {_IDS} WHERE t.image_id = ids.id", [image_ids])  # noqa: S608
        cursor.execute(f"SELECT image_id, label_id, is_default FROM {c} JOIN {_IDS} ON image_id = ids.id", [image_ids])  # noqa: S608
        existing, has_default = set(), set()
        for image_id, label_id, is_default in cursor.fetchall():
            existing.add((image_id, label_id))
            if is_default:
                has_default.add(image_id)
        annotations, classifications = [], []
        for image, cleaned, pairs in plans:
            annotations += [(image.pk, shape) for shape in cleaned]
            if project.sync_labels:
                pairs = pairs + [(shape["label"], False) for shape in cleaned]
            new = []
            for label, is_default in pairs:
                if (image.pk, label.pk) not in existing:
                    existing.add((image.pk, label.pk))
                    new.append((label, is_default))
            # An image keeps its default; one without gets the label marked default, else the first.
            chosen = None
            if new and image.pk not in has_default:
                chosen = next((label for label, is_default in new if is_default), new[0][0])
            classifications += [(image.pk, label.pk, label is chosen) for label, _ in new]
        for start in range(0, len(annotations), 20_000):
            _rows_insert(annotations[start : start + 20_000], author_id=getattr(user, "pk", None))
        if classifications:
            image_col, label_col, default_col = (list(column) for column in zip(*classifications, strict=True))
            cursor.execute(
                f"""INSERT INTO {c} (image_id, label_id, is_default, created_at)
                    SELECT *, clock_timestamp() FROM unnest(%s::bigint[], %s::bigint[], %s::boolean[])""",  # noqa: S608
                [image_col, label_col, default_col],
            )
        cursor.execute(
            f"UPDATE {i} SET annotation_revision = annotation_revision + 1 FROM {_IDS} WHERE {i}.id = ids.id",  # noqa: S608
            [image_ids],
        )
        if user is not None and user.is_authenticated:
            cursor.execute(
                f"""INSERT INTO {s} (image_id, user_id, status, updated_at)
                    SELECT image_id, %s, %s, clock_timestamp() FROM unnest(%s::bigint[]) AS image_id
                    ON CONFLICT (image_id, user_id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at""",  # noqa: S608
                [user.pk, ImageStatus.Status.LABELED.value, image_ids],
            )
