"""Load Existing Model (spec 004): a saved bundle becomes a model of another project, mapped by label names, and
predicts there as it did where it was trained; a bundle that does not fit is refused with its reason, storing
nothing."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import pytest
import torch
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from projects.models import Label
from projects.uploads import images_upload
from tests.factories import make_project
from tests.training.conftest import colour_png, upload
from tests.training.scenes import scene
from tests.training.test_detection import _train
from training import bundles, predictions
from training.models import ModelVersion

pytestmark = pytest.mark.django_db


def loadable(model: ModelVersion, *, meta: dict | None = None, saved: dict | None = None, skip: str = "") -> bytes:
    """A ZIP with the bundle's model.json and checkpoint.pt as Save Trained Model writes them (bundles.bundle_meta,
    bundles.checkpoint_bytes), without the exported program loading does not read; or with these replaced."""
    raw = bundles.checkpoint_bytes(model=model, checkpoint="best")
    if saved is not None:
        out = io.BytesIO()
        torch.save(saved, out)
        raw = out.getvalue()
    files = {
        "model.json": json.dumps(meta or bundles.bundle_meta(model=model, checkpoint="best")),
        "checkpoint.pt": raw,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            if name != skip:
                archive.writestr(f"{model.name}-best/{name}", data)
    return out.getvalue()


def _load(api, project, data: bytes, **fields):
    form = {"file": SimpleUploadedFile("saved.zip", data, content_type="application/zip"), **fields}
    return api.post(f"/api/projects/{project.id}/models/", form, format="multipart")


def _labels(project, *names: str) -> dict[str, int]:
    return {name: Label.objects.create(project=project, name=name).pk for name in names}


class Unsafe:
    """Unpickling this would create the marker file: weights_only must refuse it before that."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_saved_classifier_loads_into_another_project_and_predicts_as_it_did(
    api, user, colours_project, django_capture_on_commit_callbacks, tmp_path
):
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(
            f"/api/projects/{colours_project.id}/training-jobs/",
            {"task": "classification", "name": "colours", "parameters": {"epochs": 1, "fine_tune": "head"}},
            format="json",
        )
    assert started.status_code == 201, started.content
    trained = ModelVersion.objects.get(name="colours")
    # The bundle as the model page downloads it.
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/models/{trained.id}/bundle/").status_code == 202
    bundle = api.get(f"/api/models/{trained.id}/bundle/").getvalue()
    assert sorted(Path(n).name for n in zipfile.ZipFile(io.BytesIO(bundle)).namelist())[:3] == [
        "README.md",
        "checkpoint.pt",
        "model.json",
    ]

    other = make_project(owner=user, name="Elsewhere")
    ids = _labels(other, "green", "red", "blue")  # other ids, another order: mapped by name
    models_before = ModelVersion.objects.count()

    # Refused, each with its reason; nothing is stored.
    saved = torch.load(io.BytesIO(bundles.checkpoint_bytes(model=trained, checkpoint="best")), weights_only=True)
    head = {**saved, "labels": [*saved["labels"], "green"]}  # three labels, but weights for two
    short = {**saved, "state_dict": {k: v for k, v in saved["state_dict"].items() if k != "conv_stem.weight"}}
    broken = {**saved, "state_dict": {**saved["state_dict"], "classifier.bias": torch.tensor([math.nan, 0.0])}}
    Unsafe.marker = tmp_path / "ran"
    cases = [
        (b"PK not really", "This is not a model bundle: load the ZIP that Save Trained Model downloads."),
        (
            loadable(trained, skip="checkpoint.pt"),
            "This bundle has no checkpoint.pt (bundles saved before Sightline could load models have none): save "
            "the model again from its page and load that.",
        ),
        (
            loadable(trained, saved=head),
            "The weights do not fit a tf_efficientnet_lite0 classification model with 3 labels: 2 tensors have "
            "another shape (classifier.weight is [2, 1280] in the file, [3, 1280] here).",
        ),
        (
            loadable(trained, saved=short),
            "The weights do not fit a tf_efficientnet_lite0 classification model with 2 labels: 1 missing and 0 "
            "unknown tensors (conv_stem.weight is missing).",
        ),
        (
            loadable(trained, saved=broken),
            "The tensor classifier.bias holds values that are not finite numbers (NaN or infinity).",
        ),
        (loadable(trained, saved={**saved, "backbone": "no_such_net"}), "timm has no model named 'no_such_net'."),
        (
            loadable(trained, saved={**saved, "image_size": 225}),
            "The image size must be one this server trains at: 224, 320, 416, 512, 640 px.",
        ),
        (
            loadable(trained, saved={**saved, "format": "other/1"}),
            "checkpoint.pt has the format 'other/1'; this server loads sightline-classifier/1, sightline-detector/1, sightline-segmenter/1, sightline-instances/1.",
        ),
    ]
    for data, reason in cases:
        answer = _load(api, other, data)
        assert (answer.status_code, answer.json()) == (400, {"file": [reason]})
    unsafe = _load(api, other, loadable(trained, saved={**saved, "extra": Unsafe()}))
    assert unsafe.status_code == 400
    assert unsafe.json()["file"][0].startswith("checkpoint.pt cannot be loaded safely (torch.load with weights_only): ")
    assert not Unsafe.marker.exists()
    only_red = make_project(owner=user, name="Reds")
    _labels(only_red, "red")
    answer = _load(api, only_red, bundle)
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "file": [
                "The model's labels blue are not labels of this project. Add labels with these names (Settings), or "
                "load a model trained on this project's labels."
            ]
        },
    )
    assert ModelVersion.objects.count() == models_before
    assert not default_storage.exists(f"models/{other.id}")

    # The bundle as it was downloaded loads, under the bundle's name.
    loaded = _load(api, other, bundle)
    assert loaded.status_code == 201, loaded.content
    body = loaded.json()
    assert (body["name"], body["task"], body["labels"], body["job_id"], body["dataset_version"]) == (
        "colours",
        "classification",
        trained.labels,
        None,
        None,
    )
    assert body["loaded_from"] == "saved.zip"
    model = ModelVersion.objects.get(pk=body["id"])
    assert model.loaded_label_ids == [ids[name] for name in trained.labels]
    # Loading it again takes the next free name.
    assert _load(api, other, bundle).json()["name"] == "colours (loaded)"

    # It predicts what it predicted where it was trained, with this project's labels.
    red = colour_png((220, 30, 30), 4242)
    [image] = upload(other, user, [("red.png", red)], [])
    rows = api.post(f"/api/images/{image.id}/predictions/", {"model": model.id}, format="json").json()["predictions"]
    [expected] = predictions.images_predict(model=trained, checkpoint="best", images=[red])
    assert [(r["label"], r["label_name"], r["score"]) for r in rows] == [
        (ids[p["label"]], p["label"], p["score"]) for p in expected
    ]
    named = api.post(f"/api/predict/{other.id}/colours/", {"file": SimpleUploadedFile("r.png", red)})
    assert named.json()["predictions"] == expected

    # It was not evaluated here: its page says so, and statistics and galleries are not offered.
    statistics = api.get(f"/api/models/{model.id}/statistics/")
    assert (statistics.status_code, statistics.json()["detail"]) == (
        409,
        "This model was loaded from a bundle, not trained here: it has no evaluation on this project.",
    )
    browser = Client()
    browser.force_login(user)
    page = browser.get(f"/projects/{other.id}/models/{model.id}/")
    assert page.status_code == 200
    assert "Loaded from <code>saved.zip</code>" in page.content.decode()
    gallery = browser.get(f"/projects/{other.id}/models/{model.id}/gallery/")
    assert (gallery.status_code, gallery["Location"]) == (302, f"/projects/{other.id}/models/{model.id}/")

    # What is stored is what was checked: an extra entry of the file (here a graph to run) is not kept.
    extra = _load(api, other, loadable(trained, saved={**saved, "onnx": b"a graph nobody checked"}), name="extra")
    assert extra.status_code == 201, extra.content
    kept = ModelVersion.objects.get(pk=extra.json()["id"])
    with default_storage.open(kept.best_checkpoint.name) as stored:
        assert sorted(torch.load(stored, weights_only=True)) == sorted(
            ["format", "backbone", "labels", "image_size", "multi_label", "mean", "std", "state_dict"]
        )

    # Deleting it deletes its checkpoint; a model loaded next has a file of its own (processes cache by name).
    name = model.best_checkpoint.name
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/models/{model.id}/").status_code == 204
    assert not default_storage.exists(name)
    again = ModelVersion.objects.get(pk=_load(api, other, bundle).json()["id"])
    assert again.best_checkpoint.name != name


