"""Reads of jobs through the permission chokepoint: a job in a project you may not see is a 404."""

from __future__ import annotations

from django.http import Http404

from jobs.models import Job
from jobs.registry import kind_find
from projects.permissions import access_child, access_project

LIST_LIMIT = 200


def jobs_for_project(*, user, project_id: int):
    """The project's jobs of every kind, newest first, and the project."""
    project = access_project(user, project_id)
    return project, Job.objects.for_project(project).select_related("created_by")[:LIST_LIMIT]


def job_get(*, user, job_id: int, project_id: int | None = None) -> Job:
    return access_child(
        user,
        Job.objects.select_related("created_by").filter(pk=job_id).first(),
        "view_project",
        "No such job.",
        project_id=project_id,
    )


def job_for_cancel(*, user, job_id: int, project_id: int | None = None) -> Job:
    """The job, if `user` may cancel it: the right that starts a job of its kind (404 for a stranger, 403 without it)."""
    job = job_get(user=user, job_id=job_id, project_id=project_id)
    kind = kind_find(job.kind)
    if kind is None:
        raise Http404("No such job.")
    access_project(user, job.project_id, kind.permission)
    return job


def job_out(job: Job, *, perms: set[str] | None = None) -> dict:
    """A job as the API and the Jobs page show it; given the viewer's `perms`, also whether they may cancel it."""
    kind = kind_find(job.kind)
    label = kind.label if kind else job.kind
    url = kind.url.format(project_id=job.project_id, id=job.pk) if kind and kind.url else None
    out = {
        "id": job.pk,
        "kind": job.kind,
        "label": label,
        "project": job.project_id,
        "status": job.status,
        "progress": job.progress,
        "phase": job.phase,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "url": url,
    }
    if perms is not None:
        out["may_cancel"] = job.is_active and kind is not None and kind.permission in perms
    return out
