"""Training through the API, as a script would: start a job, it runs in the worker, a model comes out."""

import pytest

from projects.models import Role
from projects.services import membership_grant
from tests.conftest import client_for
from tests.factories import UserFactory, make_project
from tests.training.conftest import FAST, colour_png
from training.models import DatasetItem, DatasetVersion, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db


def start(api, project, capture, **body):
    with capture(execute=True):
        return api.post(f"/api/projects/{project.id}/training-jobs/", {"task": "classification", **body}, format="json")


def test_a_job_trains_a_single_label_model_that_predicts(api, colours_project, django_capture_on_commit_callbacks):
    response = start(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    assert response.status_code == 201, response.content
    job = api.get(f"/api/training-jobs/{response.json()['id']}/").json()
    assert job["status"] == "finished", job["error"] + job["log"]
    assert (job["epoch"], job["epochs"], job["progress"]) == (3, 3, 1.0)
    assert [entry["epoch"] for entry in job["history"]] == [1, 2, 3]
    assert job["dataset_version"]["labels"] == ["blue", "red"]
    # 20% of each class of 12, stratified: round(2.4) = 2 each.
    assert job["dataset_version"]["counts"]["labels"] == {
        "blue": {"train": 10, "valid": 2},
        "red": {"train": 10, "valid": 2},
    }
    assert job["device"].startswith("cpu")

    models = api.get(f"/api/projects/{colours_project.id}/models/").json()
    assert [m["name"] for m in models] == ["colours"]
    model = models[0]
    assert model["id"] == job["model_id"]
    assert (model["labels"], model["multi_label"], model["predict_with"]) == (["blue", "red"], False, "best")
    assert model["metrics"]["best"]["valid"]["count"] == 4
    assert model["metrics"]["best"]["valid"]["accuracy"] == 1.0

    red = colour_png((220, 30, 30), 999)
    reply = api.post(f"/api/predict/{colours_project.id}/colours/", red, content_type="application/octet-stream")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert (body["model"], body["checkpoint"]) == ("colours", "best")
    assert [p["label"] for p in body["predictions"]] == ["red", "blue"]
    assert body["predictions"][0]["score"] > 0.5
    assert abs(sum(p["score"] for p in body["predictions"]) - 1.0) < 1e-4


def test_predict_with_the_last_checkpoint_and_with_a_form(api, colours_project, django_capture_on_commit_callbacks):
    start(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    blue = colour_png((30, 30, 220), 998)
    from django.core.files.uploadedfile import SimpleUploadedFile

    # As `curl --data-binary @blue.png` sends it when no Content-Type is given.
    last = api.post(
        f"/api/predict/{colours_project.id}/colours/last", blue, content_type="application/x-www-form-urlencoded"
    )
    form = api.post(
        f"/api/predict/{colours_project.id}/colours/best/",
        {"file": SimpleUploadedFile("b.png", blue)},
        format="multipart",
    )
    assert last.status_code == 200 and form.status_code == 200
    assert (last.json()["checkpoint"], form.json()["checkpoint"]) == ("last", "best")
    assert last.json()["predictions"][0]["label"] == form.json()["predictions"][0]["label"] == "blue"


def test_predicting_refuses_what_is_not_an_image_and_unknown_models(
    api, colours_project, django_capture_on_commit_callbacks
):
    start(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    bad = api.post(
        f"/api/predict/{colours_project.id}/colours/", b"not an image", content_type="application/octet-stream"
    )
    assert bad.status_code == 400
    assert bad.json() == {"file": ["This is not an image file Sightline can read."]}
    missing = api.post(f"/api/predict/{colours_project.id}/nope/", b"x", content_type="application/octet-stream")
    assert missing.status_code == 404


def test_bad_parameters_are_refused_before_anything_is_frozen(api, colours_project, django_capture_on_commit_callbacks):
    response = start(
        api,
        colours_project,
        django_capture_on_commit_callbacks,
        parameters={"epochs": 0, "image_size": 300, "learning_rate": "fast", "colour": 1},
    )
    assert response.status_code == 400
    assert response.json() == {
        "colour": [
            "Unknown parameter; classification takes epochs, batch_size, learning_rate, image_size, validation_percent, "
            "use_validation_set, time_limit_minutes, patience, backbone, pretrained, fine_tune, augment, flip, seed."
        ],
        "epochs": ["Must be from 1 to 500."],
        "learning_rate": ["Must be a number."],
        "image_size": ["Must be one of 224, 320, 416, 512, 640."],
    }
    assert (TrainingJob.objects.count(), DatasetItem.objects.count()) == (0, 0)


def test_pretrained_weights_that_are_not_here_are_an_error_not_random_weights(
    api, colours_project, django_capture_on_commit_callbacks
):
    response = start(api, colours_project, django_capture_on_commit_callbacks, parameters={"backbone": "resnet18"})
    assert response.status_code == 400
    assert response.json()["pretrained"][0].startswith("No pretrained weights for resnet18 on this server")
    random_weights = start(
        api,
        colours_project,
        django_capture_on_commit_callbacks,
        parameters={**FAST, "backbone": "resnet18", "pretrained": False, "epochs": 1},
    )
    assert random_weights.status_code == 201
    assert TrainingJob.objects.get().status == "finished"


def test_a_project_without_labels_cannot_train(api, user, django_capture_on_commit_callbacks):
    from tests.factories import make_project

    project = make_project(owner=user)
    response = start(api, project, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert response.json() == {"task": ["No image has a classification label yet: label some images first."]}


def test_a_labeler_may_watch_but_not_train_and_a_stranger_sees_nothing(
    api, user, colours_project, django_capture_on_commit_callbacks
):
    labeler, stranger = UserFactory(), UserFactory()
    membership_grant(project=colours_project, email=labeler.email, role=Role.objects.get(name="Labeler"))
    denied = start(client_for(labeler), colours_project, django_capture_on_commit_callbacks)
    assert denied.status_code == 403
    assert TrainingJob.objects.count() == 0
    job = start(api, colours_project, django_capture_on_commit_callbacks, name="c", parameters=FAST).json()
    assert client_for(labeler).get(f"/api/training-jobs/{job['id']}/").status_code == 200
    assert client_for(labeler).post(f"/api/training-jobs/{job['id']}/cancel/").status_code == 403
    assert client_for(stranger).get(f"/api/training-jobs/{job['id']}/").status_code == 404
    assert client_for(stranger).get(f"/api/models/{job['model_id']}/").status_code == 404
    assert (
        client_for(stranger).post(f"/api/predict/{colours_project.id}/c/", b"x", content_type="image/png").status_code
        == 404
    )
    assert ModelVersion.objects.count() == 1


def test_the_time_limit_must_end_before_the_worker_would_kill_the_task(
    api, colours_project, django_capture_on_commit_callbacks
):
    response = start(api, colours_project, django_capture_on_commit_callbacks, parameters={"time_limit_minutes": 360})
    assert response.status_code == 400
    assert response.json() == {
        "time_limit_minutes": [
            "At most 350 minutes on this server: the worker stops any task after 360 minutes (SIGHTLINE_TASK_TIMEOUT)."
        ]
    }


@pytest.mark.parametrize("fine_tune", ["top", "all"])
def test_every_way_of_fine_tuning_trains_a_model_that_tells_the_colours_apart(
    api, colours_project, fine_tune, django_capture_on_commit_callbacks
):
    parameters = {"epochs": 2, "batch_size": 8, "learning_rate": 0.003, "fine_tune": fine_tune, "patience": 0}
    response = start(api, colours_project, django_capture_on_commit_callbacks, name=fine_tune, parameters=parameters)
    job = api.get(f"/api/training-jobs/{response.json()['id']}/").json()
    assert job["status"] == "finished", job["error"]
    assert ("Frozen stages computed once for 24 images" in job["log"]) == (fine_tune == "top")
    reply = api.post(
        f"/api/predict/{colours_project.id}/{fine_tune}/", colour_png((30, 30, 220), 555), content_type="image/png"
    )
    assert reply.json()["predictions"][0]["label"] == "blue"


def test_an_image_over_the_upload_limit_is_refused_before_it_is_read(
    api, colours_project, settings, django_capture_on_commit_callbacks
):
    start(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    settings.SIGHTLINE_MAX_UPLOAD_BYTES = 1000
    big = colour_png((220, 30, 30), 1, size=64)
    assert len(big) > 1000
    reply = api.post(f"/api/predict/{colours_project.id}/colours/", big, content_type="image/png")
    assert reply.status_code == 400
    assert reply.json() == {"file": [f"The image is {len(big):,} bytes, more than the limit of 1,000."]}


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        ({"epochs": 201}, {"epochs": ["At most 200 epochs on this server (SIGHTLINE_TRAIN_MAX_EPOCHS)."]}),
        (
            {"batch_size": 64, "image_size": 640},
            {
                "batch_size": [
                    "A batch of 64 images of 640 px is 26,214,400 pixels, more than this server's 6,553,600 "
                    "(SIGHTLINE_TRAIN_MAX_BATCH_PIXELS): lower the batch size or the image size."
                ]
            },
        ),
        (
            {"backbone": "vit_huge_patch14_224", "pretrained": False, "fine_tune": "all"},
            {
                "backbone": [
                    "vit_huge_patch14_224 has 630,767,362 parameters, more than this server's 100,000,000 "
                    "(SIGHTLINE_TRAIN_MAX_PARAMETERS)."
                ]
            },
        ),
    ],
)
def test_training_beyond_the_servers_limits_is_refused_naming_the_limit(
    api, colours_project, django_capture_on_commit_callbacks, parameters, errors
):
    response = start(api, colours_project, django_capture_on_commit_callbacks, parameters=parameters)
    assert (response.status_code, response.json()) == (400, errors)
    assert TrainingJob.objects.count() == 0


def test_the_time_limit_is_bounded_by_the_server_setting(
    api, colours_project, django_capture_on_commit_callbacks, settings
):
    settings.SIGHTLINE_TRAIN_MAX_MINUTES = 30
    response = start(api, colours_project, django_capture_on_commit_callbacks, parameters={"time_limit_minutes": 31})
    assert response.json() == {
        "time_limit_minutes": ["At most 30 minutes on this server (SIGHTLINE_TRAIN_MAX_MINUTES)."]
    }


def test_training_on_chosen_images_freezes_only_those_with_labels(api, user, colours_project):
    """ML Training Settings' checklist: the job trains on the checked images that have labels, nothing else."""
    from projects.models import Image
    from tests.training.conftest import colour_png, upload

    images = dict(Image.objects.filter(project=colours_project).values_list("name", "id"))
    [unlabeled] = upload(colours_project, user, [("plain.png", colour_png((90, 90, 90), 77))], [])
    chosen = [images[f"red{i}.png"] for i in range(5)] + [images[f"blue{i}.png"] for i in range(5)] + [unlabeled.id]
    url = f"/api/projects/{colours_project.id}/training-jobs/"
    body = {"task": "classification", "name": "chosen", "parameters": {"epochs": 1}, "images": chosen}
    started = api.post(url, body, format="json")
    assert started.status_code == 201, started.content
    version = DatasetVersion.objects.get(pk=started.json()["dataset_version"]["id"])
    assert sorted(version.items.values_list("image_id", flat=True)) == sorted(chosen[:-1])
    assert [entry["name"] for entry in version.labels] == ["blue", "red"]

    other = make_project(owner=user, name="Not this one")
    [stranger] = upload(other, user, [("x.png", colour_png((1, 2, 3), 5))], ["red"])
    versions = DatasetVersion.objects.count()
    for images_sent, reason in [
        ([], "Choose the images to train on."),
        ([*chosen, stranger.id], "1 of the chosen images are not in this project."),
    ]:
        answer = api.post(url, {**body, "name": "again", "images": images_sent}, format="json")
        assert (answer.status_code, answer.json()) == (400, {"images": [reason]})
    assert DatasetVersion.objects.count() == versions
