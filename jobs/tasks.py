"""django-q2 tasks of the job system: thin, idempotent, ids in."""

from jobs import runner, services

HEARTBEAT_TASK = "jobs.tasks.worker_heartbeat"


def job_run(job_id: int) -> str | None:
    """Run one job of any kind; running it twice does nothing the second time."""
    return runner.job_run(job_id)


def worker_heartbeat() -> str:
    """Runs every minute on every cluster: /healthz tells a live worker from a dead one, and the reaper runs."""
    services.jobs_reap()
    return services.worker_heartbeat_record().beat_at.isoformat()
