"""Semantic segmentation end to end through the API: polygons with holes and masks in, a trained model, statistics
equal to a plain numpy reference and scikit-learn's confusion matrix, and one mask per label out of the predict
endpoint."""

import io
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image as PILImage
from PIL import ImageOps
from pycocotools import mask as coco_mask
from sklearn.metrics import confusion_matrix

from annotations.geometry import decode_mask, encode_mask, rasterize
from annotations.models import Annotation, ImageStatus
from projects.files import stored_bytes
from projects.models import Label
from projects.uploads import images_upload
from tests.factories import make_project
from tests.training.conftest import bundle_answer, bundle_extract, bundle_loaded
from tests.training.scenes import ring_scene
from training import statistics
from training.ml.segmentation import label_map
from training.ml.segmentation_metrics import IGNORE, confusion, scores
from training.models import DatasetItem, ModelVersion, Prediction, TrainingJob
from training.services import datasets

TINY = {"epochs": 2, "image_size": 224, "batch_size": 4, "patience_minutes": 0}


def _reference_iou(truth: np.ndarray, predicted: np.ndarray, classes: int) -> list[float | None]:
    """IoU per class the plain way: masks, intersections and unions, the ignored pixels left out."""
    counted = truth != IGNORE
    out = []
    for c in range(classes):
        true, guessed = (truth == c) & counted, (predicted == c) & counted
        union = (true | guessed).sum()
        out.append(float((true & guessed).sum() / union) if union else None)
    return out


def test_segmentation_metrics_equal_a_plain_numpy_reference_and_scikit_learn():
    truth = np.zeros((12, 12), np.uint8)
    truth[1:8, 1:8] = 1
    truth[3:6, 3:6] = 0  # a hole in label 1
    truth[1:8, 8:11] = 2  # label 2 touching label 1
    truth[11, :] = IGNORE  # padding: never counted
    predicted = np.zeros((12, 12), np.uint8)
    predicted[2:9, 1:8] = 1  # shifted down a row, the hole filled
    predicted[1:8, 7:10] = 2  # shifted left, over label 1's edge
    predicted[11, :5] = 3  # label 3 only in the ignored row: it counts nowhere
    classes = 4

    matrix = confusion(truth, predicted, classes)
    counted = truth != IGNORE
    expected_matrix = confusion_matrix(truth[counted], predicted[counted], labels=range(classes))
    assert matrix.tolist() == expected_matrix.tolist()
    assert matrix.sum() == 132  # 11 rows of 12

    summary = scores(matrix, ["one", "two", "absent"])
    reference = _reference_iou(truth, predicted, classes)
    assert reference[3] is None  # neither true nor predicted: no IoU, and not in the mean
    for row, expected in zip(summary["per_class"], reference, strict=True):
        assert row["iou"] == (None if expected is None else pytest.approx(expected, abs=1e-12))
    assert [row["label"] for row in summary["per_class"]] == ["background", "one", "two", "absent"]
    assert [row["pixels"] for row in summary["per_class"]] == [132 - 40 - 21, 40, 21, 0]
    assert summary["miou"] == pytest.approx(np.mean(reference[:3]), abs=1e-12)
    assert summary["label_miou"] == pytest.approx(np.mean(reference[1:3]), abs=1e-12)
    assert summary["pixel_accuracy"] == pytest.approx((truth == predicted)[counted].mean(), abs=1e-12)
    empty = scores(np.zeros((2, 2), np.int64), ["one"])
    assert (empty["miou"], empty["pixel_accuracy"], empty["per_class"][1]["iou"]) == (None, None, None)


def test_label_maps_are_painted_in_drawing_order_as_pycocotools_rasterizes():
    _, outer, inner, (x, y, side) = ring_scene(3)
    ring = {"parts": [{"outer": outer, "holes": [inner]}]}
    square = np.zeros((120, 160), bool)
    square[y : y + side, x : x + side] = True
    painted = label_map([(0, "polygon", ring), (1, "mask", {"rle": encode_mask(square)})], 1.0, 120, 160)

    expected = np.zeros((120, 160), np.uint8)
    expected[decode_mask(rasterize("polygon", ring, width=160, height=120)["rle"])] = 1
    expected[square] = 2  # drawn later: on top
    assert (painted == expected).all()
    assert (painted == 1).sum() > 0 and (painted == 2).sum() == side * side

    half = label_map([(0, "polygon", ring)], 0.5, 60, 80)  # at half the size: the polygon scaled, then rasterized
    scaled = {"parts": [{"outer": [[a / 2, b / 2] for a, b in outer], "holes": [[[a / 2, b / 2] for a, b in inner]]}]}
    assert (half == decode_mask(rasterize("polygon", scaled, width=80, height=60)["rle"])).all()