def test_a_loaded_detector_suggests_the_boxes_it_found_where_it_was_trained(
    api, user, scenes, django_capture_on_commit_callbacks
):
    project, _, _ = scenes
    assert _train(api, project, django_capture_on_commit_callbacks, epochs=1)["status"] == "finished"
    trained = ModelVersion.objects.get(project=project, name="shapes")
    other = make_project(owner=user, name="Second site")
    ids = _labels(other, *reversed(trained.labels))
    answer = _load(api, other, loadable(trained))
    assert answer.status_code == 201, answer.content
    model = ModelVersion.objects.get(pk=answer.json()["id"])
    assert model.thresholds_for("best") == trained.thresholds_for("best")
    patched = api.patch(f"/api/models/{model.id}/", {"iou_threshold": 0.6}, format="json")
    assert (patched.status_code, patched.json()) == (
        400,
        {"iou_threshold": ["A loaded model was not evaluated here: it has no statistics to count at an IoU."]},
    )

    png, _ = scene(777, objects=(3, 5))
    [image] = images_upload(project=other, user=user, files=[SimpleUploadedFile("s.png", png)], labels=[]).stored
    url = f"/api/images/{image.id}/predictions/"
    rows = api.post(url, {"model": model.id}, format="json").json()["predictions"]
    [expected] = predictions.boxes_predict(
        model=trained, checkpoint="best", images=[png], threshold=predictions.BOX_FLOOR
    )
    assert len(expected) >= 1
    assert [(r["label"], r["score"], r["geometry"]) for r in rows] == [
        (ids[b["label"]], b["score"], {k: b[k] for k in ("x", "y", "width", "height")}) for b in expected
    ]
    # Accepted, a suggestion is an annotation of the loaded model.
    accepted = api.post(f"{url}accept/", {"revision": 0, "ids": [rows[0]["id"]]}, format="json")
    assert accepted.status_code == 200, accepted.content
    [shape] = api.get(f"/api/images/{image.id}/annotations/").json()["shapes"]
    assert (shape["label"], shape["source"], shape["model"]) == (ids[expected[0]["label"]], "prediction", model.id)
