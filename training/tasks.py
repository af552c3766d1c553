"""django-q2 tasks of the training app: thin, idempotent, ids in."""

from training import services

HEARTBEAT_TASK = "training.tasks.worker_heartbeat"


def worker_heartbeat() -> str:
    """Runs every minute from a schedule: /healthz tells a live worker from a dead one, and dead jobs end."""
    from similarity.services import pair_searches_fail_stale

    services.training_jobs_fail_stale()
    pair_searches_fail_stale()
    return services.worker_heartbeat_record().beat_at.isoformat()


def training_job_run(job_id: int) -> None:
    """Train one job; a job that is not queued any more (done, cancelled, or picked twice) is left alone."""
    from training import runs  # torch: only the worker that trains loads it

    runs.training_job_run(job_id=job_id)
