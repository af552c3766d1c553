"""Every write to annotations."""

from collections.abc import Iterable

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
