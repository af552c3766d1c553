"""Spec 004's model with a detection head and a segmentation head: the detection head learns boxes from rectangles
and polygons, the segmentation head pixels from painted masks, on one backbone; one model answers both."""

import io

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from annotations.geometry import decode_mask, encode_mask
from annotations.models import Annotation
from projects.files import stored_bytes
from projects.uploads import images_upload
from tests.factories import make_project
from tests.training.conftest import bundle_answer, bundle_extract, bundle_loaded
from tests.training.scenes import ring_scene
from tests.training.test_segmentation import _reference_iou
from training import statistics
from training.ml import heads
from training.ml.detection import Detector, augment
from training.ml.images import upright_resized
from training.ml.segmentation import label_map
from training.ml.segmentation_metrics import IGNORE
from training.models import DatasetItem, ModelVersion, Prediction

TINY = {
    "epochs": 6,
    "model_size": "small",
    "image_size": 224,
    "batch_size": 4,
    "patience_minutes": 0,
    "segmentation_head": True,
}


def _ring_samples(seeds):
    """Ring scenes as samples: each ring's box (from its polygon), each square painted."""
    files, samples = {}, []
    for seed in seeds:
        png, outer, _, (x, y, side) = ring_scene(seed)
        files[f"r{seed}"] = png
        xs, ys = [p[0] for p in outer], [p[1] for p in outer]
        box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys), 0)
        square = np.zeros((120, 160), bool)
        square[y : y + side, x : x + side] = True
        samples.append(heads.HeadsSample(f"r{seed}", (box,), ((1, "mask", {"rle": encode_mask(square)}),), True))
    return files, samples


def test_a_label_map_follows_the_detectors_augmentation():
    """detection.augment moves a label map through the same crop, zoom and flip as the image and its boxes; the
    boxes' numbers and the random draws are the same with a label map as without."""
    image = np.full((60, 80, 3), 127, np.uint8)  # the grey a zoom out pads with
    image[10:30, 20:50] = 255  # one white object, labelled 2, whose box is known
    labels = np.zeros((60, 80), np.uint8)
    labels[10:30, 20:50] = 2
    boxes, classes = np.array([[20, 10, 50, 30]], np.float32), np.array([0])
    rng, plain = np.random.default_rng(4), np.random.default_rng(4)
    checked = 0
    for _ in range(12):
        moved, kept, kept_classes, painted = augment(image, boxes, classes, rng, flip=True, labels=labels)
        alone, alone_boxes, _, nothing = augment(image, boxes, classes, plain, flip=True)
        assert nothing is None and np.array_equal(moved, alone) and np.array_equal(kept, alone_boxes)
        assert painted.shape == moved.shape[:2] and set(np.unique(painted)) <= {0, 2}
        grey = np.median(moved.max(axis=2))
        bright = moved.max(axis=2) > (int(moved.max()) + grey) / 2  # colour jitter moves both
        for region in (bright, painted == 2):  # to a pixel: resizing blurs (bilinear) or rounds (nearest) edges
            rows, columns = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
            if len(kept):
                x1, y1, x2, y2 = kept[0]
                assert abs(rows[0] - y1) <= 1 and abs(rows[-1] + 1 - y2) <= 1
                assert abs(columns[0] - x1) <= 1 and abs(columns[-1] + 1 - x2) <= 1
        checked += len(kept)
    assert checked >= 8  # a box is dropped only when a crop cuts most of it off


def test_fcos_learns_only_from_the_images_whose_boxes_are_known():
    torch.manual_seed(0)
    model = heads.build_model(2, backbone="tf_efficientnet_lite0", pretrained=False, model_size="small", image_size=160)
    model.eval()  # batch norm from its running statistics: an image's features do not depend on its neighbours
    images = [torch.rand(3, 120, 160), torch.rand(3, 120, 160)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([0]), "label_map": None},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64), "label_map": None},
    ]
    with torch.no_grad():
        both = model.detection_losses(images, targets, [True, False])[0]
        alone = model.detection_losses(images[:1], targets[:1])[0]
        counted = model.detection_losses(images, targets)[0]
    assert set(both) == {"classification", "bbox_regression", "bbox_ctrness"}
    for name in both:
        assert float(both[name]) == pytest.approx(float(alone[name]), rel=1e-5)
    # Counted, the image without boxes adds its locations' (small, focal) classification loss as background.
    assert float(counted["classification"]) - float(both["classification"]) > 1e-5
    none = model.detection_losses(images, targets, [False, False])[0]
    assert all(float(loss.detach()) == 0 and loss.requires_grad for loss in none.values())


