"""Object detection end to end through the API: boxes (and polygons and masks, as their boxes) in, a trained FCOS
detector, statistics equal to COCOeval's, and boxes out of the predict endpoint."""

import contextlib
import csv
import io
import zipfile

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image as PILImage
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotations.geometry import encode_mask
from projects.files import stored_bytes
from projects.models import Label
from projects.uploads import images_upload
from tests.factories import make_project
from tests.training.conftest import bundle_answer, bundle_extract
from tests.training.scenes import KINDS, scene
from training import statistics
from training.ml import detection_metrics
from training.models import DatasetItem, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db

TINY = {"epochs": 2, "model_size": "small", "image_size": 224, "batch_size": 4, "patience_minutes": 0}


def _shape(label_id: int, box, kind: str) -> dict:
    x, y, w, h = box
    if kind == "polygon":
        points = [[x, y + h], [x + w, y + h], [x + w / 2, y]]
        return {"label": label_id, "kind": "polygon", "geometry": {"parts": [{"outer": points, "holes": []}]}}
    if kind == "mask":
        mask = np.zeros((120, 160), dtype=bool)
        mask[y : y + h, x : x + w] = True
        return {"label": label_id, "kind": "mask", "geometry": {"rle": encode_mask(mask)}}
    return {"label": label_id, "kind": "box", "geometry": {"x": x, "y": y, "width": w, "height": h}}


def annotate_scenes(api, project, user, seeds) -> dict[int, list]:
    """Upload a scene per seed and draw its objects through the API: boxes, except the first triangle of scene 3
    (a polygon) and the first square of scene 4 (a mask). Returns each image's true boxes."""
    labels = {label.name: label for label in Label.objects.filter(project=project)}
    labels.update({kind: Label.objects.create(project=project, name=kind) for kind in KINDS if kind not in labels})
    truth = {}
    for seed in seeds:
        png, boxes = scene(seed)
        image = images_upload(
            project=project, user=user, files=[SimpleUploadedFile(f"scene{seed}.png", png)], labels=[]
        ).stored[0]
        shapes = []
        for n, (x, y, w, h, kind) in enumerate(boxes):
            drawn = "polygon" if (seed, n) == (3, 0) and kind == "triangle" else "box"
            drawn = "mask" if (seed, n) == (4, 0) and kind == "square" else drawn
            shapes.append(_shape(labels[kind].id, (x, y, w, h), drawn))
        saved = api.put(f"/api/images/{image.id}/annotations/", {"revision": 0, "shapes": shapes}, format="json")
        assert saved.status_code == 200, saved.content
        truth[image.id] = boxes
    return truth


def _train(api, project, capture, **extra):
    with capture(execute=True):
        response = api.post(
            f"/api/projects/{project.id}/training-jobs/",
            {"task": "detection", "name": "shapes", "parameters": {**TINY, **extra}},
            format="json",
        )
    assert response.status_code == 201, response.content
    return api.get(f"/api/training-jobs/{response.json()['id']}/").json()