@pytest.mark.django_db
def test_a_semantic_segmentation_model_trains_through_the_api_and_predicts_masks(
    api, user, rings, django_capture_on_commit_callbacks
):
    project, blank = rings
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/projects/{project.id}/training-jobs/",
            {"task": "semantic-segmentation", "name": "rings", "parameters": TINY},
            format="json",
        )
    assert response.status_code == 201, response.content
    job = api.get(f"/api/training-jobs/{response.json()['id']}/").json()
    assert job["status"] == "finished", job["error"]
    assert [entry["epoch"] for entry in job["history"]] == [1, 2]
    model = ModelVersion.objects.get(name="rings")
    assert (model.task, model.labels, model.image_size) == ("semantic-segmentation", ["ring", "square"], 224)

    items = {item.image_id: item for item in DatasetItem.objects.filter(dataset_version=model.dataset_version)}
    assert len(items) == 13 and items[blank.id].targets == {"shapes": []}  # labelled, no shape: all background
    first = Annotation.objects.filter(image__project=project, kind="polygon").order_by("image_id").first()
    assert items[first.image_id].targets["shapes"][0] == [0, "polygon", first.geometry]
    assert (
        model.dataset_version.counts["labels"]["ring"]["train"]
        + model.dataset_version.counts["labels"]["ring"]["valid"]
        == 12
    )

    for split in ("train", "valid"):
        stats = api.get(f"/api/models/{model.id}/statistics/", {"split": split}).json()
        item_ids, pixels = statistics.pixels_load(model, "best", split)
        assert stats["count"] == len(item_ids) > 0
        # Every pixel of every image at the training size (160 x 120 -> 224 x 168) is true once and predicted once.
        assert pixels[:, 1].sum(axis=1).tolist() == pixels[:, 2].sum(axis=1).tolist() == [224 * 168] * len(item_ids)
        matrix = np.array(stats["confusion"])
        assert np.diag(matrix).tolist() == pixels[:, 0].sum(axis=0).tolist()  # right, per class
        assert matrix.sum(axis=1).tolist() == pixels[:, 1].sum(axis=0).tolist()  # true
        assert matrix.sum(axis=0).tolist() == pixels[:, 2].sum(axis=0).tolist()  # predicted
        expected = scores(matrix, ["ring", "square"])
        assert stats["miou"] == pytest.approx(expected["miou"], abs=1e-12)
        assert stats["pixel_accuracy"] == pytest.approx(np.trace(matrix) / (len(item_ids) * 224 * 168), abs=1e-12)
        assert [row["label"] for row in stats["per_class"]] == ["background", "ring", "square"]
    # The last epoch's validation, counted while training, is the last model's validation statistics.
    last = api.get(f"/api/models/{model.id}/statistics/", {"checkpoint": "last"}).json()
    assert last["miou"] == pytest.approx(job["history"][-1]["valid_miou"], abs=1e-9)
    assert last["pixel_accuracy"] == pytest.approx(job["history"][-1]["valid_pixel_accuracy"], abs=1e-9)
    assert model.metrics["best"]["valid"]["miou"] == pytest.approx(
        api.get(f"/api/models/{model.id}/statistics/").json()["miou"], abs=1e-12
    )

    # The predict endpoint: one mask per label found, as COCO RLE at the original size, its area and box agreeing.
    png, *_ = ring_scene(500)
    reply = api.post(f"/api/predict/{project.id}/rings/", png, content_type="image/png")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert (body["model"], body["checkpoint"], body["task"]) == ("rings", "best", "semantic-segmentation")
    assert body["predictions"], "a model two epochs old still gives some pixels a label"
    covered = np.zeros((120, 160), int)
    for answer in body["predictions"]:
        assert set(answer) == {"label", "score", "area", "box", "rle"}
        assert answer["label"] in ("ring", "square") and 0 < answer["score"] <= 1
        assert answer["rle"]["size"] == [120, 160]
        mask = decode_mask(answer["rle"])
        assert answer["area"] == int(mask.sum()) > 0
        x, y, w, h = coco_mask.toBbox({"size": [120, 160], "counts": answer["rle"]["counts"].encode()})
        assert answer["box"] == {"x": x, "y": y, "width": w, "height": h}
        covered += mask
    assert covered.max() == 1  # one label per pixel
    scores_ = [answer["score"] for answer in body["predictions"]]
    assert scores_ == sorted(scores_, reverse=True)

    # The model page draws its statistics and offers its bundle; the per-image lists say why they are not there.
    page = Client()
    page.force_login(user)
    html = page.get(f"/projects/{project.id}/models/{model.id}/").content.decode()
    assert 'id="miou"' in html and 'id="confusion"' in html and "over pixels" in html
    assert 'id="show-predictions"' not in html and 'id="gallery-link"' in html and 'id="bundle"' in html

    # The gallery's tabs hold the images that each image's own pixels of the label put there, each drawn.
    item_ids, pixels = statistics.pixels_load(model, "best", "valid")
    names = dict(DatasetItem.objects.filter(pk__in=item_ids.tolist()).values_list("id", "image_name"))
    expected = {"all": set(), "matched": set(), "missing": set(), "extra": set()}
    for item_id, (both, true, guessed) in zip(item_ids.tolist(), pixels[:, :, 1].tolist(), strict=True):
        union = true + guessed - both
        if not union:
            continue
        expected["all"].add(names[item_id])
        if both / union >= 0.5:
            expected["matched"].add(names[item_id])
        if both / union < 0.5 and guessed > both:  # rings predicted where there is none
            expected["missing"].add(names[item_id])
        if both / union < 0.5 and true > both:  # rings not found
            expected["extra"].add(names[item_id])
    assert expected["all"] and expected["all"] == expected["matched"] | expected["missing"] | expected["extra"]
    for tab, wanted in expected.items():
        gallery = page.get(
            f"/projects/{project.id}/models/{model.id}/gallery/", {"tab": tab, "label": 0, "split": "valid"}
        ).content.decode()
        assert set(re.findall(r'<span class="tile-name">([^<]+)</span>', gallery)) == wanted, tab
        assert gallery.count('class="mask-picture"') == len(wanted)
    upload = SimpleUploadedFile("new.png", png, content_type="image/png")
    shown = page.post(f"/projects/{project.id}/predict/", {"model": model.id, "predict": "1", "file": upload})
    html = shown.content.decode()
    assert "Masks found by rings" in html and html.count('class="mask-picture"') == len(body["predictions"])

    # Model Assist's predict stores the endpoint's masks, one prediction row per label.
    stored = api.post(f"/api/images/{blank.id}/predictions/", {"model": model.id}, format="json")
    assert stored.status_code == 200, stored.content
    direct = api.post(
        f"/api/predict/{project.id}/rings/", stored_bytes(blank.file.name), content_type="image/png"
    ).json()["predictions"]
    rows = Prediction.objects.filter(image=blank, model_version=model)
    assert {r.kind for r in rows} <= {"mask"}
    assert sorted((r.label.name, r.geometry["rle"]["counts"], round(r.score, 6)) for r in rows) == sorted(
        (d["label"], d["rle"]["counts"], d["score"]) for d in direct
    )
    refused = api.patch(f"/api/models/{model.id}/", {"thresholds": {"best": [0.5, 0.5]}}, format="json")
    assert (refused.status_code, refused.json()) == (
        400,
        {"thresholds": ["Semantic segmentation models have no score thresholds."]},
    )
    refused = api.patch(f"/api/models/{model.id}/", {"iou_threshold": 0.6}, format="json")
    assert refused.json() == {
        "iou_threshold": ["Only detection and instance segmentation models have an IoU threshold."]
    }
    listed = api.get(f"/api/models/{model.id}/predictions/")
    assert listed.status_code == 409 and listed.json()["detail"].startswith("A semantic segmentation model's")


