"""django-q2 tasks of the training app: thin, idempotent, ids in."""

from training import services

HEARTBEAT_TASK = "training.tasks.worker_heartbeat"


def worker_heartbeat() -> str:
    """Runs every minute from a schedule, so /healthz can tell a live worker from a dead one."""
    return services.worker_heartbeat_record().beat_at.isoformat()
