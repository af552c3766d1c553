"""Instance segmentation: mask mAP and matching equal to COCOeval's `segm` on fixed masks (holes, touching, empty
images), and a tiny model trained end to end through the API whose answers carry masks and polygons that
rasterize back to them."""

import contextlib
import io
import json
import re
import zipfile

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotations.geometry import decode_mask, encode_mask, rasterize
from annotations.models import Annotation
from projects.files import stored_bytes
from tests.training.conftest import bundle_answer, bundle_extract, bundle_loaded
from tests.training.scenes import ring_scene
from training import galleries, statistics
from training.ml import detection_metrics
from training.ml.instances import truth_instances
from training.models import DatasetItem, ModelVersion, Prediction

TINY = {"epochs": 2, "model_size": "small", "image_size": 224, "batch_size": 4, "patience_minutes": 0}
HEIGHT, WIDTH = 40, 50


def _mask(*boxes, holes=()) -> np.ndarray:
    out = np.zeros((HEIGHT, WIDTH), bool)
    for x, y, w, h in boxes:
        out[y : y + h, x : x + w] = True
    for x, y, w, h in holes:
        out[y : y + h, x : x + w] = False
    return out


def _world(seed: int):
    """Per image: true masks with labels, and predicted masks with labels and scores. Image 0 has no truth and a
    false alarm, image 1 truth and no prediction; the rest have holed and touching objects, found shifted or
    eroded, some twice, some with the wrong label, and false alarms."""
    rng = np.random.default_rng(seed)
    truth, predicted = [], []
    truth.append([])
    predicted.append([(_mask((5, 5, 10, 10)), 0, 0.9)])
    truth.append([(_mask((10, 10, 12, 12)), 1)])
    predicted.append([])
    for _ in range(6):
        objects = []
        for _ in range(int(rng.integers(1, 5))):
            x, y = int(rng.integers(0, 35)), int(rng.integers(0, 25))
            w, h = int(rng.integers(4, 15)), int(rng.integers(4, 15))
            holes = [(x + w // 3, y + h // 3, max(1, w // 3), max(1, h // 3))] if rng.random() < 0.5 else []
            objects.append((_mask((x, y, w, h), holes=holes), int(rng.integers(0, 3))))
        if len(objects) > 1:  # two that touch: the second starts where the first ends
            first = np.argwhere(objects[0][0])
            y0, x1 = first[:, 0].min(), first[:, 1].max() + 1
            objects[1] = (_mask((min(x1, WIDTH - 4), int(y0), 4, 6)), objects[1][1])
        truth.append(objects)
        guesses = []
        for mask, label in objects:
            if rng.random() < 0.85:
                shift = rng.integers(-2, 3, 2)
                moved = np.roll(mask, tuple(int(v) for v in shift), axis=(0, 1))
                guessed = label if rng.random() < 0.9 else (label + 1) % 3
                guesses.append((moved, guessed, float(rng.uniform(0.05, 1))))
                if rng.random() < 0.25:
                    guesses.append((mask & np.roll(mask, 1, axis=0), guessed, float(rng.uniform(0.05, 1))))
        for _ in range(int(rng.integers(0, 3))):
            x, y = int(rng.integers(0, 40)), int(rng.integers(0, 30))
            guesses.append((_mask((x, y, 8, 8)), int(rng.integers(0, 3)), float(rng.uniform(0.05, 0.6))))
        predicted.append(guesses)
    return truth, predicted


def _rows(truth, predicted):
    """Our inputs: rows and RLEs per image."""
    truth_rows, truth_masks, rows, masks = [], [], [], []
    for objects, guesses in zip(truth, predicted, strict=True):
        rles = [encode_mask(m) for m, _ in objects]
        truth_rows.append(
            np.array([[*coco_mask.toBbox(r), label] for r, (_, label) in zip(rles, objects, strict=True)]).reshape(
                -1, 5
            )
        )
        truth_masks.append(rles)
        found = [encode_mask(m) for m, _, _ in guesses]
        rows.append(
            np.array(
                [[*coco_mask.toBbox(r), label, score] for r, (_, label, score) in zip(found, guesses, strict=True)]
            ).reshape(-1, 6)
        )
        masks.append(found)
    return truth_rows, truth_masks, rows, masks


def _cocoeval(truth, predicted) -> COCOeval:
    """COCOeval's own `segm` evaluation, the masks given as COCO RLE."""
    annotations, results = [], []
    for image, objects in enumerate(truth):
        for mask, label in objects:
            rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image,
                    "category_id": label + 1,
                    "segmentation": rle,
                    "area": float(coco_mask.area(rle)),
                    "bbox": list(coco_mask.toBbox(rle)),
                    "iscrowd": 0,
                }
            )
    for image, guesses in enumerate(predicted):
        for mask, label, score in guesses:
            rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
            results.append({"image_id": image, "category_id": label + 1, "segmentation": rle, "score": score})
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i, "height": HEIGHT, "width": WIDTH} for i in range(len(truth))],
        "annotations": annotations,
        "categories": [{"id": c + 1} for c in range(3)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


@pytest.mark.parametrize("seed", [3, 8, 21])
def test_mask_map_and_matching_are_cocoevals_segm(seed):
    truth, predicted = _world(seed)
    truth_rows, truth_masks, rows, masks = _rows(truth, predicted)
    reference = _cocoeval(truth, predicted)
    ours = detection_metrics.coco_map(truth_rows, rows, 3, masks=(truth_masks, masks))
    assert ours["map"] == pytest.approx(reference.stats[0], abs=1e-6)
    assert ours["map50"] == pytest.approx(reference.stats[1], abs=1e-6)
    assert 0 < ours["map50"] < 1
    boxes_only = detection_metrics.coco_map(truth_rows, rows, 3)
    assert boxes_only["map"] != pytest.approx(ours["map"], abs=1e-3)  # holes count: masks are not their boxes

    for iou in (0.5, 0.75):  # each prediction hits the truth COCOeval's dtMatches says, by mask IoU
        t = int(np.flatnonzero(np.isclose(reference.params.iouThrs, iou))[0])
        expected = np.zeros(sum(len(r) for r in rows), dtype=np.int64)
        for entry in reference.evalImgs:
            if entry is not None and entry["aRng"] == [0, 1e10]:
                for dt_id, gt_id in zip(entry["dtIds"], entry["dtMatches"][t], strict=True):
                    expected[dt_id - 1] = int(gt_id)
        matched = detection_metrics.Matched(truth_rows, rows, 3, iou, (truth_masks, masks))
        first_truth_id = np.cumsum([0] + [len(r) for r in truth_rows])
        found = np.where(matched.hits, first_truth_id[matched.images] + matched.targets + 1, 0)
        assert found.tolist() == expected.tolist()
        assert 0 < matched.hits.sum() < len(matched.hits)


def test_mask_ious_are_pixel_counts():
    ring = _mask((0, 0, 10, 10), holes=[(3, 3, 4, 4)])  # 100 - 16 = 84 pixels
    square = _mask((0, 0, 10, 10))
    beside = _mask((10, 0, 5, 10))  # touching, not overlapping
    ious = detection_metrics.mask_ious([encode_mask(ring), encode_mask(beside)], [encode_mask(square)])
    assert ious.tolist() == [[pytest.approx(84 / 100)], [0.0]]
    assert detection_metrics.mask_ious([], [encode_mask(square)]).shape == (0, 1)


def test_truth_instances_skip_a_shape_with_no_pixel():
    _, outer, inner, (x, y, side) = ring_scene(3)
    ring = {"parts": [{"outer": outer, "holes": [inner]}]}
    speck = {"parts": [{"outer": [[10.1, 10.1], [10.6, 10.1], [10.1, 10.6]], "holes": []}]}
    square = np.zeros((120, 160), bool)
    square[y : y + side, x : x + side] = True
    shapes = [(0, "polygon", ring), (0, "polygon", speck), (1, "mask", {"rle": encode_mask(square)})]
    rows, masks, kept = truth_instances(shapes, 120, 160)
    assert kept == [0, 2]
    assert masks[0] == rasterize("polygon", ring, width=160, height=120)["rle"]
    assert decode_mask(masks[1]).sum() == side * side
    assert rows[1].tolist() == [x, y, side, side, 1]


def _trained(api, project, capture):
    """Train an instance model "objects" at tiny sizes through the API; the job runs when the request commits."""
    with capture(execute=True):
        response = api.post(
            f"/api/projects/{project.id}/training-jobs/",
            {"task": "instance-segmentation", "name": "objects", "parameters": TINY},
            format="json",
        )
    assert response.status_code == 201, response.content
    return response


@pytest.mark.django_db
def test_an_instance_segmentation_model_trains_through_the_api_and_predicts_masks_and_polygons(
    api, user, rings, django_capture_on_commit_callbacks
):
    project, blank = rings
    ring_label = project.labels.get(name="ring")
    speck = {"parts": [{"outer": [[10.1, 10.1], [10.6, 10.1], [10.1, 10.6]], "holes": []}]}
    first = Annotation.objects.filter(image__project=project, kind="polygon").order_by("image_id").first()
    document = api.get(f"/api/images/{first.image_id}/annotations/").json()
    shapes = [{"label": s["label"], "kind": s["kind"], "geometry": s["geometry"]} for s in document["shapes"]]
    shapes.append({"label": ring_label.id, "kind": "polygon", "geometry": speck})  # covers no pixel
    saved = api.put(
        f"/api/images/{first.image_id}/annotations/",
        {"revision": document["revision"], "shapes": shapes},
        format="json",
    )
    assert saved.status_code == 200, saved.content
    response = _trained(api, project, django_capture_on_commit_callbacks)
    job = api.get(f"/api/training-jobs/{response.json()['id']}/").json()
    assert job["status"] == "finished", job["error"]
    assert [entry["epoch"] for entry in job["history"]] == [1, 2]
    assert "1 empty instance(s) (no pixel in their image) were skipped." in job["log"]
    model = ModelVersion.objects.get(name="objects")
    assert (model.task, model.labels, model.image_size) == ("instance-segmentation", ["ring", "square"], 224)
    items = {item.image_id: item for item in DatasetItem.objects.filter(dataset_version=model.dataset_version)}
    assert items[first.image_id].targets["size"] == [120, 160]
    assert items[blank.id].targets == {"shapes": []}

    # Statistics: mask mAP is COCOeval's over the stored masks, and the last epoch's validation is the last model's.
    for split in ("train", "valid"):
        stats = api.get(f"/api/models/{model.id}/statistics/", {"split": split}).json()
        part = statistics.boxes_load(model, "best").subset(split)
        assert stats["count"] == len(part.item_ids) > 0
        expected = detection_metrics.coco_map(part.truth, part.predicted, 2, part.masks)
        assert (stats["map"], stats["map50"]) == (
            pytest.approx(expected["map"], abs=1e-12),
            pytest.approx(expected["map50"], abs=1e-12),
        )
        assert sum(row["count"] for row in stats["per_label"]) == sum(len(rows) for rows in part.truth)
        assert len(stats["pr_curves"]["labels"]) == 2
    last = api.get(f"/api/models/{model.id}/statistics/", {"checkpoint": "last"}).json()
    assert last["map50"] == pytest.approx(job["history"][-1]["valid_map50"], abs=1e-9)
    # A ring's truth is its polygon with its hole, rasterized at the image's size.
    part = statistics.boxes_load(model, "best")
    position = part.item_ids.tolist().index(items[first.image_id].pk)
    assert part.masks[0][position][0] == rasterize("polygon", first.geometry, width=160, height=120)["rle"]
    assert len(part.masks[0][position]) == 2  # the speck is not an instance

    # The predict endpoint: instances with label, score, box, area, RLE, and polygons that rasterize back to it.
    png, *_ = ring_scene(500)
    reply = api.post(
        f"/api/predict/{project.id}/objects/", png, content_type="image/png", QUERY_STRING="threshold=0.05"
    )
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert (body["model"], body["task"]) == ("objects", "instance-segmentation")
    assert body["predictions"], "a model two epochs old finds something at a score of 0.05"
    for answer in body["predictions"]:
        assert set(answer) == {"label", "score", "box", "area", "rle", "polygons"}
        assert answer["label"] in ("ring", "square") and 0.05 <= answer["score"] <= 1
        mask = decode_mask(answer["rle"])
        assert answer["rle"]["size"] == [120, 160] and answer["area"] == int(mask.sum()) > 0
        traced = decode_mask(rasterize("polygon", answer["polygons"], width=160, height=120)["rle"])
        assert np.array_equal(traced, mask)  # exactly: IoU 1, beyond the 0.98 asked for
    scores = [answer["score"] for answer in body["predictions"]]
    assert scores == sorted(scores, reverse=True)

    # Galleries match by mask IoU: Matched and Missing split the predictions above the threshold.
    page = Client()
    page.force_login(user)
    valid = statistics.boxes_load(model, "best").subset("valid")
    threshold = model.thresholds_for("best")[0]
    matched = detection_metrics.Matched(valid.truth, valid.predicted, 2, model.iou_threshold, valid.masks)
    above = (matched.rows[:, 4] == 0) & (matched.rows[:, 5] >= threshold)
    for tab, count in (("matched", int((above & matched.hits).sum())), ("missing", int((above & ~matched.hits).sum()))):
        found = galleries.gallery(model=model, checkpoint="best", split="valid", tab=tab, label=0)
        assert len(found["items"]) == count, tab
    # Each tile carries its own object's mask: a prediction's is its row's, a missed object's its truth's.
    image_of = dict(DatasetItem.objects.filter(pk__in=valid.item_ids.tolist()).values_list("id", "image_id"))
    position = {image_of[pk]: i for i, pk in enumerate(valid.item_ids.tolist())}
    for item in galleries.gallery(model=model, checkpoint="best", split="valid", tab="all", label=0)["items"]:
        image = position[item.image_id]
        [row] = np.flatnonzero(
            np.isclose(valid.predicted[image][:, 5], item.score) & (valid.predicted[image][:, 4] == 0)
        )
        assert item.mask == valid.masks[1][image][row] and item.right is not None
    for item in galleries.gallery(model=model, checkpoint="best", split="valid", tab="extra", label=0)["items"]:
        image = position[item.image_id]
        [row] = np.flatnonzero(np.isclose(valid.truth[image][:, :4], item.box).all(axis=1))
        assert item.mask == valid.masks[0][image][row] and item.right is None
    upload = SimpleUploadedFile("new.png", png, content_type="image/png")
    shown = page.post(f"/projects/{project.id}/predict/", {"model": model.id, "predict": "1", "file": upload})
    html = shown.content.decode()  # the objects the endpoint answers at 0.05, the slider's floor, each drawn
    assert "Masks found by objects" in html and html.count('class="mask-picture"') == len(body["predictions"])
    html = page.get(f"/projects/{project.id}/models/{model.id}/").content.decode()
    assert 'id="bundle"' in html and "objects (train / valid)" in html
    assert "instance segmentation" in html and "mask mAP@0.5" in html and "Precision-recall: all labels" in html
    html = page.get(f"/projects/{project.id}/models/{model.id}/gallery/", {"tab": "all", "label": 0}).content.decode()
    assert "between the predicted mask and a true one" in html
    assert html.count('class="mask-picture"') == len(re.findall(r'class="tile-name"', html))  # each mask drawn
    assert len(re.findall(r'class="tile-name"', html)) == len(
        galleries.gallery(model=model, checkpoint="best", split="valid", tab="all", label=0)["items"][
            : galleries.PAGE_SIZE
        ]
    )

    # The predictions ZIP carries every object's mask: each true one's, and each prediction's at the thresholds.
    download = api.get(f"/api/models/{model.id}/predictions/download/")
    with zipfile.ZipFile(io.BytesIO(download.getvalue())) as archive:
        listed = json.loads(archive.read("predictions.json"))["images"]
    every = statistics.boxes_load(model, "best")
    position = {pk: i for i, pk in enumerate(every.item_ids.tolist())}
    limits = np.asarray(model.thresholds_for("best"))
    assert sorted(row["item"] for row in listed) == sorted(position)
    for row in listed:
        i = position[row["item"]]
        assert [box["rle"] for box in row["truth"]] == every.masks[0][i]
        kept = every.predicted[i][:, 5] >= limits[every.predicted[i][:, 4].astype(int)]
        assert [box["rle"] for box in row["boxes"]] == [m for m, k in zip(every.masks[1][i], kept, strict=True) if k]

    # Model Assist stores the instances as mask predictions, the ones the endpoint answers at 0.05.
    stored = api.post(f"/api/images/{blank.id}/predictions/", {"model": model.id}, format="json")
    assert stored.status_code == 200, stored.content
    direct = api.post(
        f"/api/predict/{project.id}/objects/",
        stored_bytes(blank.file.name),
        content_type="image/png",
        QUERY_STRING="threshold=0.05",
    ).json()["predictions"]
    rows = Prediction.objects.filter(image=blank, model_version=model)
    assert sorted((r.kind, r.label.name, r.geometry["rle"]["counts"], round(r.score, 6)) for r in rows) == sorted(
        ("mask", d["label"], d["rle"]["counts"], d["score"]) for d in direct
    )


def test_masks_are_pasted_as_torchvisions_paste_masks_in_image():
    """Pasting within the box only gives torchvision's pixels, for boxes inside the image and across its edges; a
    box wholly outside keeps nothing (torchvision's paste cannot take one)."""
    import torch
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    from training.ml.instance_masks import MASK_THRESHOLD, pasted
    from training.ml.instances import rle_encode

    rng = np.random.default_rng(5)
    for _ in range(60):
        probability = torch.rand(28, 28)
        x, y = rng.uniform(-30, 150), rng.uniform(-30, 110)
        box = np.array([x, y, x + rng.uniform(35, 90), y + rng.uniform(35, 70)], np.float32)
        full = paste_masks_in_image(probability[None, None], torch.from_numpy(box[None]), (120, 160))[0, 0]
        expected = (full >= MASK_THRESHOLD).numpy()
        assert expected.any() and pasted(probability, box, 120, 160) == rle_encode(expected)
    assert pasted(torch.ones(28, 28), np.array([170, 10, 200, 40], np.float32), 120, 160) is None


@pytest.mark.django_db
def test_an_instance_models_bundle_answers_the_servers_objects_and_loads_into_another_project(
    api, user, rings, tmp_path, django_capture_on_commit_callbacks
):
    project, _ = rings
    _trained(api, project, django_capture_on_commit_callbacks)
    model = ModelVersion.objects.get(name="objects")
    png, *_ = ring_scene(600)
    path = f"/api/predict/{project.id}/objects/"
    served = api.post(path, png, content_type="image/png", QUERY_STRING="threshold=0.05").json()["predictions"]
    assert served, "a model two epochs old finds something at a score of 0.05"

    folder = bundle_extract(api, model.id, django_capture_on_commit_callbacks, tmp_path)
    shipped = {path.name for path in folder.iterdir()}
    assert {"model.pt2", "masks.pt2", "checkpoint.pt", "serve.py", "sightline_instances.py"} <= shipped
    assert {"sightline_boxes.py", "sightline_masks.py", "sightline_geometry.py", "sightline_images.py"} <= shipped
    assert "from training" not in (folder / "sightline_instances.py").read_text()  # it imports its neighbours only
    requirements = (folder / "requirements.txt").read_text().split()
    assert {"pycocotools", "opencv-python-headless", "shapely"} <= set(requirements)
    status, offline = bundle_answer(folder, f"{path}?threshold=0.05", png, "Serving objects")
    assert status == 200 and offline["task"] == "instance-segmentation"
    # The exported programs compute in another order than eager torch: the same objects, numbers within rounding.
    assert [m["label"] for m in offline["predictions"]] == [m["label"] for m in served]
    for ours, theirs in zip(offline["predictions"], served, strict=True):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)
        corners = ("x", "y", "width", "height")
        assert [ours["box"][k] for k in corners] == pytest.approx([theirs["box"][k] for k in corners], abs=0.05)
        mine, server = decode_mask(ours["rle"]), decode_mask(theirs["rle"])
        assert (mine & server).sum() / (mine | server).sum() >= 0.99
        assert ours["area"] == int(mine.sum())
        traced = decode_mask(rasterize("polygon", ours["polygons"], width=160, height=120)["rle"])
        assert np.array_equal(traced, mine)

    # Load Existing Model: the same ZIP in a project whose labels come in another order answers the same objects.
    other, loaded = bundle_loaded(api, folder, user, ["square", "ring"])
    assert loaded.status_code == 201, loaded.content
    assert (loaded.json()["task"], loaded.json()["name"]) == ("instance-segmentation", "objects")
    again = api.post(
        f"/api/predict/{other.id}/objects/", png, content_type="image/png", QUERY_STRING="threshold=0.05"
    ).json()
    assert again["predictions"] == served
