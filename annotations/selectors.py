"""Reads that cross users and projects: the labeling-time tables of spec 000."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, QuerySet, Sum
from django.http import HttpResponse

from annotations.models import LabelingSession
from projects.permissions import projects_for_user
from projects.selectors import ids_parse


@dataclass(frozen=True)
class TimeFilter:
    start: dt.date | None = None
    end: dt.date | None = None
    user_id: int | None = None
    project_id: int | None = None


def labeling_sessions_visible(user) -> QuerySet[LabelingSession]:
    """Everyone's time in projects where `user` manages members (owners, admins); elsewhere only their own."""
    managed = projects_for_user(user, "manage_members_project").values("pk")
    visible = projects_for_user(user).values("pk")
    return LabelingSession.objects.filter(project__in=visible).filter(Q(project__in=managed) | Q(user=user))


def labeling_time(user, filters: TimeFilter) -> dict:
    """Two tables: seconds per day, project and user; and total seconds per project (and user)."""
    sessions = labeling_sessions_visible(user)
    if filters.start:
        sessions = sessions.filter(day__gte=filters.start)
    if filters.end:
        sessions = sessions.filter(day__lte=filters.end)
    if filters.user_id:
        sessions = sessions.filter(user_id=filters.user_id)
    if filters.project_id:
        sessions = sessions.filter(project_id=filters.project_id)
    per_day = (
        sessions.values("day", "project_id", "project__name", "user_id", "user__username")
        .annotate(seconds=Sum("active_seconds"))
        .order_by("-day", "project__name", "user__username")
    )
    totals = (
        sessions.values("project_id", "project__name", "user_id", "user__username")
        .annotate(seconds=Sum("active_seconds"))
        .order_by("project__name", "user__username")
    )
    return {
        "per_day": [_row(r, day=True) for r in per_day],
        "totals": [_row(r, day=False) for r in totals],
    }


def _row(row: dict, *, day: bool) -> dict:
    out = {"day": row["day"].isoformat()} if day else {}
    out.update(
        {
            "project": row["project_id"],
            "project_name": row["project__name"],
            "user": row["user_id"],
            "username": row["user__username"],
            "seconds": round(row["seconds"], 1),
        }
    )
    return out


def labeling_time_csv(rows: list[dict], *, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    columns = (["day"] if rows and "day" in rows[0] else []) + [
        "project",
        "project_name",
        "user",
        "username",
        "seconds",
    ]
    writer = csv.DictWriter(response, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return response


@dataclass(frozen=True)
class Walk:
    """Where an image sits among the images the labeler walks."""

    previous: int | None
    next: int | None
    position: int  # 1-based; 0 when the image is outside the filter
    total: int
    ahead: list[int]  # the next few ids, whose smart-tool embeddings are worth computing now


def image_neighbours(*, project, image, user, filters: dict, ahead: int = 0) -> Walk:
    """Previous and next image ids, the image's position and the count, within the grid's filters.

    Labeling walks the filtered images only when a filter is on (spec 000); the order is the
    grid's, newest first. Keyset queries on the id: no request loads every id of a large project.
    """
    images = filtered_images(project=project, user=user, filters=filters)
    total = images.count()
    if not images.filter(pk=image.pk).exists():
        first = list(images.order_by("-id").values_list("id", flat=True)[: max(ahead, 1)])
        return Walk(None, first[0] if first else None, 0, total, first[:ahead])
    newer = images.filter(pk__gt=image.pk)
    previous = newer.order_by("id").values_list("id", flat=True).first()
    following = list(images.filter(pk__lt=image.pk).order_by("-id").values_list("id", flat=True)[: max(ahead, 1)])
    return Walk(previous, following[0] if following else None, newer.count() + 1, total, following[:ahead])


def image_window(*, project, user, filters: dict, image_id: int, before: int, after: int) -> list[int]:
    """The ids around `image_id` in the walk's order (newest first): up to `before` newer ones, it, `after` older."""
    images = filtered_images(project=project, user=user, filters=filters)
    newer = list(images.filter(pk__gt=image_id).order_by("id").values_list("id", flat=True)[:before])
    rest = list(images.filter(pk__lte=image_id).order_by("-id").values_list("id", flat=True)[: after + 1])
    return [*reversed(newer), *rest]


def filtered_images(*, project, user, filters: dict):
    """The grid's images: only the chosen ones (`ids`) or the filtered ones when given."""
    from annotations.filters import images_filter
    from projects.models import Image

    images = Image.objects.for_project(project)
    chosen = ids_parse(filters.get("ids", "").split(","))
    if chosen:
        images = images.filter(pk__in=chosen)
    rest = {k: v for k, v in filters.items() if k != "ids"}
    if any(rest.values()):
        images = images_filter(images, project=project, user=user, **rest)
    return images
