"""The one job system, through every kind: the Jobs page and API, Cancel, the reaper of dead workers and
lost enqueues, and real worker processes killed mid-run."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from annotations.services import transfers
from jobs import services
from jobs.models import Job
from jobs.runner import job_run
from jobs.tasks import worker_heartbeat
from projects.models import Role
from projects.services import membership_grant
from similarity import services as similarity
from tests.conftest import client_for
from tests.factories import UserFactory, builtin_roles_seed, make_project
from tests.training.conftest import FAST, colour_png, upload
from tests.workers import job_process, wait_for
from training import services as training

COCO = (
    b'{"images": [{"id": 1, "file_name": "red0.png", "width": 32, "height": 32}], "annotations": [], '
    b'"categories": [{"id": 1, "name": "red"}]}'
)
PAIRS = {"limit": 2, "threshold": 0.6, "labels": [], "op": "or"}
KINDS = ["training", "export", "import", "pair-search", "embeddings", "sam-embeddings"]


@pytest.fixture
def no_enqueue(monkeypatch):
    """Jobs are created but not handed to the (inline, in tests) queue: the test runs them itself."""
    monkeypatch.setattr(services, "_enqueue", lambda job_id, kind: None)


def project_with_images(user):
    project = make_project(owner=user, name="Jobs")
    upload(project, user, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(4)], ["red"])
    upload(project, user, [(f"other{i}.png", colour_png((30, 200, 30), 50 + i)) for i in range(4)], [])
    return project


def start(kind: str, project, user, settings, tmp_path) -> Job:
    """A job of `kind`, started the way its page or API starts it."""
    if kind == "training":
        return training.training_job_start(project=project, user=user, task="classification", parameters=FAST)
    if kind == "export":
        return transfers.transfer_start(project=project, user=user, direction="export", format_key="coco")
    if kind == "import":
        upload_file = SimpleUploadedFile("labels.json", COCO)
        return transfers.transfer_start(
            project=project, user=user, direction="import", format_key="coco", upload=upload_file
        )
    if kind == "pair-search":
        return similarity.pair_search_start(project=project, user=user, parameters=PAIRS)
    if kind == "embeddings":
        Job.objects.filter(kind="embeddings").delete()  # the uploads' own
        return similarity.embeddings_schedule(project_id=project.pk, user=user)
    from annotations import smart
    from tests.annotations.sam_tiny import tiny_checkpoint

    settings.SIGHTLINE_SAM_CHECKPOINT = str(tiny_checkpoint(tmp_path / "sam_tiny.pth"))
    return smart.sam_prefetch_schedule(
        backend=smart.smart_backend(),
        project=project,
        user=user,
        image_ids=list(project.images.values_list("pk", flat=True)[:2]),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_runs_and_is_listed_on_the_jobs_page_and_api(kind, user, client, settings, tmp_path, no_enqueue):
    project = project_with_images(user)
    job = start(kind, project, user, settings, tmp_path)
    client.force_login(user)
    page = client.get(f"/projects/{project.id}/jobs/").content.decode()
    assert f'id="job-{job.pk}" data-status="queued"' in page
    assert f'hx-get="/projects/{project.id}/jobs/" hx-trigger="every 2s"' in page  # refreshes while a job is live
    assert job_run(job.pk) == "finished"
    row = next(r for r in client_for(user).get(f"/api/projects/{project.id}/jobs/").json() if r["id"] == job.pk)
    assert (row["kind"], row["status"], row["progress"], row["error"], row["created_by"]) == (
        kind,
        "finished",
        1.0,
        "",
        user.username,
    )
    assert row["phase"] and row["finished_at"] and row["started_at"]
    Job.objects.filter(project=project).exclude(pk=job.pk).delete()
    page = client.get(f"/projects/{project.id}/jobs/").content.decode()
    assert "hx-trigger" not in page.split('id="job-list"')[1].split(">")[0]  # nothing live: it stops polling


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_cancel_works_for_every_kind_queued_or_running(kind, user, settings, tmp_path, no_enqueue):
    project = project_with_images(user)
    api = client_for(user)
    queued = start(kind, project, user, settings, tmp_path)
    cancelled = api.post(f"/api/jobs/{queued.pk}/cancel/").json()
    assert (cancelled["status"], cancelled["phase"]) == ("cancelled", "Cancelled before it started.")
    assert job_run(queued.pk) is None  # a worker that picks it up later leaves it alone
    again = api.post(f"/api/jobs/{queued.pk}/cancel/")
    assert (again.status_code, again.json()) == (400, {"status": ["The job has already cancelled."]})

    Job.objects.filter(kind=kind).delete()
    running = start(kind, project, user, settings, tmp_path)
    Job.objects.filter(pk=running.pk).update(status="running")
    assert api.post(f"/api/jobs/{running.pk}/cancel/").json()["cancel_requested"] is True
    Job.objects.filter(pk=running.pk).update(status="queued")  # let the runner claim it as a worker would
    assert job_run(running.pk) == "cancelled"
    assert Job.objects.get(pk=running.pk).status == "cancelled"


@pytest.mark.django_db
def test_who_may_cancel_strangers_see_nothing_and_a_denied_cancel_changes_nothing(user, settings, tmp_path, no_enqueue):
    project = project_with_images(user)
    job = start("training", project, user, settings, tmp_path)
    viewer, stranger = UserFactory(), UserFactory()
    membership_grant(project=project, email=viewer.email, role=Role.objects.get(name="Viewer"))
    assert client_for(stranger).post(f"/api/jobs/{job.pk}/cancel/").status_code == 404
    assert client_for(stranger).get(f"/api/projects/{project.id}/jobs/").status_code == 404
    assert client_for(viewer).post(f"/api/jobs/{job.pk}/cancel/").status_code == 403
    assert Job.objects.get(pk=job.pk).status == "queued"
    assert [r["id"] for r in client_for(viewer).get(f"/api/projects/{project.id}/jobs/").json()][0] == job.pk


@pytest.mark.django_db
def test_the_reaper_requeues_a_lost_enqueue_once_then_fails_it(
    user, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    project = project_with_images(user)
    Job.objects.all().delete()  # the uploads' embeddings
    lost = []
    monkeypatch.setattr(services, "_enqueue", lambda job_id, kind: lost.append(job_id))  # the broker lost it
    with django_capture_on_commit_callbacks(execute=True):
        job = start("export", project, user, settings, tmp_path)
    assert (Job.objects.get(pk=job.pk).attempts, lost) == (1, [job.pk])
    worker_heartbeat()
    assert Job.objects.get(pk=job.pk).attempts == 1  # not yet N minutes
    later = timezone.now() + timedelta(minutes=settings.SIGHTLINE_JOB_QUEUED_MINUTES + 1)
    assert services.jobs_reap(now=later) == {"failed": 0, "requeued": 1}
    assert (Job.objects.get(pk=job.pk).attempts, lost) == (2, [job.pk, job.pk])
    assert services.jobs_reap(now=later + timedelta(minutes=settings.SIGHTLINE_JOB_QUEUED_MINUTES + 1)) == {
        "failed": 1,
        "requeued": 0,
    }
    failed = Job.objects.get(pk=job.pk)
    assert (failed.status, failed.error) == (
        "failed",
        (
            "No worker took this job, even after it was queued again. Check that a worker serves the cpu cluster "
            "(manage.py qcluster, with Q_CLUSTER_NAME=cpu in a deployment)."
        ),
    )
    # Its model name is free again: a job that failed holds nothing.
    assert not Job.objects.active().filter(pk=job.pk).exists()


@pytest.mark.django_db
def test_a_requeued_job_runs_when_the_queue_works_again(
    user, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    project = project_with_images(user)
    Job.objects.all().delete()  # the uploads' embeddings
    monkeypatch.setattr(services, "_enqueue", lambda job_id, kind: None)
    with django_capture_on_commit_callbacks(execute=True):
        job = start("export", project, user, settings, tmp_path)
    monkeypatch.undo()  # the broker is back: django-q2 runs the task inline in tests
    later = timezone.now() + timedelta(minutes=settings.SIGHTLINE_JOB_QUEUED_MINUTES + 1)
    assert services.jobs_reap(now=later) == {"failed": 0, "requeued": 1}
    assert Job.objects.get(pk=job.pk).status == "finished"


@pytest.mark.django_db
def test_a_job_waiting_behind_a_running_one_of_its_cluster_is_not_lost(
    user, settings, tmp_path, no_enqueue, django_capture_on_commit_callbacks
):
    project = project_with_images(user)
    busy = start("training", project, user, settings, tmp_path)
    Job.objects.filter(pk=busy.pk).update(status="running", heartbeat_at=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        waiting = start("embeddings", project, user, settings, tmp_path)  # gpu too, under the one default worker
    later = timezone.now() + timedelta(minutes=settings.SIGHTLINE_JOB_QUEUED_MINUTES + 1)
    assert services.jobs_reap(now=later) == {"failed": 0, "requeued": 0}
    assert Job.objects.get(pk=waiting.pk).attempts == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", KINDS)
def test_killing_the_worker_mid_run_fails_the_job_within_the_stale_time_and_a_new_job_then_runs(
    kind, user, settings, tmp_path, monkeypatch
):
    builtin_roles_seed()
    monkeypatch.setattr(services, "_enqueue", lambda job_id, kind: None)
    project = project_with_images(user)
    job = start(kind, project, user, settings, tmp_path)
    worker = job_process(
        job.pk, SIGHTLINE_JOB_HEARTBEAT_SECONDS="1", SIGHTLINE_SAM_CHECKPOINT=settings.SIGHTLINE_SAM_CHECKPOINT
    )
    try:
        wait_for(
            lambda: Job.objects.filter(pk=job.pk, status="running").exclude(phase="Starting").exists(),
            what=f"the {kind} job to start working",
        )
    finally:
        worker.kill()  # SIGKILL: no clean-up runs, as with the out-of-memory killer
        worker.wait()
    killed_at = timezone.now()
    settings.SIGHTLINE_JOB_STALE_SECONDS = 3
    worker_heartbeat()
    assert Job.objects.get(pk=job.pk).status == "running"  # silent for less than the stale time
    wait_for(
        lambda: worker_heartbeat() and Job.objects.get(pk=job.pk).status == "failed", timeout=10, what="the reaper"
    )
    dead = Job.objects.get(pk=job.pk)
    assert dead.error == services.STALE_ERROR
    assert (dead.finished_at - killed_at).total_seconds() < 3 + 2
    monkeypatch.undo()
    if kind == "pair-search":
        Job.objects.filter(pk=job.pk).update(created_at=killed_at - timedelta(hours=1))
    fresh = start(kind, project, user, settings, tmp_path)
    assert fresh.pk != job.pk
    assert Job.objects.get(pk=fresh.pk).status == "finished"


@pytest.mark.django_db
def test_staff_cancel_jobs_of_any_kind_from_admin(user, client, settings, tmp_path, no_enqueue):
    project = project_with_images(user)
    queued = start("export", project, user, settings, tmp_path)
    running = start("pair-search", project, user, settings, tmp_path)
    Job.objects.filter(pk=running.pk).update(status="running")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get("/admin/jobs/job/")
    assert page.status_code == 200 and f"export job {queued.pk}" in page.content.decode()
    client.post("/admin/jobs/job/", {"action": "cancel", "_selected_action": [queued.pk, running.pk]})
    assert Job.objects.get(pk=queued.pk).status == "cancelled"
    assert Job.objects.get(pk=running.pk).cancel_requested is True


def test_the_fair_queue_hands_a_project_one_job_of_a_kind_at_a_time(
    user, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """Project A asks for three exports, then project B for one: the broker holds A's first and B's, so B waits
    behind one of A's jobs, not three; A's next export goes to the broker when its first ends."""
    a, b = project_with_images(user), make_project(owner=user, name="B")
    enqueued = []
    monkeypatch.setattr(services, "_enqueue", lambda job_id, kind: enqueued.append(job_id))
    with django_capture_on_commit_callbacks(execute=True):
        with_a = [transfers.transfer_start(project=a, user=user, direction="export", format_key="coco") for _ in "123"]
        with_b = transfers.transfer_start(project=b, user=user, direction="export", format_key="coco")
    assert enqueued == [with_a[0].pk, with_b.pk]
    waiting = Job.objects.get(pk=with_a[1].pk)
    assert (waiting.status, waiting.enqueued_at, waiting.phase) == (
        "queued",
        None,
        "Waiting for this project's earlier export job to finish.",
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert job_run(with_a[0].pk) == "finished", Job.objects.get(pk=with_a[0].pk).error
    assert enqueued == [with_a[0].pk, with_b.pk, with_a[1].pk]
    with django_capture_on_commit_callbacks(execute=True):
        services.job_cancel(job=Job.objects.get(pk=with_a[1].pk))  # cancelled in the broker: it hands on too
    assert enqueued == [with_a[0].pk, with_b.pk, with_a[1].pk, with_a[2].pk]
    assert job_run(with_a[1].pk) is None  # the broker's copy of a cancelled job does nothing


def test_the_reaper_hands_on_the_jobs_waiting_behind_one_whose_worker_died(
    user, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr(services, "_enqueue", lambda job_id, kind: enqueued.append(job_id))
    project = make_project(owner=user, name="A")
    with django_capture_on_commit_callbacks(execute=True):
        first, second = [
            transfers.transfer_start(project=project, user=user, direction="export", format_key="coco") for _ in "12"
        ]
    stale = timezone.now() - timedelta(seconds=settings.SIGHTLINE_JOB_STALE_SECONDS + 5)
    Job.objects.filter(pk=first.pk).update(status="running", started_at=stale, heartbeat_at=stale)
    assert enqueued == [first.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert services.jobs_reap() == {"failed": 1, "requeued": 0}
    assert enqueued == [first.pk, second.pk]