def test_a_two_head_checkpoint_is_a_detectors_and_both_heads_answer_from_one_pass():
    files, samples = _ring_samples(range(8))
    config = heads.HeadsConfig(labels=("ring", "square"), model_size="small", image_size=160, epochs=2, batch_size=4)
    result = heads.train(config, samples[:6], samples[6:], read=files.__getitem__, device=torch.device("cpu"))
    assert [(e["epoch"], e["valid_miou"] is not None, e["valid_map50"] is not None) for e in result.history] == [
        (1, True, True),
        (2, True, True),
    ]
    assert set(result.history[0]["losses"]) == {"classification", "bbox_regression", "bbox_ctrness", "semantic"}
    saved = result.checkpoints["best"]
    assert saved["format"] == "sightline-detector/1" and heads.has_segmentation_head(saved)
    # The bytes of an image through the saved checkpoint: its boxes are exactly a plain detector's from the same file.
    data = io.BytesIO()
    torch.save(saved, data)
    loaded = torch.load(io.BytesIO(data.getvalue()), weights_only=True)
    both = heads.Heads(loaded, device=torch.device("cpu")).predict([files["r7"]], score=0.05)
    plain = Detector({k: v for k, v in loaded.items() if k != "onnx"}, device=torch.device("cpu"))
    [boxes] = plain.predict([files["r7"]], score=0.05)
    [(rows, pixels)] = both
    np.testing.assert_allclose(rows, boxes, atol=1e-4)
    assert pixels.labels.shape == (120, 160) and pixels.confidence.shape == (3,)
    # The validation pixels the run counted are the label maps it predicted against the painted truth.
    scored = result.scored["best"]["valid"]
    assert len(scored.maps) == 2 and scored.total.sum() == 2 * 120 * 160


