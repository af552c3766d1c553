"""Model-assisted labeling through the API: a detector's predictions on an image, accepted in part, against a stale
revision, above a threshold, cleared; kept out of datasets and label filters until accepted; bulk pre-labeling."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotations.models import Annotation
from jobs.models import Job
from projects.models import Label
from projects.uploads import images_upload
from tests.factories import UserFactory, make_project
from tests.training.scenes import scene
from tests.training.test_detection import _train
from training import predictions
from training.models import ModelVersion, Prediction
from training.services.datasets import dataset_version_create

pytestmark = pytest.mark.django_db


def _dataset_boxes(project, user) -> tuple[int, int]:
    """A detection dataset frozen now: its images and boxes."""
    version = dataset_version_create(
        project=project, user=user, task="detection", multi_label=False, validation_percent=20, use_validation_set=False
    )
    return version.items.count(), sum(len(item.targets["boxes"]) for item in version.items.all())


def _geometry(box: dict) -> dict:
    return {k: box[k] for k in ("x", "y", "width", "height")}


def test_a_detectors_suggestions_are_accepted_in_part_refused_when_stale_and_cleared(
    api, user, scenes, django_capture_on_commit_callbacks
):
    project, truth, _ = scenes
    assert _train(api, project, django_capture_on_commit_callbacks, epochs=1)["status"] == "finished"
    model = ModelVersion.objects.get(name="shapes")
    png, _ = scene(500, objects=(3, 5))
    [image] = images_upload(project=project, user=user, files=[SimpleUploadedFile("new.png", png)], labels=[]).stored
    url = f"/api/images/{image.id}/predictions/"
    assert api.get(url).json() == {"image": image.id, "predictions": []}
    before = _dataset_boxes(project, user)

    # Predict now: the stored rows are the predict endpoint's boxes at the lowest score Model Assist shows.
    answered = api.post(url, {"model": model.id}, format="json")
    assert answered.status_code == 200, answered.content
    rows = answered.json()["predictions"]
    [expected] = predictions.boxes_predict(
        model=model, checkpoint="best", images=[png], threshold=predictions.BOX_FLOOR
    )
    assert len(rows) >= 4
    assert [(r["kind"], r["label_name"], r["score"], r["geometry"], r["model"], r["checkpoint"]) for r in rows] == [
        ("box", b["label"], b["score"], _geometry(b), model.id, "best") for b in expected
    ]
    assert api.get(url).json()["predictions"] == rows

    # Not ground truth: no shapes, no dataset item, no label filter match; the prediction filters find it.
    document = api.get(f"/api/images/{image.id}/annotations/").json()
    assert (document["revision"], document["shapes"], document["classifications"]) == (0, [], [])
    assert _dataset_boxes(project, user) == before
    listed = f"/api/projects/{project.id}/images/"
    disc = rows[0]["label_name"]
    assert [i["id"] for i in api.get(listed, {"labels": disc, "type": "none"}).json()["results"]] == []
    assert [i["id"] for i in api.get(listed, {"predicted": "yes"}).json()["results"]] == [image.id]
    assert [i["id"] for i in api.get(listed, {"predicted_label": disc}).json()["results"]] == [image.id]
    top = rows[0]["score"]
    assert [i["id"] for i in api.get(listed, {"score_below": top + 1e-6}).json()["results"]] == [image.id]
    assert api.get(listed, {"score_below": top}).json()["results"] == []
    assert api.get(listed, {"score_below": "2"}).json() == {"score_below": ["Give a number from 0 to 1."]}

    # Accept two: they become annotations with their score and model, and leave the predictions.
    accept = f"{url}accept/"
    chosen = [rows[0]["id"], rows[2]["id"]]
    accepted = api.post(accept, {"revision": 0, "ids": chosen}, format="json").json()
    document = accepted.pop("document")
    assert accepted == {"image": image.id, "revision": 1, "accepted": 2, "shapes": 2, "labels": 0}
    assert document == api.get(f"/api/images/{image.id}/annotations/").json()
    shapes = document["shapes"]
    assert [(s["label"], s["kind"], s["source"], s["score"], s["model"]) for s in shapes] == [
        (r["label"], "box", "prediction", r["score"], model.id) for r in (rows[0], rows[2])
    ]
    for shape, row in zip(shapes, (rows[0], rows[2]), strict=True):  # the box validator's float arithmetic
        assert shape["geometry"] == pytest.approx(row["geometry"], abs=1e-9)
    left = [r["id"] for r in api.get(url).json()["predictions"]]
    assert left == [r["id"] for r in rows if r["id"] not in chosen]
    count, boxes = _dataset_boxes(project, user)
    assert (count, boxes) == (before[0] + 1, before[1] + 2)

    # A stale revision, ids of no prediction of this image, or both ways of choosing: refused, nothing changes.
    stale = api.post(accept, {"revision": 0, "threshold": 0.0}, format="json")
    assert stale.status_code == 409
    assert stale.json()["current"]["revision"] == 1 and len(stale.json()["current"]["shapes"]) == 2
    gone = api.post(accept, {"revision": 1, "ids": [chosen[0], left[0]]}, format="json")
    assert (gone.status_code, gone.json()) == (
        400,
        {"ids": [f"Not predictions of this image: {chosen[0]} (cleared or accepted?)."]},
    )
    both = api.post(accept, {"revision": 1, "ids": left[:1], "threshold": 0.5}, format="json")
    assert both.status_code == 400
    assert [r["id"] for r in api.get(url).json()["predictions"]] == left
    assert api.get(f"/api/images/{image.id}/annotations/").json()["revision"] == 1

    # Accept every one above a threshold, then clear the rest; the annotations stay.
    remaining = [r for r in rows if r["id"] not in chosen]
    threshold = remaining[1]["score"]
    above = [r for r in remaining if r["score"] >= threshold]
    accepted = api.post(accept, {"revision": 1, "threshold": threshold}, format="json").json()
    assert (accepted["revision"], accepted["accepted"], accepted["shapes"]) == (2, len(above), len(above))
    cleared = api.delete(url)
    assert cleared.json() == {"image": image.id, "cleared": len(remaining) - len(above)}
    assert api.get(url).json()["predictions"] == []
    assert len(api.get(f"/api/images/{image.id}/annotations/").json()["shapes"]) == 2 + len(above)
    # Nothing left to accept: no save, the revision stays; a model id that is no number is a 400.
    nothing = api.post(accept, {"revision": 2, "threshold": 0.0}, format="json").json()
    assert {k: nothing[k] for k in ("revision", "accepted")} == {"revision": 2, "accepted": 0}
    assert api.get(f"/api/images/{image.id}/annotations/").json()["revision"] == 2
    assert api.get(url, {"model": "²"}).json() == {"model": ["Give a model id."]}

    # Replaced in bulk and restored from the history, accepted shapes still name their model.
    kept = [
        (s["source"], s["score"], s["model"]) for s in api.get(f"/api/images/{image.id}/annotations/").json()["shapes"]
    ]
    bulk = {"mode": "replace", "images": [{"image": image.id, "revision": 2, "shapes": []}]}
    assert api.post(f"/api/projects/{project.id}/annotations/bulk/", bulk, format="json").status_code == 200
    [entry] = api.get(f"/api/images/{image.id}/history/").json()["history"]
    assert api.post(f"/api/images/{image.id}/history/{entry['id']}/restore/").status_code == 200
    document = api.get(f"/api/images/{image.id}/annotations/").json()
    assert [(s["source"], s["score"], s["model"]) for s in document["shapes"]] == kept
    assert document["revision"] == 4

    # Predicting again with the last checkpoint replaces the best one's predictions.
    api.post(url, {"model": model.id}, format="json")
    api.post(url, {"model": model.id, "checkpoint": "last"}, format="json")
    assert set(Prediction.objects.filter(image=image).values_list("checkpoint", flat=True)) == {"last"}

    # Another project's model is not found; a labeler may accept but not run a model.
    other = make_project(owner=user, name="other")
    assert api.post(url, {"model": model.id + 1000}, format="json").status_code == 404
    labeler = UserFactory()
    from projects.models import Role
    from projects.services import membership_grant
    from tests.conftest import client_for

    membership_grant(project=project, email=labeler.email, role=Role.objects.get(name="Labeler"))
    as_labeler = client_for(labeler)
    assert as_labeler.post(url, {"model": model.id}, format="json").status_code == 403
    count = Prediction.objects.filter(image=image).count()
    taken = as_labeler.post(accept, {"revision": 4, "threshold": 0.0}, format="json").json()
    assert (taken["revision"], taken["accepted"]) == (5, count)
    assert other.pk  # a project the model does not belong to exists, and changed nothing


def test_prelabeling_a_filter_runs_the_prediction_job_on_the_matching_images(
    api, user, scenes, django_capture_on_commit_callbacks
):
    project, truth, blank = scenes
    assert _train(api, project, django_capture_on_commit_callbacks, epochs=1)["status"] == "finished"
    model = ModelVersion.objects.get(name="shapes")
    fresh = [
        images_upload(
            project=project, user=user, files=[SimpleUploadedFile(f"n{seed}.png", scene(seed)[0])], labels=[]
        ).stored[0]
        for seed in (600, 601)
    ]
    url = f"/api/projects/{project.id}/prelabel/"
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(url, {"model": model.id, "filter": {"type": "none"}}, format="json")
    assert started.status_code == 202, started.content
    job = Job.objects.get(pk=started.json()["job"])
    assert started.json() == {"job": job.pk, "url": f"/api/jobs/{job.pk}/", "images": 2}
    assert (job.kind, job.status, job.payload["image_ids"]) == ("prediction", "finished", sorted(i.pk for i in fresh))
    assert set(Prediction.objects.values_list("image_id", flat=True)) == {i.pk for i in fresh}
    # Accept in bulk: through the API, the predictions scoring at least a threshold; through the grid, every one.
    scores = sorted(Prediction.objects.filter(image=fresh[0]).values_list("score", flat=True), reverse=True)
    assert len(scores) >= 2
    bulk = f"/api/projects/{project.id}/predictions/accept/"
    done = api.post(bulk, {"images": [fresh[0].pk], "threshold": scores[1]}, format="json")
    assert done.json() == {"images": 1, "accepted": sum(s >= scores[1] for s in scores), "skipped": 0}
    accepted = Annotation.objects.filter(image=fresh[0])
    assert sorted(accepted.values_list("score", flat=True), reverse=True) == [s for s in scores if s >= scores[1]]
    assert set(accepted.values_list("source", "model_version_id")) == {("prediction", model.id)}
    left = Prediction.objects.filter(image=fresh[1]).count()
    page = Client()
    page.force_login(user)
    grid = page.post(
        f"/projects/{project.id}/images/accept-predictions/", {"image": [fresh[1].pk], "threshold": "0.05"}
    )
    assert grid.status_code == 302
    assert Annotation.objects.filter(image=fresh[1]).count() == left
    assert Prediction.objects.filter(image__in=fresh).count() == len(scores) - len(accepted)
    message = [str(m) for m in get_messages(grid.wsgi_request)]
    assert message == [f"Accepted {left} prediction{'s' if left != 1 else ''} scoring at least 0.05 on 1 image."]

    # Bad requests: both ways of choosing, an unknown filter, nothing matching, another project's label.
    both = api.post(url, {"model": model.id, "images": [fresh[0].pk], "filter": {}}, format="json")
    assert both.status_code == 400
    unknown = api.post(url, {"model": model.id, "filter": {"colour": "red"}}, format="json")
    assert unknown.json() == {
        "filter": ["Unknown filter colour; use labels, type, status, predicted, predicted_label, score_below."]
    }
    nothing = api.post(url, {"model": model.id, "filter": {"labels": "empty", "type": "none"}}, format="json")
    assert nothing.json() == {"filter": ["No image matches the filter."]}
    assert Label.objects.filter(project=project, name="empty").exists() and blank.pk
    assert Job.objects.filter(kind="prediction").count() == 1


def test_a_classifiers_suggestions_are_image_labels_accepted_as_classifications(
    api, user, colours_project, django_capture_on_commit_callbacks
):
    from tests.training.conftest import colour_png, upload

    project = colours_project
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(
            f"/api/projects/{project.id}/training-jobs/",
            {
                "task": "classification",
                "name": "colours",
                "parameters": {"epochs": 1, "batch_size": 8, "fine_tune": "head", "patience": 0},
            },
            format="json",
        )
    assert started.status_code == 201, started.content
    model = ModelVersion.objects.get(name="colours")
    [image] = upload(project, user, [("new-red.png", colour_png((220, 30, 30), 999))], [])
    url = f"/api/images/{image.id}/predictions/"
    rows = api.post(url, {"model": model.id}, format="json").json()["predictions"]
    [expected] = predictions.images_predict(model=model, checkpoint="best", images=[colour_png((220, 30, 30), 999)])
    assert [(r["kind"], r["label_name"], r["score"], r["geometry"]) for r in rows] == [
        ("label", p["label"], p["score"], {}) for p in expected
    ]
    # Not a label until accepted: the image is still unlabeled.
    assert api.get(f"/api/images/{image.id}/annotations/").json()["classifications"] == []
    accepted = api.post(f"{url}accept/", {"revision": 0, "ids": [rows[0]["id"]]}, format="json").json()
    assert (accepted["revision"], accepted["accepted"], accepted["shapes"], accepted["labels"]) == (1, 1, 0, 1)
    document = api.get(f"/api/images/{image.id}/annotations/").json()
    assert [(c["name"], c["default"]) for c in document["classifications"]] == [(rows[0]["label_name"], True)]
    # The document as read (classifications carry their names) is accepted back as it is.
    resent = {k: document[k] for k in ("revision", "classifications", "shapes")}
    assert api.put(f"/api/images/{image.id}/annotations/", resent, format="json").status_code == 200
    assert [r["id"] for r in api.get(url).json()["predictions"]] == [r["id"] for r in rows[1:]]