def _coco_reference(truth: list[np.ndarray], predicted: list[np.ndarray], labels: int) -> tuple[float, float]:
    """COCOeval on the same boxes, through COCO's own file and result loaders."""
    import json
    import tempfile

    annotations = [
        {"id": n + 1, "image_id": i, "category_id": int(row[4]) + 1, "bbox": list(map(float, row[:4]))}
        for n, (i, row) in enumerate((i, row) for i, rows in enumerate(truth) for row in rows)
    ]
    for a in annotations:
        a["area"], a["iscrowd"] = a["bbox"][2] * a["bbox"][3], 0
    dataset = {
        "images": [{"id": i} for i in range(len(truth))],
        "annotations": annotations,
        "categories": [{"id": c + 1} for c in range(labels)],
    }
    results = [
        {"image_id": i, "category_id": int(row[4]) + 1, "bbox": list(map(float, row[:4])), "score": float(row[5])}
        for i, rows in enumerate(predicted)
        for row in rows
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as handle, contextlib.redirect_stdout(io.StringIO()):
        json.dump(dataset, handle)
        handle.flush()
        gt = COCO(handle.name)
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


def test_a_detector_trains_through_the_api_its_statistics_are_cocoevals_and_it_predicts_boxes(
    api, user, scenes, django_capture_on_commit_callbacks
):
    project, truth, blank = scenes
    job = _train(api, project, django_capture_on_commit_callbacks)
    assert job["status"] == "finished", job["error"]
    assert [entry["epoch"] for entry in job["history"]] == [1, 2]
    assert set(job["history"][0]["losses"]) == {"classification", "bbox_regression", "bbox_ctrness"}
    assert all(0 <= entry["valid_map50"] <= 1 for entry in job["history"])
    model = ModelVersion.objects.get(name="shapes")
    assert (model.task, model.labels, model.image_size) == ("detection", ["disc", "square", "triangle"], 224)

    items = {item.image_id: item for item in DatasetItem.objects.filter(dataset_version=model.dataset_version)}
    assert items[blank.id].targets == {"boxes": []}  # labelled, no object: a negative
    for image_id, boxes in truth.items():  # every shape, the polygon and the mask too, as its box
        expected = sorted((float(x), float(y), float(w), float(h), KINDS.index(k)) for x, y, w, h, k in boxes)
        got = sorted(tuple(row) for row in items[image_id].targets["boxes"])
        assert np.allclose(got, expected, atol=1.0), (image_id, got, expected)

    for split in ("train", "valid"):
        stats = api.get(f"/api/models/{model.id}/statistics/", {"split": split}).json()
        part = statistics.boxes_load(model, "best").subset(split)
        expected_map, expected_map50 = _coco_reference(part.truth, part.predicted, 3)
        assert stats["map"] == pytest.approx(expected_map, abs=1e-6)
        assert stats["map50"] == pytest.approx(expected_map50, abs=1e-6)
        assert stats["count"] == len(part.item_ids)
        assert [row["label"] for row in stats["per_label"]] == ["disc", "square", "triangle"]
        assert sum(row["count"] for row in stats["per_label"]) == sum(len(t) for t in part.truth)
        assert len(stats["thresholds"]) == 3 and stats["iou"] == 0.5

    # Predictions: boxes in the original image's pixels, best first; the threshold and NMS can be set.
    png, _ = scene(500)
    reply = api.post(f"/api/predict/{project.id}/shapes/?threshold=0.01&nms=0.5", png, content_type="image/png")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert (body["model"], body["checkpoint"], body["task"]) == ("shapes", "best", "detection")
    assert body["predictions"], "at a threshold of 0.01 an FCOS head answers boxes"
    for box in body["predictions"]:
        assert set(box) == {"label", "score", "x", "y", "width", "height"}
        assert box["label"] in KINDS and 0.01 <= box["score"] <= 1
        assert -1 <= box["x"] and box["x"] + box["width"] <= 161 and box["y"] + box["height"] <= 121
    scores = [box["score"] for box in body["predictions"]]
    assert scores == sorted(scores, reverse=True)
    refused = api.post(f"/api/predict/{project.id}/shapes/?nms=2", png, content_type="image/png")
    assert (refused.status_code, refused.json()) == (400, {"nms": ["Give a number from 0.01 to 1."]})

    # Every predicted box has one of the model's labels (FCOS has no background output to leak).
    stored = statistics.boxes_load(model, "best")
    assert all(((rows[:, 4] >= 0) & (rows[:, 4] < 3)).all() for rows in stored.predicted)
    # The statistics count the boxes the predict endpoint answers: one inference path, batched with others or not.
    first = DatasetItem.objects.select_related("image").get(pk=int(stored.item_ids[0]))
    answer = api.post(
        f"/api/predict/{project.id}/shapes/?threshold=0.05",
        stored_bytes(first.image.file.name),
        content_type="image/png",
    ).json()["predictions"]
    expected = stored.predicted[0]
    assert len(answer) == len(expected) > 0
    assert [box["label"] for box in answer] == [KINDS[int(label)] for label in expected[:, 4]]
    got = [[box["x"], box["y"], box["width"], box["height"], box["score"]] for box in answer]
    np.testing.assert_allclose(got, expected[:, [0, 1, 2, 3, 5]], atol=0.01)
    # A new IoU threshold counts the summary and the optimised thresholds again.
    patched = api.patch(f"/api/models/{model.id}/", {"iou_threshold": 0.75}, format="json").json()
    model.refresh_from_db()
    again = statistics.detection_statistics(
        model=model, checkpoint="best", split="valid", thresholds=patched["optimized_thresholds"]["best"]
    )
    assert (patched["iou_threshold"], patched["metrics"]["best"]["valid"]["f1"]) == (0.75, again["f1"])

    # The model page: COCO's numbers, the per-label table, the thresholds and the IoU they count at.
    page = Client()
    page.force_login(user)
    html = page.get(f"/projects/{project.id}/models/{model.id}/", {"iou": "0.75"}).content.decode()
    valid = statistics.detection_statistics(model=model, checkpoint="best", split="valid", iou=0.75)
    assert f'<strong id="map50">{valid["map50"]:.4f}</strong>' in html
    assert f'<strong id="f1">{valid["f1"]:.4f}</strong>' in html
    assert '<option value="0.75" selected>' in html and 'id="thresholds-form"' in html

    # Show predictions, the API's list and the ZIP: each image's true boxes, found or missed, and its predicted boxes
    # at the thresholds, right or wrong; in all, the statistics' true and false positives and misses.
    thresholds, every = model.thresholds_for("best"), statistics.boxes_load(model, "best")
    part = every.subset("valid")
    tp, fp, fn = detection_metrics.Matched(part.truth, part.predicted, 3, 0.75).counts(thresholds)
    listed = api.get(f"/api/models/{model.id}/predictions/", {"split": "valid"}).json()["images"]
    assert len(listed) == len(part.item_ids)
    assert sum(box["correct"] for row in listed for box in row["boxes"]) == tp.sum()
    assert sum(not box["correct"] for row in listed for box in row["boxes"]) == fp.sum()
    assert sum(not box["found"] for row in listed for box in row["truth"]) == fn.sum()
    html = page.get(f"/projects/{project.id}/models/{model.id}/predictions/", {"iou": "0.75"}).content.decode()
    assert html.count('class="predicted right"') == tp.sum() and html.count('class="truth missed"') == fn.sum()
    download = api.get(f"/api/models/{model.id}/predictions/download/")
    with zipfile.ZipFile(io.BytesIO(download.getvalue())) as archive:
        lines = list(csv.reader(io.StringIO(archive.read("predictions.csv").decode())))
        images = [name for name in archive.namelist() if name.startswith("images/")]
    shown = sum(int((rows[:, 5] >= np.asarray(thresholds)[rows[:, 4].astype(int)]).sum()) for rows in every.predicted)
    assert lines[0] == ["image", "split", "box", "label", "x", "y", "width", "height", "score", "correct"]
    assert len(lines) == 1 + sum(len(rows) for rows in every.truth) + shown
    assert len(images) == len(every.item_ids)

    # The page saves an IoU threshold for everything, as the API does; one not offered is refused, changing nothing.
    assert 'id="iou-save"' in page.get(f"/projects/{project.id}/models/{model.id}/", {"iou": "0.5"}).content.decode()
    saving = f"/projects/{project.id}/models/{model.id}/thresholds/"
    refused = page.post(saving, {"iou": "0.33", "checkpoint": "best", "split": "valid"}, follow=True)
    assert "Choose an IoU threshold from the list." in refused.content.decode()
    model.refresh_from_db()
    assert model.iou_threshold == 0.75
    saved = page.post(saving, {"iou": "0.5", "checkpoint": "best", "split": "valid"}, follow=True)
    assert "IoU threshold 0.5 saved" in saved.content.decode()
    model.refresh_from_db()
    at_half = statistics.detection_statistics(
        model=model, checkpoint="best", split="valid", thresholds=model.optimized_thresholds["best"], iou=0.5
    )
    assert (model.iou_threshold, model.metrics["best"]["valid"]["f1"]) == (0.5, at_half["f1"])


def test_a_detection_job_without_boxes_or_with_a_label_on_one_image_is_refused(api, user):
    project = make_project(owner=user, name="Few")
    gull = Label.objects.create(project=project, name="gull")
    tern = Label.objects.create(project=project, name="tern")
    url = f"/api/projects/{project.id}/training-jobs/"
    refused = api.post(url, {"task": "detection", "parameters": TINY}, format="json")
    assert refused.json() == {
        "task": ["No image has a box, polygon or mask yet: draw some objects before training a detector."]
    }
    for seed, labels in enumerate([[gull, tern], [gull], [gull]]):
        png, _ = scene(seed)
        image = images_upload(project=project, user=user, files=[SimpleUploadedFile(f"{seed}.png", png)], labels=[])
        shapes = [_shape(label.id, (10 + 30 * n, 10, 20, 20), "box") for n, label in enumerate(labels)]
        put = api.put(
            f"/api/images/{image.stored[0].id}/annotations/", {"revision": 0, "shapes": shapes}, format="json"
        )
        assert put.status_code == 200
    refused = api.post(url, {"task": "detection", "parameters": TINY}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {
        "task": [
            "Label 'tern' is on only one image; a detector needs each label on at least two images, one to train on "
            "and one to validate on. Draw more, or delete the label's objects."
        ]
    }


def test_the_models_page_offers_detection_and_starts_its_job(user, scenes):
    project, _, _ = scenes
    page = Client()
    page.force_login(user)
    html = page.get(f"/projects/{project.id}/models/", {"task": "detection"}).content.decode()
    assert 'name="model_size"' in html and 'id="detection-note"' in html and 'name="kind"' not in html
    form = {"task": "detection", "name": "boxes", "epochs": "1", "model_size": "small", "image_size": "224"}
    response = page.post(f"/projects/{project.id}/models/", form)
    job = TrainingJob.objects.get(name="boxes")
    assert response.status_code == 302
    assert (job.task, job.parameters["model_size"], job.parameters["image_size"], job.epochs) == (
        "detection",
        "small",
        224,
        1,
    )


def test_a_detectors_offline_bundle_answers_the_boxes_the_server_answers(
    api, scenes, tmp_path, settings, django_capture_on_commit_callbacks
):
    """The server predicts with the job's ONNX export in ONNX Runtime, the bundle with its torch.export program: the
    same boxes."""
    settings.SIGHTLINE_DETECTOR_ONNX = True
    project, _, _ = scenes
    job = _train(api, project, django_capture_on_commit_callbacks, epochs=1)
    assert job["status"] == "finished"
    model = ModelVersion.objects.get(name="shapes")
    assert "Exported to ONNX in" in TrainingJob.objects.get(pk=job["id"]).log
    import torch

    from training.ml.detection import Detector
    from training.ml.detection_dense import OnnxDense
    from training.predictions import detector_load

    for checkpoint in ("best", "last"):
        served = detector_load(model.checkpoint_file(checkpoint).name)
        assert isinstance(served.runner, OnnxDense)
        saved = torch.load(io.BytesIO(stored_bytes(model.checkpoint_file(checkpoint).name)), weights_only=True)
        saved.pop("onnx")
        by_torch = Detector(saved)
        assert by_torch.runner is by_torch.network
        images = [scene(seed, width=320, height=240, objects=(3, 5))[0] for seed in (701, 702)]
        for onnx_rows, torch_rows in zip(
            served.predict(images, score=0.02), by_torch.predict(images, score=0.02), strict=True
        ):
            assert len(onnx_rows) > 0
            np.testing.assert_array_equal(onnx_rows[:, 4], torch_rows[:, 4])  # the labels
            np.testing.assert_allclose(onnx_rows[:, :4], torch_rows[:, :4], atol=0.01)  # pixels
            np.testing.assert_allclose(onnx_rows[:, 5], torch_rows[:, 5], atol=1e-4)  # scores
    folder = bundle_extract(api, model.id, django_capture_on_commit_callbacks, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "checkpoint.pt",
        "model.json",
        "model.pt2",
        "requirements.txt",
        "serve.py",
        "sightline_boxes.py",
        "sightline_images.py",
    ]
    import torchvision

    assert (folder / "requirements.txt").read_text().splitlines() == [
        f"torch=={torch.__version__.split('+')[0]}",
        f"torchvision=={torchvision.__version__.split('+')[0]}",
        "numpy",
        "pillow",
    ]
    assert "object detector" in (folder / "README.md").read_text()
    # A scene as a phone stores it: a JPEG lying on its side, upright by its EXIF orientation; boxes in the
    # upright pixels from both servers, at the stored thresholds and at a threshold and NMS given in the query.
    png, _ = scene(700, width=320, height=240, objects=(3, 5))
    sideways = PILImage.open(io.BytesIO(png)).transpose(PILImage.Transpose.ROTATE_90)
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to show: undoes ROTATE_90
    out = io.BytesIO()
    sideways.save(out, "JPEG", quality=95, exif=exif.tobytes())
    photo = out.getvalue()
    path = f"/api/predict/{project.id}/shapes/"
    for query in ("", "?threshold=0.02&nms=0.6"):
        online = api.post(path + query, photo, content_type="image/jpeg").json()
        status, offline = bundle_answer(folder, path + query, photo, "Serving shapes (best checkpoint)")
        assert status == 200
        assert {k: offline[k] for k in ("model", "checkpoint", "task")} == {
            "model": "shapes",
            "checkpoint": "best",
            "task": "detection",
        }
        assert [box["label"] for box in offline["predictions"]] == [box["label"] for box in online["predictions"]]
        for key in ("x", "y", "width", "height", "score"):
            np.testing.assert_allclose(
                [box[key] for box in offline["predictions"]], [box[key] for box in online["predictions"]], atol=0.02
            )
    assert len(online["predictions"]) > 0  # at 0.02, boxes to compare
    assert all(box["x"] + box["width"] <= 321 and box["y"] + box["height"] <= 241 for box in online["predictions"])
    status, refused = bundle_answer(folder, path + "?nms=2", photo, "Serving shapes")
    assert (status, refused) == (400, {"nms": ["Give a number from 0.01 to 1."]})  # as Sightline refuses it


def test_predicting_images_chosen_in_the_grid_runs_as_a_job_that_stores_their_boxes(
    api, user, scenes, django_capture_on_commit_callbacks
):
    from jobs.models import Job
    from projects.models import Image
    from training import predictions
    from training.models import Prediction

    project, truth, _ = scenes
    assert _train(api, project, django_capture_on_commit_callbacks, epochs=1)["status"] == "finished"
    model = ModelVersion.objects.get(name="shapes")
    chosen = sorted(truth)[:3]
    page = Client()
    page.force_login(user)
    url = f"/projects/{project.id}/predict/"
    with django_capture_on_commit_callbacks(execute=True):
        started = page.post(url, {"model": model.id, "predict": "1", "image": chosen})
    job = Job.objects.get(kind="prediction")
    assert (started.status_code, started["Location"]) == (302, f"{url}?job={job.id}")
    assert (job.status, job.payload) == ("finished", {"model_id": model.id, "checkpoint": "best", "image_ids": chosen})
    # What the job stored is what the predict endpoint answers at the page's lowest score, box for box.
    images = list(Image.objects.filter(pk__in=chosen).order_by("id"))
    expected = predictions.boxes_predict(
        model=model, checkpoint="best", images=[stored_bytes(i.file.name) for i in images], threshold=0.05
    )
    for image, boxes in zip(images, expected, strict=True):
        stored = Prediction.objects.filter(image=image, model_version=model).select_related("label")
        assert [(p.kind, p.label.name, p.score, p.geometry) for p in stored] == [
            ("box", b["label"], b["score"], {k: b[k] for k in ("x", "y", "width", "height")}) for b in boxes
        ]
    count = Prediction.objects.count()
    assert job.phase == f"Predicted 3 images with shapes, {count} boxes scoring at least 0.05."
    # The page shows them on each image; a poll that finds the job ended reloads the page.
    html = page.get(url, {"job": job.id}).content.decode()
    assert html.count('class="predicted-boxes"') == 3 and html.count('class="box"') == count
    assert job.phase in html
    polled = page.get(url, {"job": job.id}, headers={"HX-Request": "true"})
    assert polled["HX-Refresh"] == "true"
    # Predicting again replaces the model's predictions on those images; an image deleted after it was chosen is
    # left out; another project's job is not found.
    before = set(Prediction.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        page.post(url, {"model": model.id, "predict": "1", "image": chosen})
    gone = images[2]
    gone.delete()
    with django_capture_on_commit_callbacks(execute=True):  # the queued job runs now, and what it queues
        for callback in queued:
            callback()
    again = Job.objects.filter(kind="prediction").latest("id")
    assert (again.status, again.phase.split(",")[0]) == ("finished", "Predicted 2 images with shapes")
    kept = Prediction.objects.all()
    assert not before & set(kept.values_list("pk", flat=True))
    assert sorted(set(kept.values_list("image_id", flat=True))) == chosen[:2]
    assert kept.count() == sum(len(boxes) for boxes in expected[:2])
    # Deleting the model cancels its queued prediction job, and takes its predictions with it.
    with django_capture_on_commit_callbacks(execute=False):
        page.post(url, {"model": model.id, "predict": "1", "image": chosen[:1]})
    queued_job = Job.objects.filter(kind="prediction").latest("id")
    assert page.post(f"/projects/{project.id}/models/{model.id}/delete/").status_code == 302
    queued_job.refresh_from_db()
    assert (queued_job.status, Prediction.objects.count()) == ("cancelled", 0)
    assert "has been deleted" in page.get(url, {"job": job.id}).content.decode()
    other = make_project(owner=user, name="Other")
    assert page.get(f"/projects/{other.id}/predict/", {"job": job.id}).status_code == 404
    assert page.get(url, {"job": "x"}).status_code == 404
