from django.db import migrations, models


def schedule_heartbeat(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="worker heartbeat",
        defaults={"func": "training.tasks.worker_heartbeat", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def unschedule_heartbeat(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="worker heartbeat").delete()


class Migration(migrations.Migration):
    initial = True
    dependencies = [("django_q", "__latest__")]

    operations = [
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("host", models.CharField(max_length=255, unique=True)),
                ("beat_at", models.DateTimeField()),
            ],
            options={"ordering": ["-beat_at"]},
        ),
        migrations.RunPython(schedule_heartbeat, unschedule_heartbeat),
    ]
