from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import WorkerHeartbeat
from jobs.tasks import worker_heartbeat

pytestmark = pytest.mark.django_db


def test_healthz_is_503_and_names_each_cluster_when_no_worker_has_reported(client):
    response = client.get("/healthz", headers={"X-Health-Token": "test-health-token"})
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["failing"] == ["workers"]
    assert body["checks"]["workers"] == {
        "ok": False,
        "routed": False,
        "cpu": {"ok": False, "error": "No worker of the cpu cluster has reported yet; start manage.py qcluster."},
        "gpu": {"ok": False, "error": "No worker of the gpu cluster has reported yet; start manage.py qcluster."},
    }
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["version"].startswith("PostgreSQL 18")
    assert body["checks"]["vector"] == {"ok": True, "version": body["checks"]["vector"]["version"]}
    assert body["checks"]["vector"]["version"].startswith("0.8")


def test_healthz_is_200_after_the_heartbeat_task_ran(client):
    worker_heartbeat()
    response = client.get("/healthz", headers={"X-Health-Token": "test-health-token"})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["failing"] == []
    workers = response.json()["checks"]["workers"]
    # Out of the box one worker, of the default cluster, serves both kinds of work.
    assert (workers["cpu"]["ok"], workers["cpu"]["served_by"], workers["gpu"]["served_by"]) == (
        True,
        "sightline",
        "sightline",
    )


def test_healthz_reports_each_cluster_of_a_routed_deployment_separately(client, settings):
    settings.SIGHTLINE_ROUTE_BY_CLUSTER = True
    WorkerHeartbeat.objects.create(host="cpu-1", cluster="cpu", beat_at=timezone.now())
    WorkerHeartbeat.objects.create(host="gpu-1", cluster="gpu", beat_at=timezone.now() - timedelta(seconds=600))
    response = client.get("/healthz", headers={"X-Health-Token": "test-health-token"})
    assert response.status_code == 503
    workers = response.json()["checks"]["workers"]
    assert (workers["cpu"]["ok"], workers["cpu"]["host"]) == (True, "cpu-1")
    assert (workers["gpu"]["ok"], workers["gpu"]["host"]) == (False, "gpu-1")
    assert workers["gpu"]["error"] == "The last heartbeat of the gpu cluster is 600 s old."
    WorkerHeartbeat.objects.filter(cluster="cpu").delete()
    body = client.get("/healthz", headers={"X-Health-Token": "test-health-token"}).json()["checks"]["workers"]
    assert (
        body["cpu"]["error"]
        == "No worker of the cpu cluster has reported yet; start Q_CLUSTER_NAME=cpu manage.py qcluster."
    )


def test_healthz_reports_a_stale_worker(client, settings):
    WorkerHeartbeat.objects.create(host="gone", cluster="sightline", beat_at=timezone.now() - timedelta(seconds=600))
    response = client.get("/healthz", headers={"X-Health-Token": "test-health-token"})
    assert response.status_code == 503
    assert response.json()["failing"] == ["workers"]
    assert response.json()["checks"]["workers"]["cpu"]["host"] == "gone"
    assert response.json()["checks"]["workers"]["cpu"]["error"] == "The last heartbeat of the cpu cluster is 600 s old."


def test_heartbeat_runs_through_django_q(client):
    from django_q.tasks import async_task

    async_task("jobs.tasks.worker_heartbeat")
    assert list(WorkerHeartbeat.objects.values_list("cluster", flat=True)) == ["sightline"]


def test_the_heartbeat_is_scheduled_every_minute_on_each_cluster():
    from django_q.models import Schedule

    schedules = Schedule.objects.filter(name__startswith="worker heartbeat").order_by("name")
    assert [(s.name, s.func, s.schedule_type, s.minutes, s.repeats, s.cluster) for s in schedules] == [
        ("worker heartbeat", "jobs.tasks.worker_heartbeat", Schedule.MINUTES, 1, -1, None),
        ("worker heartbeat (cpu)", "jobs.tasks.worker_heartbeat", Schedule.MINUTES, 1, -1, "cpu"),
        ("worker heartbeat (gpu)", "jobs.tasks.worker_heartbeat", Schedule.MINUTES, 1, -1, "gpu"),
    ]


def test_healthz_shows_anonymous_callers_only_the_status(client, django_user_model):
    worker_heartbeat()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/healthz", headers={"X-Health-Token": "wrong"}).json() == {"status": "ok"}
    member = django_user_model.objects.create_user("member", password="pw")
    client.force_login(member)
    assert client.get("/healthz").json() == {"status": "ok"}


def test_healthz_shows_staff_the_details(client, django_user_model):
    worker_heartbeat()
    staff = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    client.force_login(staff)
    body = client.get("/healthz").json()
    assert (body["status"], body["failing"], sorted(body["checks"])) == (
        "ok",
        [],
        ["database", "smart", "vector", "workers"],
    )


def test_healthz_shows_no_details_when_no_token_is_set(client, settings):
    settings.SIGHTLINE_HEALTH_TOKEN = ""
    assert client.get("/healthz", headers={"X-Health-Token": ""}).json() == {"status": "unhealthy"}
