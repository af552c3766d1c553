from datetime import timedelta

import pytest
from django.utils import timezone

from training.models import WorkerHeartbeat
from training.tasks import worker_heartbeat

pytestmark = pytest.mark.django_db


def test_healthz_is_503_and_names_the_worker_when_no_worker_has_reported(client):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["failing"] == ["worker"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["version"].startswith("PostgreSQL 18")
    assert body["checks"]["vector"] == {"ok": True, "version": body["checks"]["vector"]["version"]}
    assert body["checks"]["vector"]["version"].startswith("0.8")


def test_healthz_is_200_after_the_heartbeat_task_ran(client):
    worker_heartbeat()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["failing"] == []
    assert response.json()["checks"]["worker"]["ok"] is True


def test_healthz_reports_a_stale_worker(client, settings):
    WorkerHeartbeat.objects.create(host="gone", beat_at=timezone.now() - timedelta(seconds=600))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]
    assert response.json()["checks"]["worker"]["host"] == "gone"
    assert "600 s old" in response.json()["checks"]["worker"]["error"]


def test_heartbeat_runs_through_django_q(client):
    from django_q.tasks import async_task

    async_task("training.tasks.worker_heartbeat")
    assert WorkerHeartbeat.objects.count() == 1


def test_the_heartbeat_is_scheduled_every_minute():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="worker heartbeat")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "training.tasks.worker_heartbeat", Schedule.MINUTES, 1, -1,
    )  # fmt: skip
