"""The one runner: claim a queued job, beat while it runs, let it report progress and see a cancel, end it.

A kind's `run(job, context)` does the work and returns the message the job ends with. It calls
`context.progress()` as it goes and `context.check()` between steps; `check()` raises Cancelled
once someone pressed Cancel. It raises JobFailed (or a ValidationError) with a message a person can
act on; anything else is logged and reported as an unexpected error. A worker killed mid-run never
gets here: the reaper (jobs.services.jobs_reap) fails the job when its heartbeat goes stale.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection
from django.utils import timezone

from jobs.models import Job
from jobs.registry import kind_get

logger = logging.getLogger(__name__)
WRITE_EVERY_SECONDS = 1.0  # progress and cancel reads are throttled to this
PHASE_LIMIT = 200


class Cancelled(Exception):
    """Raised by context.check() once a cancel was asked for; a kind may raise it itself, with a message."""


class JobFailed(Exception):
    """The work cannot go on, for a reason the message tells a person."""


class Context:
    """What a running job may do with its row: report progress and a phase, and learn it was cancelled."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self._last_write = 0.0
        self._last_check = 0.0
        self._cancelled = False

    def progress(self, fraction: float, phase: str | None = None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and phase is None and now - self._last_write < WRITE_EVERY_SECONDS:
            return
        self._last_write = now
        fields = {"progress": round(min(max(float(fraction), 0.0), 1.0), 4), "heartbeat_at": timezone.now()}
        if phase is not None:
            fields["phase"] = phase[:PHASE_LIMIT]
        Job.objects.filter(pk=self.job_id).update(**fields)

    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_check >= WRITE_EVERY_SECONDS:
            self._last_check = now
            self._cancelled = Job.objects.filter(pk=self.job_id, cancel_requested=True).exists()
        return self._cancelled

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled("Cancelled on request.")


class _Beat(threading.Thread):
    """Touches heartbeat_at every few seconds while the job runs, however long one step takes."""

    def __init__(self, job_id: int, every: float):
        super().__init__(daemon=True, name=f"job-{job_id}-heartbeat")
        self.job_id, self.every, self.done = job_id, every, threading.Event()

    def run(self) -> None:
        from jobs.services import worker_heartbeat_record

        try:
            while not self.done.wait(self.every):
                try:
                    Job.objects.filter(pk=self.job_id).update(heartbeat_at=timezone.now())
                    # The scheduled heartbeat waits while this job holds the worker; /healthz should not.
                    worker_heartbeat_record()
                except DatabaseError:  # a blip: the next beat tries again, and the reaper allows for a few
                    logger.warning("Job %s: heartbeat failed", self.job_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()


def _work(kind_name: str):
    module, _, name = kind_get(kind_name).run.rpartition(".")
    return getattr(importlib.import_module(module), name)


def unexpected_error(exc: BaseException, job_id: int) -> str:
    """What a person reads of an error nobody foresaw: its type, and where the details are. The exception's
    own text stays in the worker's log, since it can hold paths, SQL or data from other projects."""
    return f"Unexpected error ({type(exc).__name__}); the worker's log has the details of job {job_id}."


def job_run(job_id: int) -> str | None:
    """Run a queued job to its end; one that is not queued any more (done, cancelled, picked twice) is left alone."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, started_at=now, heartbeat_at=now, phase="Starting"
    )
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    context = Context(job_id)
    beat = _Beat(job_id, settings.SIGHTLINE_JOB_HEARTBEAT_SECONDS)
    beat.start()
    fields = {"status": Job.Status.FAILED, "error": ""}
    try:
        message = _work(job.kind)(job, context)
        fields.update(status=Job.Status.FINISHED, progress=1.0, phase=message or "Finished")
    except Cancelled as exc:
        fields.update(status=Job.Status.CANCELLED, phase=str(exc) or "Cancelled on request.")
    except JobFailed as exc:
        fields.update(error=str(exc), phase="Failed")
    except ValidationError as exc:
        fields.update(error=" ".join(exc.messages), phase="Failed")
    except Exception as exc:  # a job reports every failure on its row instead of dying silently
        logger.exception("Job %s (%s) failed", job_id, job.kind)
        fields.update(error=unexpected_error(exc, job_id), phase="Failed")
    finally:
        beat.done.set()
        beat.join(timeout=10)
    fields["phase"] = fields["phase"][:PHASE_LIMIT]
    # Only a job still running is ended here: one the reaper marked failed stays failed.
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(finished_at=timezone.now(), **fields)
    from jobs.services import jobs_dispatch

    jobs_dispatch(project_id=job.project_id, kind=job.kind)  # the project's next job of this kind
    return fields["status"]