@pytest.mark.django_db
def test_a_detector_with_a_segmentation_head_trains_through_the_api_and_answers_boxes_and_masks(
    api, user, rings, tmp_path, django_capture_on_commit_callbacks
):
    project, blank = rings
    ring, square = project.labels.get(name="ring"), project.labels.get(name="square")
    # An image with only paint: its ring is not drawn, so the detection head must not learn it as having none.
    png, _, _, (x, y, side) = ring_scene(40)
    [painted_only] = images_upload(
        project=project, user=user, files=[SimpleUploadedFile("p.png", png)], labels=[]
    ).stored
    paint = np.zeros((120, 160), bool)
    paint[y : y + side, x : x + side] = True
    shapes = [{"label": square.id, "kind": "mask", "geometry": {"rle": encode_mask(paint)}}]
    saved = api.put(f"/api/images/{painted_only.id}/annotations/", {"revision": 0, "shapes": shapes}, format="json")
    assert saved.status_code == 200, saved.content
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/projects/{project.id}/training-jobs/",
            {"task": "detection", "name": "both", "parameters": TINY},
            format="json",
        )
    assert response.status_code == 201, response.content
    job = api.get(f"/api/training-jobs/{response.json()['id']}/").json()
    assert job["status"] == "finished", job["error"]
    assert "detector with a segmentation head" in job["log"]
    model = ModelVersion.objects.get(name="both")
    assert (model.task, model.segmentation_head, model.labels) == ("detection", True, ["ring", "square"])
    assert api.get(f"/api/models/{model.id}/").json()["segmentation_head"] is True

    # The frozen targets: boxes from the rings' polygons only, shapes from the painted squares only; the image
    # with no object at all is background for the segmentation head.
    items = {item.image_id: item for item in DatasetItem.objects.filter(dataset_version=model.dataset_version)}
    assert items[blank.id].targets == {"boxes": [], "shapes": [], "boxed": True, "painted": True}
    assert items[painted_only.id].targets["boxed"] is False and items[painted_only.id].targets["painted"] is True
    for item in items.values():
        if item.image_id in (blank.id, painted_only.id):
            continue
        targets = item.targets
        assert [row[4] for row in targets["boxes"]] == [0] and [row[:2] for row in targets["shapes"]] == [[1, "mask"]]
        assert targets["boxed"] is True and targets["painted"] is True
    counts = model.dataset_version.counts
    assert counts["labels"] == {"ring": {"train": 10, "valid": 2}, "square": {"train": 0, "valid": 0}}
    assert counts["painted"] == {"ring": {"train": 0, "valid": 0}, "square": {"train": 11, "valid": 2}}  # and p.png

    # The segmentation head's statistics equal a plain numpy count of the label maps it predicted against the
    # painted truth at the training size; the detection head's are a detector's.
    for split in ("train", "valid"):
        stats = statistics.segmentation_statistics(model=model, checkpoint="best", split=split)
        truth, predicted = [], []
        for item in DatasetItem.objects.filter(dataset_version=model.dataset_version, split=split):
            pixels, scale = upright_resized(stored_bytes(item.file), 224)
            shapes = [tuple(row) for row in item.targets["shapes"]]
            truth.append(label_map(shapes, scale, *pixels.shape[:2]).ravel())
            predicted.append(statistics.predicted_map(model, "best", item.pk).ravel())
        reference = _reference_iou(np.concatenate(truth), np.concatenate(predicted), 3)
        assert [row["iou"] for row in stats["per_class"]] == [
            pytest.approx(v, abs=1e-12) if v is not None else None for v in reference
        ]
        assert model.metrics["best"][split]["miou"] == pytest.approx(stats["miou"], abs=1e-12)
        boxes = api.get(f"/api/models/{model.id}/statistics/", {"split": split}).json()
        boxed = DatasetItem.objects.filter(dataset_version=model.dataset_version, split=split, targets__boxed=True)
        assert boxes["task"] == "detection" and boxes["count"] == boxed.count() and stats["count"] == len(truth)
    assert IGNORE not in np.concatenate(truth)

    # The model page shows the segmentation head's statistics below the detector's.
    browser = Client()
    browser.force_login(user)
    page = browser.get(f"/projects/{project.id}/models/{model.id}/")
    html = page.content.decode()
    assert page.status_code == 200 and "object detection with a segmentation head" in html
    assert "highest mean of validation mAP@0.5 and the segmentation head's mIoU" in html
    assert 'id="segmentation-head"' in html and 'id="pixel-confusion"' in html and "mIoU (segmentation head)" in html

    listing = browser.get(f"/projects/{project.id}/models/", {"task": "detection"}).content.decode()
    assert "detection with a segmentation head" in listing and ", mIoU 0." in listing

    # The segmentation head's gallery: the images where a label's pixels are true or predicted, drawn.
    _, pixels = statistics.pixels_load(model, "best", "valid")
    expected = int(((pixels[:, 1, 2] + pixels[:, 2, 2]) > 0).sum())  # true or predicted square pixels
    gallery = browser.get(f"/projects/{project.id}/models/{model.id}/gallery/", {"head": "segmentation", "label": 1})
    html = gallery.content.decode()
    assert gallery.status_code == 200 and expected > 0
    assert html.count('<svg class="pixels"') == expected and "segmentation head's gallery" in html
    assert f"{expected} image{'s' if expected != 1 else ''}" in html and "&amp;head=segmentation" in html
    boxes_gallery = browser.get(f"/projects/{project.id}/models/{model.id}/gallery/", {"label": 0}).content.decode()
    assert '<svg class="pixels"' not in boxes_gallery and '<svg class="crop"' in boxes_gallery

    # The predict endpoint: the detection head's boxes, and the segmentation head's masks apart.
    png, *_ = ring_scene(500)
    reply = api.post(f"/api/predict/{project.id}/both/", png, content_type="image/png", QUERY_STRING="threshold=0.05")
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["task"] == "detection" and body["predictions"] and body["masks"]
    for box in body["predictions"]:
        assert set(box) == {"label", "score", "x", "y", "width", "height"} and box["score"] >= 0.05
    for mask in body["masks"]:
        assert set(mask) == {"label", "score", "area", "box", "rle"} and mask["label"] in ("ring", "square")
        assert mask["rle"]["size"] == [120, 160] and mask["area"] == int(decode_mask(mask["rle"]).sum()) > 0

    # Model Assist stores both kinds, and an accepted mask suggestion becomes a mask annotation.
    [image] = images_upload(project=project, user=user, files=[SimpleUploadedFile("new.png", png)], labels=[]).stored
    listed = api.post(f"/api/images/{image.id}/predictions/", {"model": model.id}, format="json").json()
    kinds = {(p["kind"], p["label_name"]) for p in listed["predictions"]}
    assert ("mask", "square") in kinds and any(kind == "box" for kind, _ in kinds)
    chosen = next(p for p in listed["predictions"] if p["kind"] == "mask")
    accepted = api.post(
        f"/api/images/{image.id}/predictions/accept/", {"revision": 0, "ids": [chosen["id"]]}, format="json"
    )
    assert accepted.status_code == 200, accepted.content
    [annotation] = Annotation.objects.filter(image=image)
    assert (annotation.kind, annotation.label_id) == (
        "mask",
        square.id if chosen["label_name"] == "square" else ring.id,
    )
    assert annotation.geometry == chosen["geometry"]
    assert not Prediction.objects.filter(pk=chosen["id"]).exists()

    # The offline bundle answers the server's boxes and masks with Sightline's packages unimportable; loaded into a
    # project whose labels come in another order, it is a detector with a segmentation head again.
    folder = bundle_extract(api, model.id, django_capture_on_commit_callbacks, tmp_path)
    shipped = {path.name for path in folder.iterdir()}
    assert {"model.pt2", "checkpoint.pt", "serve.py", "sightline_boxes.py", "sightline_masks.py"} <= shipped
    assert "pycocotools" in (folder / "requirements.txt").read_text().split()
    assert "This detector has a segmentation head too" in (folder / "README.md").read_text()
    path = f"/api/predict/{project.id}/both/"
    status, offline = bundle_answer(folder, f"{path}?threshold=0.05", png, "Serving both")
    assert status == 200 and offline["task"] == "detection"
    assert [b["label"] for b in offline["predictions"]] == [b["label"] for b in body["predictions"]]
    for ours, theirs in zip(offline["predictions"], body["predictions"], strict=True):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)
        corners = ("x", "y", "width", "height")
        assert [ours[k] for k in corners] == pytest.approx([theirs[k] for k in corners], abs=0.05)
    assert [m["label"] for m in offline["masks"]] == [m["label"] for m in body["masks"]]
    for ours, theirs in zip(offline["masks"], body["masks"], strict=True):
        mine, server = decode_mask(ours["rle"]), decode_mask(theirs["rle"])
        assert (mine & server).sum() / (mine | server).sum() >= 0.99
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)
    other, loaded = bundle_loaded(api, folder, user, ["square", "ring"])
    assert loaded.status_code == 201, loaded.content
    assert (loaded.json()["task"], loaded.json()["segmentation_head"]) == ("detection", True)
    again = api.post(f"/api/predict/{other.id}/both/", png, content_type="image/png", QUERY_STRING="threshold=0.05")
    assert (again.json()["predictions"], again.json()["masks"]) == (body["predictions"], body["masks"])


