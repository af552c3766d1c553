from django.db import migrations

from jobs.operations import adopt_into_job


class Migration(migrations.Migration):
    dependencies = [("training", "0002_datasets_jobs_models"), ("jobs", "0002_adopt_existing_jobs")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=adopt_into_job(
                "trainingjob",
                constraints=["training_job_progress_0_to_1", "training_job_unique_active_name"],
                fields=[
                    "project",
                    "created_by",
                    "status",
                    "cancel_requested",
                    "progress",
                    "error",
                    "created_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                ],
            ),
        ),
        migrations.DeleteModel(name="WorkerHeartbeat"),  # jobs.WorkerHeartbeat, one per host and cluster, took over
    ]
