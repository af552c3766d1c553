"""What bulk replaces overwrote: recorded before they write, restored image by image, purged on request."""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction

from annotations.models import Annotation, Classification, ReplacedDocument
from projects.models import Image


def history_record(*, image_ids: list[int], user, reason: str) -> int:
    """Keep the current annotations of these images (those that have any), set-based; returns how many were kept."""
    a, c, i, h = (m._meta.db_table for m in (Annotation, Classification, Image, ReplacedDocument))
    sql = f"""
        INSERT INTO {h} (image_id, revision, shapes, classifications, reason, replaced_by_id, replaced_at)
        SELECT i.id, i.annotation_revision,
            coalesce((SELECT jsonb_agg(jsonb_build_object(
                'label', a.label_id, 'kind', a.kind, 'geometry', a.geometry, 'occluded', a.occluded,
                'keypoints', a.keypoints, 'attributes', a.attributes, 'source', a.source, 'score', a.score,
                'model', a.model_version_id)
                ORDER BY a.id) FROM {a} a WHERE a.image_id = i.id), '[]'::jsonb),
            coalesce((SELECT jsonb_agg(jsonb_build_object('label', c.label_id, 'default', c.is_default)
                ORDER BY c.is_default DESC, c.id) FROM {c} c WHERE c.image_id = i.id), '[]'::jsonb),
            %s, %s, clock_timestamp()
        FROM {i} i JOIN unnest(%s::bigint[]) AS ids(id) ON i.id = ids.id
        WHERE EXISTS (SELECT 1 FROM {a} a WHERE a.image_id = i.id)
           OR EXISTS (SELECT 1 FROM {c} c WHERE c.image_id = i.id)
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [reason, getattr(user, "pk", None), image_ids])
        return cursor.rowcount


@transaction.atomic
def history_restore(*, entry: ReplacedDocument, user) -> int:
    """Put an image's replaced annotations back as a new revision (what it had since is kept in turn)."""
    from annotations.services.documents import document_save  # documents records history: import here, not at the top
    from training.models import ModelVersion

    image = Image.objects.select_for_update().get(pk=entry.image_id)
    history_record(image_ids=[image.pk], user=user, reason="restore")
    # Accepted predictions come back with the model they came from, if it still exists.
    wanted = {shape["model"] for shape in entry.shapes if shape.get("model")}
    # FOR KEY SHARE (which the ORM does not offer): a model being deleted meanwhile waits for this restore.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {ModelVersion._meta.db_table} WHERE id = ANY(%s) FOR KEY SHARE",  # noqa: S608
            [sorted(wanted)],
        )
        alive = {row[0] for row in cursor.fetchall()}
    return document_save(
        image=image,
        user=user,
        revision=image.annotation_revision,
        classifications=entry.classifications,
        shapes=entry.shapes,
        models={i: shape["model"] for i, shape in enumerate(entry.shapes) if shape.get("model") in alive},
    )


def history_purge(*, before: datetime, project_id: int | None = None) -> int:
    """Forget what was replaced before `before` (in one project, or everywhere); returns how many went."""
    entries = ReplacedDocument.objects.filter(replaced_at__lt=before)
    if project_id is not None:
        entries = entries.filter(image__project_id=project_id)
    deleted, _ = entries.delete()
    return deleted
