"""Two real qcluster processes on Redis, one for `cpu` and one for `gpu`: each receives only its own kinds."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_q.conf import Conf
from django_q.models import Task
from django_q.tasks import async_task

from annotations.services import transfers
from jobs.models import Job, WorkerHeartbeat
from similarity import services as similarity
from tests.engines import redis_url  # noqa: F401 (a fixture)
from tests.factories import builtin_roles_seed, make_project
from tests.training.conftest import colour_png
from tests.workers import qcluster, stop, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def routed(redis_url, settings, monkeypatch):  # noqa: F811
    """This process enqueues to Redis, routed by cluster, as a web process of a deployment does."""
    settings.SIGHTLINE_ROUTE_BY_CLUSTER = True
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    return {"REDIS_URL": redis_url, "SIGHTLINE_ROUTE_BY_CLUSTER": "true", "SIGHTLINE_CPU_WORKERS": "1"}


def test_each_cluster_receives_only_its_own_kinds(routed, user, tmp_path, client):
    from projects.uploads import images_upload

    builtin_roles_seed()
    project = make_project(owner=user, name="Routed")
    files = [SimpleUploadedFile(f"c{i}.png", colour_png((40 * i, 90, 200), i)) for i in range(3)]
    images_upload(project=project, user=user, files=files, labels=["c"])  # queues an embeddings job (gpu)
    embeddings = Job.objects.get(kind="embeddings")
    export = transfers.transfer_start(project=project, user=user, direction="export", format_key="coco")
    importing = transfers.transfer_start(
        project=project,
        user=user,
        direction="import",
        format_key="coco",
        upload=SimpleUploadedFile("x.json", b'{"images": [], "annotations": [], "categories": []}'),
    )
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("cpu", "gpu")}  # noqa: SIM115 (closed below)
    cpu = qcluster("cpu", logs["cpu"], **routed)
    try:
        wait_for(
            lambda: Job.objects.filter(pk__in=[export.pk, importing.pk]).active().count() == 0,
            timeout=90,
            what="the cpu worker to run the export and the import",
        )
        ended = Job.objects.filter(pk__in=[export.pk, importing.pk]).order_by("pk").values_list("status", "error")
        assert list(ended) == [("finished", ""), ("finished", "")]
        search = similarity.pair_search_start(
            project=project, user=user, parameters={"limit": 2, "threshold": 0.6, "labels": [], "op": "or"}
        )
        wait_for(lambda: Job.objects.get(pk=search.pk).status == "finished", timeout=60, what="the pair search")
        assert Job.objects.get(pk=embeddings.pk).status == "queued"  # model work never reaches the cpu worker
        gpu = qcluster("gpu", logs["gpu"], **routed)
        try:
            wait_for(
                lambda: Job.objects.get(pk=embeddings.pk).status == "finished",
                timeout=120,
                what="the gpu worker to embed the images",
            )
            for cluster in ("cpu", "gpu"):  # what each cluster's minute schedule runs
                async_task("jobs.tasks.worker_heartbeat", cluster=cluster)
            wait_for(
                lambda: set(WorkerHeartbeat.objects.values_list("cluster", flat=True)) == {"cpu", "gpu"},
                what="both clusters' heartbeats",
            )
        finally:
            stop(gpu)
    finally:
        stop(cpu)
        for name, log in logs.items():
            log.close()
            print(f"--- the {name} worker's log:\n{(tmp_path / f'{name}.log').read_text()[-3000:]}")
    ran_on = dict(Task.objects.filter(func="jobs.tasks.job_run").values_list("name", "cluster"))
    assert ran_on == {
        f"export job {export.pk}": "cpu",
        f"import job {importing.pk}": "cpu",
        f"pair-search job {search.pk}": "cpu",
        f"embeddings job {embeddings.pk}": "gpu",
    }
    assert project.images.filter(embedding__isnull=False).count() == 3
    workers = client.get("/healthz", headers={"X-Health-Token": "test-health-token"}).json()["checks"]["workers"]
    assert (workers["routed"], workers["cpu"]["served_by"], workers["gpu"]["served_by"]) == (True, "cpu", "gpu")
    assert (workers["cpu"]["ok"], workers["gpu"]["ok"]) == (True, True)
