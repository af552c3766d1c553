"""The four galleries of spec 001 on fixed predictions: exactly which boxes or images each tab holds, in order."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.test import Client

from tests.factories import make_project
from training import galleries
from training.models import DatasetItem, DatasetVersion, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db


def _npz(**arrays) -> ContentFile:
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return ContentFile(out.getvalue())


def crafted(user, task: str, labels: list[str], items: list[tuple], evaluation: dict, thresholds: list[float]):
    """A model whose evaluation file holds exactly `evaluation`, over dataset items of (name, split, targets)."""
    project = make_project(owner=user, name="Crafted")
    version = DatasetVersion.objects.create(
        project=project, number=1, task=task, labels=[{"id": None, "name": n, "color": "#000000"} for n in labels]
    )
    images = []
    from projects.models import Image

    for name, _, _ in items:
        images.append(
            Image.objects.create(project=project, name=name, file=f"x/{name}", sha256=name, width=100, height=80)
        )
    rows = [
        DatasetItem.objects.create(
            dataset_version=version,
            image=image,
            image_name=name,
            file=image.file.name,
            sha256="0",
            revision=0,
            split=split,
            targets=targets,
        )
        for image, (name, split, targets) in zip(images, items, strict=True)
    ]
    job = TrainingJob.objects.create(
        kind="training", project=project, created_by=user, task=task, name="m", parameters={}, status="finished"
    )
    model = ModelVersion(
        project=project,
        job=job,
        dataset_version=version,
        name="m",
        task=task,
        backbone="b",
        image_size=224,
        labels=labels,
        best_epoch=1,
        epochs_trained=1,
        multi_label=task == "classification",
        optimized_thresholds={"best": thresholds, "last": thresholds},
    )
    ids = np.array([row.pk for row in rows], dtype=np.int64)
    splits = np.array([0 if split == "train" else 1 for _, split, _ in items], dtype=np.int8)
    for checkpoint in ("best", "last"):
        getattr(model, f"{checkpoint}_checkpoint").save("c.pt", ContentFile(b""), save=False)
        getattr(model, f"{checkpoint}_evaluation").save(
            "e.npz", _npz(item_ids=ids, splits=splits, **evaluation), save=False
        )
    model.save()
    return model, images


@pytest.fixture
def detector(user):
    truth = [
        {"boxes": [[0, 0, 10, 10, 0], [20, 20, 10, 10, 0], [40, 40, 10, 10, 1]]},
        {"boxes": [[5, 5, 20, 20, 0]]},
        {"boxes": [[0, 0, 30, 30, 0]]},
    ]
    rows = np.array(
        [
            [0, 0, 10, 10, 0, 0.9],  # image 1: finds the first a
            [50, 0, 10, 10, 0, 0.8],  # nothing there
            [20, 21, 10, 10, 0, 0.3],  # the second a, below the threshold
            [40, 40, 10, 10, 1, 0.7],  # finds the b
            [60, 60, 10, 10, 0, 0.6],  # image 2: nothing there; its a is missed
            [0, 0, 30, 30, 0, 0.95],  # image 3, a training image
        ]
    )
    owners = np.array([0, 0, 0, 0, 1, 2])
    items = [("one.png", "valid", truth[0]), ("two.png", "valid", truth[1]), ("three.png", "train", truth[2])]
    return crafted(user, "detection", ["a", "b"], items, {"rows": rows, "row_item": owners}, [0.5, 0.5])


def _tab(model, tab, label=0, split="valid"):
    found = galleries.gallery(model=model, checkpoint="best", split=split, tab=tab, label=label)
    return [(item.image_name, item.box, item.score, item.note) for item in found["items"]], found["first_below"]


def test_detection_galleries_hold_exactly_their_boxes(detector):
    model, _ = detector
    assert _tab(model, "all") == (
        [
            ("one.png", (0, 0, 10, 10), 0.9, "right"),
            ("one.png", (50, 0, 10, 10), 0.8, "no such object"),
            ("two.png", (60, 60, 10, 10), 0.6, "no such object"),
            ("one.png", (20, 21, 10, 10), 0.3, "right"),  # it matches, but below the threshold
        ],
        3,
    )
    assert _tab(model, "matched") == ([("one.png", (0, 0, 10, 10), 0.9, "right")], None)
    assert _tab(model, "missing") == (
        [("one.png", (50, 0, 10, 10), 0.8, "no such object"), ("two.png", (60, 60, 10, 10), 0.6, "no such object")],
        None,
    )
    assert _tab(model, "extra") == (
        [
            ("one.png", (20, 20, 10, 10), None, "best match below the threshold: IoU 0.82, score 0.30"),
            ("two.png", (5, 5, 20, 20), None, "no match"),
        ],
        None,
    )
    assert _tab(model, "matched", label=1) == ([("one.png", (40, 40, 10, 10), 0.7, "right")], None)
    assert _tab(model, "missing", label=1)[0] == _tab(model, "extra", label=1)[0] == []
    assert _tab(model, "matched", split="train") == ([("three.png", (0, 0, 30, 30), 0.95, "right")], None)
    # At IoU 0.9 the box below the threshold no longer matches the second a (IoU 0.82).
    strict = galleries.gallery(model=model, checkpoint="best", split="valid", tab="all", label=0, iou=0.9)
    assert [item.note for item in strict["items"]] == ["right", "no such object", "no such object", "no such object"]


def test_classification_galleries_hold_exactly_their_images(user):
    scores = np.array([[0.9, 0.2], [0.7, 0.8], [0.3, 0.6], [0.6, 0.1]])
    items = [("p.png", "valid", [0]), ("q.png", "valid", [1]), ("r.png", "valid", [0, 1]), ("s.png", "valid", [])]
    model, _ = crafted(user, "classification", ["a", "b"], items, {"scores": scores}, [0.5, 0.5])

    def names(tab, label=0):
        return [item.image_name for item in _items(model, tab, label)]

    assert names("all") == ["p.png", "q.png", "s.png", "r.png"]
    assert names("matched") == ["p.png"]  # annotated a, predicted a
    assert names("missing") == ["q.png", "s.png"]  # predicted a, not annotated a
    assert names("extra") == ["r.png"]  # annotated a, not predicted
    assert names("extra", label=1) == []
    assert names("matched", label=1) == ["q.png", "r.png"]


def _items(model, tab, label):
    return galleries.gallery(model=model, checkpoint="best", split="valid", tab=tab, label=label)["items"]


def test_the_gallery_page_crops_boxes_and_links_them_to_the_labeler(user, detector):
    model, images = detector
    page = Client()
    page.force_login(user)
    html = page.get(f"/projects/{model.project_id}/models/{model.id}/gallery/", {"tab": "all"}).content.decode()
    assert html.count('<svg class="crop"') == 4
    assert f'href="/projects/{model.project_id}/images/{images[0].id}/label/"' in html
    assert 'viewBox="0.0 0.0 26.0 26.0"' in html  # the first box with 16 px of context, inside the image
    assert 'id="jump-to-threshold"' in html and "#item-3" in html
    extra = page.get(f"/projects/{model.project_id}/models/{model.id}/gallery/", {"tab": "extra"}).content.decode()
    assert "nearest misses first" in extra and extra.count('<svg class="crop"') == 2