@pytest.mark.django_db
def test_a_segmentation_models_bundle_answers_the_servers_masks_and_loads_into_another_project(
    api, user, rings, tmp_path, django_capture_on_commit_callbacks
):
    project, _ = rings
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/projects/{project.id}/training-jobs/",
            {"task": "semantic-segmentation", "name": "rings", "parameters": {**TINY, "epochs": 1}},
            format="json",
        )
    assert response.status_code == 201, response.content
    model = ModelVersion.objects.get(name="rings")
    # An EXIF-rotated JPEG: both answer in the pixels of the image turned upright (120 wide, 160 high).
    photo = PILImage.open(io.BytesIO(ring_scene(600)[0])).convert("RGB")
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotated a quarter: upright, it is tall
    jpeg = io.BytesIO()
    photo.save(jpeg, "JPEG", quality=95, exif=exif.tobytes())
    served = api.post(f"/api/predict/{project.id}/rings/", jpeg.getvalue(), content_type="image/jpeg").json()
    assert served["predictions"] and all(m["rle"]["size"] == [160, 120] for m in served["predictions"])
    # The same pixels already upright, as a PNG: the same masks, so each mask was turned with its image.
    upright = io.BytesIO()
    ImageOps.exif_transpose(PILImage.open(io.BytesIO(jpeg.getvalue()))).save(upright, "PNG")
    turned = api.post(f"/api/predict/{project.id}/rings/", upright.getvalue(), content_type="image/png").json()
    assert [m["rle"] for m in turned["predictions"]] == [m["rle"] for m in served["predictions"]]

    folder = bundle_extract(api, model.id, django_capture_on_commit_callbacks, tmp_path)
    assert {"model.pt2", "checkpoint.pt", "serve.py", "sightline_masks.py", "sightline_boxes.py"} <= {
        path.name for path in folder.iterdir()
    }
    assert "pycocotools" in (folder / "requirements.txt").read_text()
    status, offline = bundle_answer(folder, f"/api/predict/{project.id}/rings/", jpeg.getvalue(), "Serving rings")
    assert status == 200 and offline["task"] == "semantic-segmentation"
    assert [(m["label"], m["rle"], m["area"], m["box"]) for m in offline["predictions"]] == [
        (m["label"], m["rle"], m["area"], m["box"]) for m in served["predictions"]
    ]
    for ours, theirs in zip(offline["predictions"], served["predictions"], strict=True):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)

    # Load Existing Model: the same ZIP in a project whose labels come in another order answers the same masks.
    other, loaded = bundle_loaded(api, folder, user, ["square", "ring"])
    assert loaded.status_code == 201, loaded.content
    assert (loaded.json()["task"], loaded.json()["name"]) == ("semantic-segmentation", "rings")
    again = api.post(f"/api/predict/{other.id}/rings/", jpeg.getvalue(), content_type="image/jpeg").json()
    assert again["predictions"] == served["predictions"]
    # Stored as suggestions there, each mask has that project's label of its name.
    [image] = images_upload(
        project=other, user=user, files=[SimpleUploadedFile("u.png", upright.getvalue())], labels=[]
    ).stored
    stored = api.post(f"/api/images/{image.id}/predictions/", {"model": loaded.json()["id"]}, format="json")
    assert stored.status_code == 200, stored.content
    rows = Prediction.objects.filter(image=image).select_related("label")
    assert sorted((r.label.project_id, r.label.name, r.geometry["rle"]["counts"]) for r in rows) == sorted(
        (other.id, m["label"], m["rle"]["counts"]) for m in turned["predictions"]
    )
    assert api.get(f"/api/models/{loaded.json()['id']}/statistics/").status_code == 409


