"""Training jobs, transfers and pair searches become kinds of the one Job table (multi-table inheritance).

Each old row becomes a Job row plus its child row, keeping everything. Training jobs keep their ids
(model versions point at them); transfers and pair searches are numbered after them. The apps'
own migrations that follow change only Django's picture of the models, since this one moved the data.
"""

from django.db import migrations

MOVED = {
    # table: (kind expression, columns it has among the shared ones)
    "training_trainingjob": ("'training'", {"cancel_requested", "started_at", "heartbeat_at"}),
    "annotations_transferjob": ("direction", set()),
    "similarity_pairsearch": ("'pair-search'", {"heartbeat_at"}),
}
SHARED = ["status", "progress", "error", "created_at", "finished_at", "project_id", "created_by_id"]
OPTIONAL = {"cancel_requested": "false", "started_at": "NULL", "heartbeat_at": "NULL"}
REFERENCES = {"training_trainingjob": [("training_modelversion", "job_id")]}


def adopt(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for table, (kind, has) in MOVED.items():
            cursor.execute("SELECT COALESCE(MAX(id), 0) FROM jobs_job")
            offset = 0 if table == "training_trainingjob" else cursor.fetchone()[0]
            optional = [column if column in has else default for column, default in OPTIONAL.items()]
            cursor.execute(f"""
                INSERT INTO jobs_job (id, kind, {", ".join(SHARED)}, {", ".join(OPTIONAL)},
                                      phase, payload, attempts, enqueued_at)
                SELECT id + {offset}, {kind}, {", ".join(SHARED)}, {", ".join(optional)}, '', '{{}}', 1, created_at
                FROM {table}
            """)  # noqa: S608 (names from the table above, never input)
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN job_ptr_id bigint")
            cursor.execute(f"UPDATE {table} SET job_ptr_id = id + {offset}")
            for referring, column in REFERENCES.get(table, []):
                cursor.execute(f"UPDATE {referring} SET {column} = {column} + {offset}")
            # Dropping the old key drops the foreign keys that pointed at it; they are made again below.
            cursor.execute(f"ALTER TABLE {table} DROP COLUMN id CASCADE")
            dropped = [c for c in [*SHARED, *has] if c != "created_at"] + ["created_at"]
            cursor.execute(f"ALTER TABLE {table} " + ", ".join(f"DROP COLUMN {c} CASCADE" for c in dropped))
            cursor.execute(f"""
                ALTER TABLE {table} ALTER COLUMN job_ptr_id SET NOT NULL,
                    ADD CONSTRAINT {table}_pkey PRIMARY KEY (job_ptr_id),
                    ADD CONSTRAINT {table}_job_ptr_fk FOREIGN KEY (job_ptr_id) REFERENCES jobs_job (id)
                        DEFERRABLE INITIALLY DEFERRED
            """)
            for referring, column in REFERENCES.get(table, []):
                cursor.execute(f"""
                    ALTER TABLE {referring} ADD CONSTRAINT {referring}_{column}_fk_job
                        FOREIGN KEY ({column}) REFERENCES {table} (job_ptr_id) DEFERRABLE INITIALLY DEFERRED
                """)
        cursor.execute("SELECT setval(pg_get_serial_sequence('jobs_job', 'id'), GREATEST(MAX(id), 1)) FROM jobs_job")


def heartbeats(apps, schema_editor):
    """The heartbeat task moved to jobs; each cluster of a routed deployment beats (and reaps) on its own."""
    Schedule = apps.get_model("django_q", "Schedule")
    every_minute = {"func": "jobs.tasks.worker_heartbeat", "schedule_type": "I", "minutes": 1, "repeats": -1}
    Schedule.objects.update_or_create(name="worker heartbeat", defaults=every_minute)
    for cluster in ("cpu", "gpu"):
        Schedule.objects.update_or_create(
            name=f"worker heartbeat ({cluster})", defaults={**every_minute, "cluster": cluster}
        )


class Migration(migrations.Migration):
    atomic = True
    dependencies = [
        ("jobs", "0001_initial"),
        ("training", "0002_datasets_jobs_models"),
        ("annotations", "0006_transfer_include_images"),
        ("similarity", "0003_pair_search_heartbeat"),
        ("django_q", "__latest__"),
    ]

    operations = [
        migrations.RunPython(adopt, elidable=False),
        migrations.RunPython(heartbeats, migrations.RunPython.noop),
    ]
