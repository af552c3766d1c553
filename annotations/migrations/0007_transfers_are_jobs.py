from django.db import migrations

from jobs.operations import adopt_into_job


class Migration(migrations.Migration):
    dependencies = [("annotations", "0006_transfer_include_images"), ("jobs", "0002_adopt_existing_jobs")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=adopt_into_job(
                "transferjob",
                constraints=["transfer_progress_0_to_1"],
                fields=["project", "created_by", "status", "progress", "error", "created_at", "finished_at"],
            ),
        ),
    ]
