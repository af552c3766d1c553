"""The life of a training job: datasets it freezes, cancelling, a dead worker, and what a model remembers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.runner import job_run
from jobs.tasks import worker_heartbeat
from projects.models import Image
from tests.training.conftest import FAST, colour_png, upload
from training.models import DatasetItem, ModelVersion, TrainingJob
from training.services import runs

pytestmark = pytest.mark.django_db


def start(api, project, capture, execute=True, **body):
    with capture(execute=execute):
        response = api.post(
            f"/api/projects/{project.id}/training-jobs/", {"task": "classification", **body}, format="json"
        )
    assert response.status_code == 201, response.content
    return response.json()


def test_the_dataset_version_is_frozen_when_the_job_starts(api, colours_project, django_capture_on_commit_callbacks):
    job = start(api, colours_project, django_capture_on_commit_callbacks, execute=False, parameters=FAST)
    assert job["status"] == "queued"
    # Labelling after the start changes nothing the job trains on.
    upload(colours_project, colours_project.owner, [("late.png", colour_png((30, 200, 30), 500))], ["green"])
    version = TrainingJob.objects.get(pk=job["id"]).dataset_version
    assert version.label_names == ["blue", "red"]
    assert DatasetItem.objects.filter(dataset_version=version).count() == 24
    job_run(job["id"])
    assert ModelVersion.objects.get().labels == ["blue", "red"]


def test_one_label_trains_against_background_images(api, user, django_capture_on_commit_callbacks):
    from tests.factories import make_project

    project = make_project(owner=user)
    upload(project, user, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(8)], ["red"])
    refused = api.post(f"/api/projects/{project.id}/training-jobs/", {"task": "classification"}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {
        "task": [
            "Only one label (red) is in use. A one-class model learns it against 'background' images: upload some "
            "images without labels, or label images with a second label."
        ]
    }
    upload(project, user, [(f"other{i}.png", colour_png((30, 200, 30), 50 + i)) for i in range(8)], [])
    job = start(api, project, django_capture_on_commit_callbacks, parameters=FAST)
    assert job["dataset_version"]["labels"] == ["red", "background"]
    assert job["dataset_version"]["counts"]["labels"] == {
        "red": {"train": 6, "valid": 2},
        "background": {"train": 6, "valid": 2},
    }
    model = api.get(f"/api/projects/{project.id}/models/").json()[0]
    assert model["labels"] == ["red", "background"]


def test_the_user_defined_validation_set(api, colours_project, django_capture_on_commit_callbacks):
    refused = api.post(
        f"/api/projects/{colours_project.id}/training-jobs/",
        {"task": "classification", "parameters": {"use_validation_set": True}},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["use_validation_set"][0].startswith("No labelled image is in the validation set")
    chosen = list(Image.objects.filter(name__in=["red0.png", "blue0.png", "blue1.png"]).values_list("id", flat=True))
    marked = api.post(
        f"/api/projects/{colours_project.id}/images/validation/",
        {"images": chosen, "is_validation": True},
        format="json",
    )
    assert marked.json() == {"changed": 3}
    single = api.patch(f"/api/images/{chosen[0]}/", {"is_validation": False}, format="json")
    assert single.json()["is_validation"] is False
    job = start(
        api, colours_project, django_capture_on_commit_callbacks, parameters={**FAST, "use_validation_set": True}
    )
    assert (job["dataset_version"]["counts"]["train"], job["dataset_version"]["counts"]["valid"]) == (22, 2)
    valid = set(DatasetItem.objects.filter(split="valid").values_list("image_name", flat=True))
    assert valid == set(Image.objects.filter(pk__in=chosen[1:]).values_list("name", flat=True))


def test_cancelling_a_queued_job_and_a_finished_one(api, colours_project, django_capture_on_commit_callbacks):
    job = start(api, colours_project, django_capture_on_commit_callbacks, execute=False, parameters=FAST)
    cancelled = api.post(f"/api/training-jobs/{job['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    job_run(job["id"])  # the worker finds it cancelled and leaves it alone
    assert TrainingJob.objects.get().status == "cancelled"
    again = api.post(f"/api/training-jobs/{job['id']}/cancel/")
    assert again.status_code == 400
    assert again.json() == {"status": ["The job has already cancelled."]}
    assert ModelVersion.objects.count() == 0


def test_stopping_a_running_job_keeps_the_epochs_it_finished(
    api, colours_project, monkeypatch, django_capture_on_commit_callbacks
):
    # The person presses Stop during the second epoch.
    monkeypatch.setattr(runs._Reporter, "stop", lambda self: self.epochs_written >= 1)
    job = start(api, colours_project, django_capture_on_commit_callbacks, parameters={**FAST, "epochs": 5})
    job = api.get(f"/api/training-jobs/{job['id']}/").json()
    assert job["status"] == "cancelled"
    assert len(job["history"]) == 2
    model = ModelVersion.objects.get()
    assert (model.epochs_trained, model.job_id) == (2, job["id"])


def test_stopping_before_the_first_epoch_leaves_no_model(
    api, colours_project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(runs._Reporter, "stop", lambda self: True)
    job = start(api, colours_project, django_capture_on_commit_callbacks, parameters=FAST)
    job = api.get(f"/api/training-jobs/{job['id']}/").json()
    assert (job["status"], job["model_id"]) == ("cancelled", None)
    assert "Cancelled while preparing features." in job["log"]


def test_a_job_whose_worker_died_is_marked_failed(api, colours_project, settings, django_capture_on_commit_callbacks):
    job = start(api, colours_project, django_capture_on_commit_callbacks, execute=False, parameters=FAST)
    fresh = start(api, colours_project, django_capture_on_commit_callbacks, execute=False, parameters=FAST)
    now = timezone.now()
    TrainingJob.objects.filter(pk=job["id"]).update(status="running", heartbeat_at=now - timedelta(seconds=121))
    TrainingJob.objects.filter(pk=fresh["id"]).update(status="running", heartbeat_at=now - timedelta(seconds=30))
    worker_heartbeat()  # the scheduled task, every minute
    dead, alive = TrainingJob.objects.get(pk=job["id"]), TrainingJob.objects.get(pk=fresh["id"])
    assert (dead.status, alive.status) == ("failed", "running")
    assert dead.error == "The worker running this job stopped (killed, out of memory or restarted) before it finished."
    assert dead.finished_at is not None


def test_a_failure_inside_training_is_recorded_on_the_job(
    api, colours_project, monkeypatch, django_capture_on_commit_callbacks
):
    def explode(*args, **kwargs):
        raise RuntimeError("CUDA error at /srv/secret/path/model.py line 7")

    monkeypatch.setattr(runs.classification, "train", explode)
    job = start(api, colours_project, django_capture_on_commit_callbacks, parameters=FAST)
    job = api.get(f"/api/training-jobs/{job['id']}/").json()
    assert job["status"] == "failed"
    assert job["error"] == (f"Unexpected error (RuntimeError); the worker's log has the details of job {job['id']}.")
    assert "/srv/secret" not in TrainingJob.objects.get(pk=job["id"]).log  # nor in the log people read
    assert ModelVersion.objects.count() == 0


def test_model_names_are_unique_in_a_project(api, colours_project, django_capture_on_commit_callbacks):
    start(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    again = api.post(
        f"/api/projects/{colours_project.id}/training-jobs/",
        {"task": "classification", "name": "colours"},
        format="json",
    )
    assert again.status_code == 400
    assert again.json() == {"name": ["This project already has a model named 'colours'."]}
    for bad in ("a/b", "a\\b", 'say "hi"', "line\nbreak"):
        refused = api.post(
            f"/api/projects/{colours_project.id}/training-jobs/", {"task": "classification", "name": bad}, format="json"
        )
        assert refused.json() == {"name": ['A model name has 1 to 100 printable characters, none of / \\ ".']}, bad
    unnamed = start(api, colours_project, django_capture_on_commit_callbacks, execute=False, parameters=FAST)
    assert unnamed["name"] == "classification-2"


def test_admin_lists_jobs_and_models_and_deletes_models_with_their_files(
    client, colours_project, django_capture_on_commit_callbacks
):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    from training import services

    with django_capture_on_commit_callbacks(execute=True):
        services.training_job_start(
            project=colours_project, user=staff, task="classification", name="c", parameters=FAST
        )
    model = ModelVersion.objects.get()
    path = model.best_checkpoint.path
    for url in (
        "/admin/training/trainingjob/",
        "/admin/training/modelversion/",
        "/admin/training/datasetversion/",
        f"/admin/training/modelversion/{model.pk}/change/",
    ):
        assert client.get(url).status_code == 200, url
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/training/modelversion/",
            {"action": "delete_selected", "_selected_action": [model.pk], "post": "yes"},
        )
    assert response.status_code == 302
    assert (ModelVersion.objects.count(), TrainingJob.objects.count()) == (0, 0)
    import os

    assert not os.path.exists(path)


def test_a_diverging_loss_fails_the_job_with_advice(
    api, colours_project, monkeypatch, django_capture_on_commit_callbacks
):
    import torch

    class Diverged(torch.nn.CrossEntropyLoss):
        def forward(self, logits, target):
            return super().forward(logits, target) * float("nan")

    monkeypatch.setattr(runs.classification, "loss_function", lambda multi_label: Diverged())
    job = start(api, colours_project, django_capture_on_commit_callbacks, parameters=FAST)
    job = api.get(f"/api/training-jobs/{job['id']}/").json()
    assert job["status"] == "failed"
    assert job["error"] == "The loss became nan in epoch 1: training diverged. Lower the learning rate (it is 0.01)."


def test_a_job_reaped_while_it_ran_stays_failed_and_keeps_no_files(
    api, colours_project, monkeypatch, media_root, django_capture_on_commit_callbacks
):
    real_train = runs.classification.train

    def train_while_the_reaper_gives_up(*args, **kwargs):
        result = real_train(*args, **kwargs)
        TrainingJob.objects.update(status="failed", error="The worker running this job stopped (...)")
        return result

    monkeypatch.setattr(runs.classification, "train", train_while_the_reaper_gives_up)
    job = start(api, colours_project, django_capture_on_commit_callbacks, parameters=FAST)
    job = api.get(f"/api/training-jobs/{job['id']}/").json()
    assert (job["status"], job["model_id"]) == ("failed", None)
    assert job["error"] == "The worker running this job stopped (...)"
    assert ModelVersion.objects.count() == 0
    assert not list((media_root / "models").rglob("*.*"))


def test_a_dataset_version_says_exactly_what_was_trained_on(api, colours_project, django_capture_on_commit_callbacks):
    job = start(api, colours_project, django_capture_on_commit_callbacks, execute=False, parameters=FAST)
    versions = api.get(f"/api/projects/{colours_project.id}/dataset-versions/").json()
    assert [(v["number"], v["split_method"], v["validation_percent"]) for v in versions] == [(1, "percent", 20)]
    labels = {label.name: label for label in colours_project.labels.all()}
    assert versions[0]["labels"] == [{"id": labels[n].id, "name": n, "color": labels[n].color} for n in ("blue", "red")]
    detail = api.get(f"/api/dataset-versions/{job['dataset_version']['id']}/").json()
    assert detail["items_count"] == 24 and detail["next"] is None
    red0 = next(item for item in detail["items"] if item["image_name"] == "red0.png")
    assert (red0["labels"], red0["revision"]) == (["red"], 0)
    assert sorted(item["split"] for item in detail["items"]).count("valid") == 4
    Image.objects.filter(name="red0.png").delete()  # the version still remembers it
    again = api.get(f"/api/dataset-versions/{job['dataset_version']['id']}/").json()
    assert next(item for item in again["items"] if item["image_name"] == "red0.png")["image_id"] is None
