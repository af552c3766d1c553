"""Every write to annotations: classification labels, image statuses and labeling time here, and one module
per larger subject: documents (an image's whole annotations, saved against its revision, and bulk saves),
transfers (imports and exports, and their jobs) and history (what bulk replaces overwrote)."""

from collections.abc import Iterable

from django.db import transaction

from annotations.models import Classification, ImageStatus
from projects.models import Image, Label


def classifications_add(*, images: Iterable[Image], labels: list[Label]) -> None:
    """Give each image these classification labels; the first becomes the default where none is set yet."""
    if not labels:
        return
    images = list(images)
    existing = set(
        Classification.objects.filter(image__in=images, label__in=labels).values_list("image_id", "label_id")
    )
    with_default = set(
        Classification.objects.filter(image__in=images, is_default=True).values_list("image_id", flat=True)
    )
    rows = []
    for image in images:
        for label in labels:
            if (image.id, label.id) in existing:
                continue
            is_default = image.id not in with_default
            with_default.add(image.id)
            rows.append(Classification(image=image, label=label, is_default=is_default))
    Classification.objects.bulk_create(rows)


def image_seen(*, image: Image, user) -> None:
    """Mark the image seen by `user`, keeping a 'labeled' status."""
    ImageStatus.objects.get_or_create(image=image, user=user, defaults={"status": ImageStatus.Status.SEEN})


# Heartbeats further apart than this mean the person was away; the gap is not counted.
IDLE_SECONDS = 60


def labeling_heartbeat(*, image: Image, user, now=None) -> float:
    """Count the time since this user's last heartbeat on this image today, if they were not idle.

    Time is measured here, on the server: the client only says "still here".
    Returns the active seconds of this user on this image today.
    """
    from django.utils import timezone

    from annotations.models import LabelingSession

    now = now or timezone.now()
    with transaction.atomic():
        session, created = LabelingSession.objects.select_for_update().get_or_create(
            user=user,
            image=image,
            day=timezone.localdate(now),
            defaults={"project_id": image.project_id, "last_heartbeat_at": now},
        )
        if not created:
            gap = (now - session.last_heartbeat_at).total_seconds()
            if 0 < gap <= IDLE_SECONDS:
                session.active_seconds += gap
            session.last_heartbeat_at = max(now, session.last_heartbeat_at)
            session.save(update_fields=["active_seconds", "last_heartbeat_at"])
    return session.active_seconds


@transaction.atomic
def classifications_set_many(*, project, image_ids: list[int], label: Label, present: bool) -> int:
    """Give the images `label` (present) or take it away; each changed image gets a new revision.

    Where the label was an image's default, its next label (by name) becomes the default. Returns
    how many images changed. Ids of other projects' images are ignored.
    """
    from django.db.models import F

    # Locked in primary-key order, as every bulk save locks them: a labeler saving one of these
    # images meanwhile waits instead of inserting the same label twice.
    rows = Image.objects.for_project(project).filter(pk__in=image_ids).order_by("pk").select_for_update()
    locked = list(rows.values_list("pk", flat=True))
    images = Image.objects.filter(pk__in=locked)
    if present:
        changed = list(images.exclude(classifications__label=label).values_list("pk", flat=True))
        classifications_add(images=Image.objects.filter(pk__in=changed), labels=[label])
    else:
        rows = Classification.objects.filter(image__in=images, label=label)
        changed = list(rows.values_list("image_id", flat=True))
        orphaned = list(rows.filter(is_default=True).values_list("image_id", flat=True))
        rows.delete()
        heirs = Classification.objects.filter(image_id__in=orphaned).order_by("image_id", "label__name")
        Classification.objects.filter(pk__in=heirs.distinct("image_id").values("pk")).update(is_default=True)
    Image.objects.filter(pk__in=changed).update(annotation_revision=F("annotation_revision") + 1)
    return len(changed)