def _drawn(api, project, user, seed: int, shapes: list[dict]) -> None:
    """Upload a ring scene and draw these shapes on it through the API."""
    png, *_ = ring_scene(seed)
    [image] = images_upload(project=project, user=user, files=[SimpleUploadedFile("a.png", png)], labels=[]).stored
    saved = api.put(f"/api/images/{image.id}/annotations/", {"revision": 0, "shapes": shapes}, format="json")
    assert saved.status_code == 200, saved.content


@pytest.mark.django_db
def test_each_head_needs_its_own_kind_of_label(api, user):
    """Both heads need rectangles or polygons and painted masks; a refusal says which is missing and keeps nothing."""
    from projects.models import Label

    boxes_only = make_project(owner=user, name="Boxes")
    label = Label.objects.create(project=boxes_only, name="thing")
    for seed in (1, 2):
        box = {"x": 10, "y": 10, "width": 30, "height": 20}
        _drawn(api, boxes_only, user, seed, [{"label": label.id, "kind": "box", "geometry": box}])
    url = f"/api/projects/{boxes_only.id}/training-jobs/"
    refused = api.post(url, {"task": "detection", "parameters": TINY}, format="json")
    assert refused.status_code == 400
    assert refused.json()["segmentation_head"] == [
        "No image has painted masks yet: paint some, or switch the segmentation head off."
    ]
    painted_only = make_project(owner=user, name="Paint")
    label = Label.objects.create(project=painted_only, name="thing")
    mask = np.zeros((120, 160), bool)
    mask[5:25, 5:25] = True
    for seed in (1, 2):
        _drawn(
            api, painted_only, user, seed, [{"label": label.id, "kind": "mask", "geometry": {"rle": encode_mask(mask)}}]
        )
    refused = api.post(
        f"/api/projects/{painted_only.id}/training-jobs/", {"task": "detection", "parameters": TINY}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["task"] == [
        "No image has a rectangle or polygon yet: draw some, or switch the detection head off."
    ]
    # Each head's labels are checked on their own: "spot" is painted on two images but boxed on one only, so the
    # detection head would have nothing to validate it on (or, split the other way, to learn it from).
    both = make_project(owner=user, name="Both")
    thing, spot = Label.objects.create(project=both, name="thing"), Label.objects.create(project=both, name="spot")
    for seed in (1, 2, 3):
        box = {"x": 10, "y": 10, "width": 30, "height": 20}
        shapes = [{"label": (spot if seed == 3 else thing).id, "kind": "box", "geometry": box}]
        if seed != 3:
            shapes.append({"label": spot.id, "kind": "mask", "geometry": {"rle": encode_mask(mask)}})
        _drawn(api, both, user, seed, shapes)
    refused = api.post(
        f"/api/projects/{both.id}/training-jobs/", {"task": "detection", "parameters": TINY}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["task"] == [
        "Label 'spot' is on only one image; a detector needs each label on at least two images, one to train on and "
        "one to validate on. Draw more, or delete the label's objects."
    ]
    assert not ModelVersion.objects.exists()
    from training.models import DatasetVersion, TrainingJob

    assert not DatasetVersion.objects.exists() and not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_either_head_alone_learns_from_its_own_kind_of_object(api, user, rings):
    """ML Mode with one head on (spec 004): the detection head alone is a detector of rectangles and polygons, the
    segmentation head alone a semantic model of painted masks (learn_from); by default each task learns from all."""
    from training.models import DatasetVersion, TrainingJob

    project, blank = rings
    url = f"/api/projects/{project.id}/training-jobs/"
    # An image with only paint, marked labeled: a detector of shapes must not learn it as an image with nothing.
    mask = np.zeros((120, 160), bool)
    mask[5:25, 5:25] = True
    _drawn(
        api,
        project,
        user,
        50,
        [{"label": project.labels.get(name="square").id, "kind": "mask", "geometry": {"rle": encode_mask(mask)}}],
    )
    rings_only = project.images.exclude(name="a.png").exclude(pk=blank.pk).count()

    def started(task: str, learn_from: str | None) -> DatasetVersion:
        parameters = {"epochs": 1, **({"learn_from": learn_from} if learn_from else {})}
        answer = api.post(url, {"task": task, "parameters": parameters}, format="json")
        assert answer.status_code == 201, answer.content
        job = TrainingJob.objects.get(pk=answer.json()["id"])
        assert job.parameters["learn_from"] == (learn_from or "all")
        return job.dataset_version

    def kinds(version: DatasetVersion) -> list[str]:
        items = version.items.all()
        return sorted({shape[1] for item in items for shape in item.targets.get("shapes", [])})

    shapes = started("detection", "shapes")
    assert [label["name"] for label in shapes.labels] == ["ring"]
    # The blank (marked labeled, with an image label only) is a negative; the paint-only image is left out.
    assert sorted(item.image_name for item in shapes.items.all() if not item.targets["boxes"]) == ["blank.png"]
    assert shapes.items.count() == rings_only + 1
    assert sorted(len(item.targets["boxes"]) for item in shapes.items.all()) == [0] + [1] * rings_only
    every = started("detection", None)
    assert [label["name"] for label in every.labels] == ["ring", "square"]
    assert every.items.count() == rings_only + 2  # by default, the paint is a square's box
    painted = started("semantic-segmentation", "painted")
    assert ([label["name"] for label in painted.labels], kinds(painted)) == (["square"], ["mask"])
    polygons = started("semantic-segmentation", "shapes")
    assert ([label["name"] for label in polygons.labels], kinds(polygons)) == (["ring"], ["polygon"])
    assert kinds(started("semantic-segmentation", None)) == ["mask", "polygon"]
    assert started("detection", "painted").labels[0]["name"] == "square"

    # Refusals, with nothing kept: the two-head model's heads already divide the kinds; a project with no polygon.
    versions, jobs = DatasetVersion.objects.count(), TrainingJob.objects.count()
    refused = api.post(
        url, {"task": "detection", "parameters": {"segmentation_head": True, "learn_from": "shapes"}}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["learn_from"] == [
        "A detector with a segmentation head learns from all objects: its detection head from rectangles and "
        "polygons, its segmentation head from painted masks. Leave learn_from at all."
    ]
    refused = api.post(url, {"task": "semantic-segmentation", "parameters": {"learn_from": "boxes"}}, format="json")
    assert refused.status_code == 400 and refused.json()["learn_from"] == ["Must be one of all, shapes, painted."]
    paint = make_project(owner=user, name="Paint only")
    from projects.models import Label

    thing = Label.objects.create(project=paint, name="thing")
    for seed in (1, 2):
        _drawn(api, paint, user, seed, [{"label": thing.id, "kind": "mask", "geometry": {"rle": encode_mask(mask)}}])
    refused = api.post(
        f"/api/projects/{paint.id}/training-jobs/",
        {"task": "semantic-segmentation", "parameters": {"learn_from": "shapes"}},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["task"] == [
        "No image has a polygon yet: draw some objects before training a segmentation model (it learns from polygon "
        "objects only: see learn_from)."
    ]
    assert (DatasetVersion.objects.count(), TrainingJob.objects.count()) == (versions, jobs)
