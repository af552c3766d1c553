"""One table for every kind of background work, and the workers' heartbeats.

A kind with inputs or results of its own (training, transfers, pair searches) is a child model
(Django's multi-table inheritance), so every job of every kind shares one id, one status column
the runner claims with a conditional UPDATE, and one query for the project's Jobs page. A kind
without a table of its own keeps its inputs in `payload`.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class JobQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING])

    def for_project(self, project):
        return self.filter(project=project)


class Job(models.Model):
    """A piece of background work: what it is, how far it got, who asked, and how it ended."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        FINISHED = "finished"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    kind = models.CharField(max_length=40, help_text="A kind registered in jobs.registry: training, export, ...")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0)
    phase = models.CharField(max_length=200, blank=True, help_text="What it is doing now, or how it ended.")
    payload = models.JSONField(default=dict, blank=True, help_text="Inputs of a kind without a table of its own.")
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How often it was handed to the queue.")
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="job_project_newest"),
            models.Index(fields=["status"], condition=Q(status__in=["queued", "running"]), name="job_active"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=1), name="job_progress_0_to_1")
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class WorkerHeartbeat(models.Model):
    """The last time a django-q2 worker of one cluster, on one host, ran its heartbeat."""

    host = models.CharField(max_length=255)
    cluster = models.CharField(max_length=40, help_text="The django-q2 cluster (queue) the worker serves.")
    beat_at = models.DateTimeField()

    class Meta:
        ordering = ["-beat_at"]
        constraints = [models.UniqueConstraint(fields=["host", "cluster"], name="worker_heartbeat_unique_host_cluster")]

    def __str__(self) -> str:
        return f"{self.cluster} worker on {self.host} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
