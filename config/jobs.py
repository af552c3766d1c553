"""What every background job's row shares: one whose worker went silent is marked failed."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone


def jobs_fail_stale(jobs, *, error: str, now=None) -> int:
    """Mark the running jobs of `jobs` (a queryset of a model with status, heartbeat_at, finished_at and error)
    that have not beaten for SIGHTLINE_JOB_STALE_SECONDS as failed, so none stays 'running' forever."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SIGHTLINE_JOB_STALE_SECONDS)
    stale = jobs.filter(status="running", heartbeat_at__lt=cutoff)
    return stale.update(status="failed", finished_at=now, error=error)
