"""A trained model's statistics, predictions, downloads and offline bundle, checked against each other."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
import torch
from django.test import Client
from PIL import Image as PILImage

from jobs.models import Job
from tests.factories import make_project
from tests.training.conftest import FAST, bundle_answer, colour_png, shapes_png, upload
from training.models import ModelVersion

pytestmark = pytest.mark.django_db
KINDS = ["bar", "disc", "square"]


def train(api, project, capture, **body):
    with capture(execute=True):
        response = api.post(
            f"/api/projects/{project.id}/training-jobs/", {"task": "classification", **body}, format="json"
        )
    assert response.status_code == 201, response.content
    job = api.get(f"/api/training-jobs/{response.json()['id']}/").json()
    assert job["status"] == "finished", job["error"]
    return api.get(f"/api/models/{job['model_id']}/").json()


@pytest.fixture
def scenes_model(api, user, django_capture_on_commit_callbacks):
    """A multi-label model on 48 generated scenes (each of 8 label sets, 6 times)."""
    project = make_project(owner=user, name="Scenes")
    for mask in range(8):
        chosen = [k for bit, k in enumerate(KINDS) if mask >> bit & 1]
        files = [(f"scene{mask}-{i}.png", shapes_png(set(chosen), mask * 10 + i)) for i in range(6)]
        upload(project, user, files, chosen)
    model = train(api, project, django_capture_on_commit_callbacks, multi_label=True, name="scenes", parameters=FAST)
    return project, model


def test_multi_label_statistics_agree_with_the_predictions_at_any_threshold(api, scenes_model):
    project, model = scenes_model
    assert (model["multi_label"], model["labels"]) == (True, KINDS)
    assert [len(model["optimized_thresholds"][c]) for c in ("best", "last")] == [3, 3]
    assert model["thresholds"] == model["optimized_thresholds"]
    for thresholds in ("0.5", "0.2,0.5,0.8"):
        stats = api.get(f"/api/models/{model['id']}/statistics/", {"split": "valid", "thresholds": thresholds}).json()
        rows = api.get(
            f"/api/models/{model['id']}/predictions/", {"split": "valid", "thresholds": thresholds, "advanced": "1"}
        ).json()["images"]
        right = [p["correct"] for row in rows for p in row["predictions"]]
        assert (
            stats["count"] == len(rows) == 8
        )  # 20% of the 24 with a bar, 12 with a disc first, 6 squares alone: 5 + 2 + 1
        assert stats["label_accuracy"] == pytest.approx(sum(right) / len(right))
        assert stats["image_accuracy"] == pytest.approx(sum(row["correct"] for row in rows) / len(rows))
        expected = [0.5, 0.5, 0.5] if thresholds == "0.5" else [0.2, 0.5, 0.8]
        assert stats["thresholds"] == expected
    assert (set(stats["pr_curves"]), len(stats["pr_curves"]["labels"])) == ({"all", "labels"}, 3)
    assert all({"recall", "precision", "threshold"} == set(p) for p in stats["pr_curves"]["all"])


def test_thresholds_a_person_sets_are_used_by_statistics_and_predictions(api, user, scenes_model):
    project, model = scenes_model
    page = Client()
    page.force_login(user)
    form = {"threshold": ["0.4", "0.5", "0.6"], "checkpoint": "best"}
    assert page.post(f"/projects/{project.id}/models/{model['id']}/thresholds/", form).status_code == 302
    assert api.get(f"/api/models/{model['id']}/").json()["thresholds"]["best"] == [0.4, 0.5, 0.6]
    patched = api.patch(f"/api/models/{model['id']}/", {"thresholds": {"best": [0.1, 0.2, 0.3]}}, format="json")
    assert patched.status_code == 200
    assert patched.json()["thresholds"]["best"] == [0.1, 0.2, 0.3]
    stats = api.get(f"/api/models/{model['id']}/statistics/", {"checkpoint": "best"}).json()
    assert stats["thresholds"] == [0.1, 0.2, 0.3]
    reply = api.post(f"/api/predict/{project.id}/scenes/", shapes_png({"disc"}, 4242), content_type="image/png").json()
    assert {p["label"]: p["threshold"] for p in reply["predictions"]} == {"bar": 0.1, "disc": 0.2, "square": 0.3}
    assert all(p["positive"] == (p["score"] >= p["threshold"]) for p in reply["predictions"])
    bad = api.patch(f"/api/models/{model['id']}/", {"thresholds": {"best": [0.1, 2]}}, format="json")
    assert bad.status_code == 400
    assert bad.json() == {"thresholds": ["Give 3 numbers from 0 to 1, one per label."]}
    reset = api.patch(f"/api/models/{model['id']}/", {"thresholds": {"best": None}}, format="json").json()
    assert reset["thresholds"]["best"] == reset["optimized_thresholds"]["best"]


def test_single_label_statistics_predictions_and_the_checkpoint_that_predicts(
    api, colours_project, django_capture_on_commit_callbacks
):
    model = train(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    stats = api.get(f"/api/models/{model['id']}/statistics/", {"split": "train", "checkpoint": "last"}).json()
    assert stats["count"] == 20
    assert sum(map(sum, stats["confusion"])) == 20
    assert stats["accuracy"] == pytest.approx(sum(stats["confusion"][i][i] for i in range(2)) / 20)
    assert [entry["epoch"] for entry in stats["history"]] == [1, 2, 3]
    rows = api.get(f"/api/models/{model['id']}/predictions/", {"split": "valid"}).json()
    assert rows["count"] == 4
    for row in rows["images"]:
        assert len(row["predictions"]) == 1  # basic view: the predicted label only
        assert row["correct"] == (row["predictions"][0]["label"] == row["truth"][0])
    switched = api.patch(f"/api/models/{model['id']}/", {"predict_with": "last"}, format="json").json()
    assert switched["predict_with"] == "last"
    reply = api.post(
        f"/api/predict/{colours_project.id}/colours/", colour_png((220, 30, 30), 7), content_type="image/png"
    )
    assert reply.json()["checkpoint"] == "last"
    refused = api.patch(f"/api/models/{model['id']}/", {"thresholds": {"best": [0.5, 0.5]}}, format="json")
    assert refused.json() == {"thresholds": ["Single-label models have no score thresholds."]}


def test_download_predictions_holds_images_truth_and_scores(api, colours_project, django_capture_on_commit_callbacks):
    model = train(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    response = api.get(f"/api/models/{model['id']}/predictions/download/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="colours-best-predictions.zip"'
    archive = zipfile.ZipFile(
        io.BytesIO(b"".join(response.streaming_content) if response.streaming else response.content)
    )
    names = archive.namelist()
    assert len([n for n in names if n.startswith("images/train/")]) == 20
    assert len([n for n in names if n.startswith("images/valid/")]) == 4
    lines = archive.read("predictions.csv").decode().splitlines()
    assert lines[0] == "image,split,ground_truth,predicted,correct,blue,red"
    assert len(lines) == 25
    data = json.loads(archive.read("predictions.json"))
    assert (data["model"], data["labels"], len(data["images"])) == ("colours", ["blue", "red"], 24)


def test_the_offline_bundle_serves_the_same_predictions(
    api, colours_project, tmp_path, django_capture_on_commit_callbacks
):
    model = train(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    url = f"/api/models/{model['id']}/bundle/"
    not_yet = api.get(url)
    assert (not_yet.status_code, not_yet.json()["status"]) == (409, "missing")  # a GET never builds it
    assert Job.objects.filter(kind="bundle").count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(url)
    assert started.status_code == 202  # built by the job, which ran when the request's transaction committed
    assert Job.objects.get(kind="bundle").status == "finished"
    assert api.post(url).json() == {"status": "ready", "download_url": f"{url}?checkpoint=best"}
    response = api.get(url)
    assert response.status_code == 200
    zipfile.ZipFile(io.BytesIO(response.getvalue())).extractall(tmp_path)
    folder = tmp_path / "colours-best"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "checkpoint.pt",
        "model.json",
        "model.onnx",
        "model.pt2",
        "requirements.txt",
        "serve.py",
        "sightline_images.py",
    ]
    # The ONNX model answers what the torch program answers.
    import onnxruntime

    side = json.loads((folder / "model.json").read_text())["image_size"]
    pixels = np.random.default_rng(0).integers(0, 256, (3, side, side, 3), dtype=np.uint8)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["pixels"]
    program = torch.export.load(str(folder / "model.pt2")).module()
    np.testing.assert_allclose(
        session.run(None, {"pixels": pixels})[0], program(torch.from_numpy(pixels)).detach().numpy(), atol=1e-5
    )
    readme = (folder / "README.md").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme  # how to serve with a CPU-only torch
    # A large phone-style JPEG, stored sideways with an EXIF orientation: both servers must decode it alike.
    photo = PILImage.fromarray(np.kron(np.array([[[30, 30, 220]]], np.uint8), np.ones((1200, 1600, 1), np.uint8)))
    out = io.BytesIO()
    exif = PILImage.Exif()
    exif[0x0112] = 6
    photo.save(out, "JPEG", quality=90, exif=exif.tobytes())
    image = out.getvalue()
    online = api.post(f"/api/predict/{colours_project.id}/colours/", image, content_type="image/png").json()

    status, offline = bundle_answer(folder, f"/api/predict/{colours_project.id}/colours/", image, "Serving colours")
    assert status == 200
    assert offline["model"] == "colours"
    assert [p["label"] for p in offline["predictions"]] == [p["label"] for p in online["predictions"]]
    np.testing.assert_allclose(
        [p["score"] for p in offline["predictions"]], [p["score"] for p in online["predictions"]], atol=1e-4
    )


def test_deleting_a_model_removes_it_and_its_files(api, colours_project, django_capture_on_commit_callbacks):
    model = train(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)
    stored = ModelVersion.objects.get()
    path = stored.best_checkpoint.path
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/models/{model['id']}/").status_code == 204
    assert ModelVersion.objects.count() == 0
    assert not os.path.exists(path)
    assert api.post(f"/api/predict/{colours_project.id}/colours/", b"x", content_type="image/png").status_code == 404
    # The name is free again.
    assert (
        train(api, colours_project, django_capture_on_commit_callbacks, name="colours", parameters=FAST)["name"]
        == "colours"
    )