@pytest.mark.django_db
def test_a_segmentation_job_without_polygons_or_masks_is_refused_and_stores_nothing(api, user):
    project = make_project(owner=user, name="Boxes only")
    label = Label.objects.create(project=project, name="thing")
    png, *_ = ring_scene(1)
    image = images_upload(project=project, user=user, files=[SimpleUploadedFile("a.png", png)], labels=[]).stored[0]
    box = {"label": label.id, "kind": "box", "geometry": {"x": 5, "y": 5, "width": 20, "height": 20}}
    saved = api.put(f"/api/images/{image.id}/annotations/", {"revision": 0, "shapes": [box]}, format="json")
    assert saved.status_code == 200
    refused = api.post(
        f"/api/projects/{project.id}/training-jobs/",
        {"task": "semantic-segmentation", "parameters": TINY},
        format="json",
    )
    assert (refused.status_code, refused.json()) == (
        400,
        {"task": ["No image has a polygon or mask yet: draw some objects before training a segmentation model."]},
    )
    assert TrainingJob.objects.filter(project=project).count() == 0
    vit = {**TINY, "backbone": "vit_tiny_patch16_224", "pretrained": False}
    refused = api.post(
        f"/api/projects/{project.id}/training-jobs/",
        {"task": "semantic-segmentation", "parameters": vit},
        format="json",
    )
    assert refused.json()["backbone"][0].startswith("vit_tiny_patch16_224 has no features at stride 4, 8, 32")
    # Once two images have polygons, the image of boxes alone is not taken as all background.
    for seed in (2, 3):
        png, outer, inner, _ = ring_scene(seed)
        other = images_upload(project=project, user=user, files=[SimpleUploadedFile(f"{seed}.png", png)], labels=[])
        ring = {"label": label.id, "kind": "polygon", "geometry": {"parts": [{"outer": outer, "holes": [inner]}]}}
        saved = api.put(
            f"/api/images/{other.stored[0].id}/annotations/", {"revision": 0, "shapes": [ring]}, format="json"
        )
        assert saved.status_code == 200
    version = datasets.dataset_version_create(
        project=project,
        user=user,
        task="semantic-segmentation",
        multi_label=False,
        validation_percent=20,
        use_validation_set=False,
    )
    assert ImageStatus.objects.filter(image=image, status=ImageStatus.Status.LABELED).exists()  # marked, boxes only
    assert image.id not in set(version.items.values_list("image_id", flat=True))
    assert version.items.count() == 2
