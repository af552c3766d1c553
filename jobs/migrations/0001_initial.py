import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = [
        ("projects", "0005_label_attributes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Job",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        help_text="A kind registered in jobs.registry: training, export, ...", max_length=40
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("finished", "Finished"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="queued",
                        max_length=10,
                    ),
                ),
                ("progress", models.FloatField(default=0)),
                (
                    "phase",
                    models.CharField(blank=True, help_text="What it is doing now, or how it ended.", max_length=200),
                ),
                (
                    "payload",
                    models.JSONField(
                        blank=True, default=dict, help_text="Inputs of a kind without a table of its own."
                    ),
                ),
                ("cancel_requested", models.BooleanField(default=False)),
                ("error", models.TextField(blank=True)),
                (
                    "attempts",
                    models.PositiveSmallIntegerField(default=0, help_text="How often it was handed to the queue."),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("enqueued_at", models.DateTimeField(blank=True, null=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                (
                    "heartbeat_at",
                    models.DateTimeField(blank=True, help_text="Last sign of life from the worker.", null=True),
                ),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="jobs", to="projects.project"
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["project", "-created_at"], name="job_project_newest"),
                    models.Index(
                        condition=models.Q(("status__in", ["queued", "running"])), fields=["status"], name="job_active"
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("progress__gte", 0), ("progress__lte", 1)), name="job_progress_0_to_1"
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("host", models.CharField(max_length=255)),
                (
                    "cluster",
                    models.CharField(help_text="The django-q2 cluster (queue) the worker serves.", max_length=40),
                ),
                ("beat_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["-beat_at"],
                "constraints": [
                    models.UniqueConstraint(fields=("host", "cluster"), name="worker_heartbeat_unique_host_cluster")
                ],
            },
        ),
    ]
