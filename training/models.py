"""Background workers' heartbeats (training jobs, dataset versions and models will live here too)."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """The last time a django-q2 worker on this host ran its heartbeat task."""

    host = models.CharField(max_length=255, unique=True)
    beat_at = models.DateTimeField()

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return f"{self.host} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
