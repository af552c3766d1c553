"""Every write to the job table outside a running job: queueing, cancelling, reaping, worker heartbeats."""

from __future__ import annotations

import socket
import zlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job, WorkerHeartbeat
from jobs.registry import kind_get

RUN_TASK = "jobs.tasks.job_run"
MAX_ATTEMPTS = 2  # a queued job whose enqueue was lost is queued once more, then failed
STALE_ERROR = "The worker running this job stopped (killed, out of memory or restarted) before it finished."


def cluster_of(kind_name: str) -> str | None:
    """The django-q2 cluster (queue) a kind's jobs go to: its own when SIGHTLINE_ROUTE_BY_CLUSTER routes, else the one default."""
    return kind_get(kind_name).cluster if settings.SIGHTLINE_ROUTE_BY_CLUSTER else None


def current_cluster() -> str:
    from django_q.conf import Conf

    return Conf.CLUSTER_NAME


def job_submit(job: Job) -> Job:
    """Queue a job row saved in the caller's transaction; it reaches the broker once that commits, and only when
    no earlier job of its project and kind is still in the broker or running (`jobs_dispatch`)."""
    phase = f"Waiting for this project's earlier {kind_get(job.kind).label.lower()} job to finish."
    Job.objects.filter(pk=job.pk).update(phase=phase)
    job.phase = phase
    project_id, kind = job.project_id, job.kind
    transaction.on_commit(lambda: jobs_dispatch(project_id=project_id, kind=kind))
    return job


def jobs_dispatch(*, project_id: int, kind: str) -> int | None:
    """Hand the project's oldest waiting job of this kind to the broker, unless one of them is there already.

    The fair queue: a project has at most one job of a kind in the broker or running, so a job never waits
    behind more than one job of each other project. Called when a job is submitted, ends, is cancelled or is
    reaped; returns the id of the job handed on, if any.
    """
    with transaction.atomic():
        # One dispatcher at a time per project and kind: two could otherwise both see nothing in flight.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [project_id, zlib.crc32(kind.encode()) >> 1])
        same = Job.objects.filter(project_id=project_id, kind=kind)
        in_flight = same.filter(Q(status=Job.Status.RUNNING) | Q(status=Job.Status.QUEUED, enqueued_at__isnull=False))
        if in_flight.exists():
            return None
        waiting = same.filter(status=Job.Status.QUEUED, enqueued_at__isnull=True).order_by("created_at", "id").first()
        if waiting is None:
            return None
        Job.objects.filter(pk=waiting.pk).update(attempts=1, enqueued_at=timezone.now(), phase="Queued")
        transaction.on_commit(lambda: _enqueue(waiting.pk, kind))
    return waiting.pk


def _enqueue(job_id: int, kind_name: str) -> None:
    from django_q.tasks import async_task

    options = {"task_name": f"{kind_name} job {job_id}"}
    cluster = cluster_of(kind_name)
    if cluster:
        options["cluster"] = cluster
    async_task(RUN_TASK, job_id, **options)


def job_cancel(*, job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next step (kinds may keep what they finished)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status == Job.Status.QUEUED:
            job.status, job.finished_at, job.phase = (
                Job.Status.CANCELLED,
                timezone.now(),
                "Cancelled before it started.",
            )
            job.save(update_fields=["status", "finished_at", "phase"])
            project_id, kind = job.project_id, job.kind
            transaction.on_commit(lambda: jobs_dispatch(project_id=project_id, kind=kind))
        elif job.status == Job.Status.RUNNING:
            job.cancel_requested = True
            job.save(update_fields=["cancel_requested"])
        else:
            raise ValidationError({"status": [f"The job has already {job.status}."]})
    return job


def jobs_reap(*, now=None) -> dict[str, int]:
    """The one reaper, run by every worker's minute heartbeat.

    A running job silent for SIGHTLINE_JOB_STALE_SECONDS is failed. A job still queued after
    SIGHTLINE_JOB_QUEUED_MINUTES while no job of its cluster runs (so nothing holds the workers up)
    lost its enqueue: it is queued once more, and failed if that does not help either.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SIGHTLINE_JOB_STALE_SECONDS)
    failed = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=stale_before).update(
        status=Job.Status.FAILED, finished_at=now, phase="Failed", error=STALE_ERROR
    )
    lost_before = now - timedelta(minutes=settings.SIGHTLINE_JOB_QUEUED_MINUTES)
    running_kinds = Job.objects.filter(status=Job.Status.RUNNING).values_list("kind", flat=True).distinct()
    busy = {cluster_of(kind) for kind in running_kinds}
    requeued = given_up = 0
    lost = Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__lt=lost_before).values_list(
        "pk", "kind", "attempts"
    )
    for pk, kind, attempts in lost:
        if cluster_of(kind) in busy:
            continue
        unchanged = Job.objects.filter(pk=pk, status=Job.Status.QUEUED, attempts=attempts)
        if attempts < MAX_ATTEMPTS:
            if unchanged.update(attempts=attempts + 1, enqueued_at=now):
                _enqueue(pk, kind)
                requeued += 1
        else:
            cluster = kind_get(kind).cluster
            given_up += unchanged.update(
                status=Job.Status.FAILED,
                finished_at=now,
                phase="Failed",
                error=f"No worker took this job, even after it was queued again. Check that a worker serves the "
                f"{cluster} cluster (manage.py qcluster, with Q_CLUSTER_NAME={cluster} in a deployment).",
            )
    # Jobs waiting behind one that ended without handing them on (its worker died, say) are handed on now.
    stuck = (
        Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__isnull=True)
        .values_list("project_id", "kind")
        .distinct()
    )
    for project_id, kind in stuck:
        jobs_dispatch(project_id=project_id, kind=kind)
    return {"failed": failed + given_up, "requeued": requeued}


def worker_heartbeat_record(*, host: str | None = None, cluster: str | None = None) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        host=host or socket.gethostname(), cluster=cluster or current_cluster(), defaults={"beat_at": timezone.now()}
    )
    return heartbeat
