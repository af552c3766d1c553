"""Every write to training's tables."""

import socket

from django.utils import timezone

from training.models import WorkerHeartbeat


def worker_heartbeat_record(*, host: str | None = None) -> WorkerHeartbeat:
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        host=host or socket.gethostname(), defaults={"beat_at": timezone.now()}
    )
    return heartbeat
