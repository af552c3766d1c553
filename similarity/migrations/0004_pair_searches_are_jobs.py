from django.db import migrations

from jobs.operations import adopt_into_job


class Migration(migrations.Migration):
    dependencies = [("similarity", "0003_pair_search_heartbeat"), ("jobs", "0002_adopt_existing_jobs")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=adopt_into_job(
                "pairsearch",
                constraints=["pair_search_progress_0_to_1"],
                fields=[
                    "project",
                    "created_by",
                    "status",
                    "progress",
                    "error",
                    "created_at",
                    "heartbeat_at",
                    "finished_at",
                ],
            ),
        ),
    ]
