"""POST /api/images/{id}/smart/ through HTTP, on GrabCut and on a tiny SAM: masks, the embedding cache,
SAM's encoder in a worker (202 until then), the labeler's prepare call, the saved result, permissions and bad input."""

import io
import time
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image as PILImage

from annotations import smart
from annotations.geometry import decode_mask
from annotations.models import Annotation
from jobs.models import Job
from jobs.runner import job_run
from projects.uploads import images_upload
from tests.annotations.sam_tiny import tiny_checkpoint
from tests.annotations.smart_scenes import iou, scene
from tests.conftest import client_for
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


def png(rgb: np.ndarray, name: str) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


@pytest.fixture
def project(user):
    return make_project(owner=user)


@pytest.fixture
def ellipse(user, project):
    s = scene("ellipse", 1)
    image = images_upload(project=project, user=user, files=[png(s.rgb, "ellipse.png")], labels=[]).stored[0]
    return image, s


@pytest.fixture
def sam(settings, tmp_path):
    settings.SIGHTLINE_SAM_CHECKPOINT = str(tiny_checkpoint(tmp_path / "sam_tiny.pth"))
    settings.SIGHTLINE_SAM_CACHE_PREFIX = f"cache/sam-{tmp_path.name}"  # in the default storage, one per test
    yield settings.SIGHTLINE_SAM_CHECKPOINT
    smart._engine.cache_clear()
    smart._embeddings.items.clear()


def cache_dir(settings) -> Path:
    return Path(settings.MEDIA_ROOT) / settings.SIGHTLINE_SAM_CACHE_PREFIX


def test_grabcut_extracts_the_shape_and_the_mask_saves_as_a_smart_object(api, project, ellipse):
    image, s = ellipse
    body = api.post(
        f"/api/images/{image.id}/smart/",
        {"box": s.box, "foreground": s.foreground, "background": s.background},
        format="json",
    ).json()
    assert (body["backend"], body["score"], body["embedding_cached"]) == ("grabcut", None, None)
    mask = decode_mask(body["rle"])
    assert mask.shape == (480, 640)
    assert iou(mask, s.truth) >= 0.9
    assert body["area"] == int(mask.sum())
    ys, xs = np.nonzero(mask)
    assert body["bbox"] == {
        "x": int(xs.min()),
        "y": int(ys.min()),
        "width": int(xs.max() - xs.min() + 1),
        "height": int(ys.max() - ys.min() + 1),
    }
    assert Annotation.objects.count() == 0  # nothing is saved until Done

    label = api.post(f"/api/projects/{project.id}/labels/", {"name": "ellipse"}, format="json").json()
    shape = {"label": label["id"], "kind": "mask", "geometry": {"rle": body["rle"]}, "source": "smart"}
    saved = api.put(f"/api/images/{image.id}/annotations/", {"revision": 0, "shapes": [shape]}, format="json")
    assert saved.status_code == 200
    stored = Annotation.objects.get()
    assert (stored.kind, stored.source) == ("mask", "smart")
    assert np.array_equal(decode_mask(stored.geometry["rle"]), mask)


def test_the_work_area_bounds_the_mask(api, ellipse):
    image, s = ellipse
    half = {**s.box, "width": s.box["width"] / 2}
    body = api.post(
        f"/api/images/{image.id}/smart/", {"box": half, "foreground": [[s.box["x"] + 60, 240]]}, format="json"
    ).json()
    mask = decode_mask(body["rle"])
    right_edge = int(np.ceil(half["x"] + half["width"]))
    assert not mask[:, right_edge:].any()
    assert body["bbox"]["x"] + body["bbox"]["width"] <= right_edge


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"box": {"x": 0, "y": 0, "width": 2, "height": 2}},
            {"detail": "The work area must be at least 4x4 pixels inside the 640x480 image."},
        ),
        ({"foreground": [[900, 10]]}, {"detail": "foreground[0] goes outside the 640x480 image."}),
        ({"foreground": "here"}, {"foreground": ["Expected a list."]}),
        ({"marks": []}, {"marks": ["Unknown field."]}),
    ],
)
def test_bad_marks_are_400_with_the_reason(api, ellipse, payload, expected):
    image, _ = ellipse
    response = api.post(f"/api/images/{image.id}/smart/", payload, format="json")
    assert response.status_code == 400
    assert response.json() == expected


def test_only_annotators_may_use_the_tool_and_strangers_see_nothing(user):
    viewer, stranger = UserFactory(), UserFactory()
    project = make_project(owner=user, Viewer=viewer)
    s = scene("ring")
    image = images_upload(project=project, user=user, files=[png(s.rgb, "ring.png")], labels=[]).stored[0]
    payload = {"box": s.box, "foreground": s.foreground}
    denied = client_for(viewer).post(f"/api/images/{image.id}/smart/", payload, format="json")
    assert denied.status_code == 403
    hidden = client_for(stranger).post(f"/api/images/{image.id}/smart/", payload, format="json")
    assert (hidden.status_code, hidden.json()) == (404, {"detail": "No such image."})
    assert client_for(viewer).post(f"/api/images/{image.id}/smart/prepare/", {}, format="json").status_code == 403
    assert client_for(stranger).post(f"/api/images/{image.id}/smart/prepare/", {}, format="json").status_code == 404
    assert Annotation.objects.count() == 0


def test_sam_never_encodes_in_a_request_it_answers_202_with_the_job_and_then_the_mask(api, ellipse, sam, settings):
    image, s = ellipse
    assert api.get(f"/api/images/{image.id}/smart/").json() == {
        "backend": "sam",
        "description": "Segment Anything custom (32-d, 2 blocks) (sam_tiny.pth)",
        "error": "",
        "embedding_cached": False,
    }
    payload = {"box": s.box, "foreground": s.foreground, "background": s.background}
    waiting = api.post(f"/api/images/{image.id}/smart/", payload, format="json")
    assert waiting.status_code == 202
    job = Job.objects.get(kind="sam-embeddings")
    assert waiting.json() == {
        "preparing": True,
        "job": job.pk,
        "job_url": f"/api/jobs/{job.pk}/",
        "detail": "Preparing the smart tool: a worker is computing this image's SAM embedding.",
    }
    assert (job.kind, job.payload, job.status) == ("sam-embeddings", {"image_ids": [image.pk]}, "queued")
    again = api.post(f"/api/images/{image.id}/smart/", payload, format="json")
    assert (again.status_code, again.json()["job"], Job.objects.filter(kind="sam-embeddings").count()) == (
        202,
        job.pk,
        1,
    )  # the same job, not another
    assert not cache_dir(settings).exists()

    job_run(job.pk)  # the worker's turn
    job.refresh_from_db()
    assert (job.status, job.progress, job.phase) == ("finished", 1.0, "Computed 1 embedding(s); 0 were ready.")
    cached = list(cache_dir(settings).glob(f"*/{image.sha256}.npy"))
    assert len(cached) == 1
    assert np.load(cached[0]).shape == (32, 16, 16)

    smart._embeddings.items.clear()  # another process: only the stored cache is shared
    answer = api.post(f"/api/images/{image.id}/smart/", payload, format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["backend"], body["embedding_cached"]) == ("sam", True)
    assert isinstance(body["score"], float)
    mask = decode_mask(body["rle"])
    assert body["area"] == int(mask.sum()) > 0
    x0, y0 = int(np.floor(s.box["x"])), int(np.floor(s.box["y"]))
    assert not mask[:y0].any() and not mask[:, :x0].any()
    repeat = api.post(f"/api/images/{image.id}/smart/", payload, format="json").json()
    assert repeat["rle"] == body["rle"]


def test_opening_the_labeler_starts_nothing_and_its_prepare_call_computes_this_image_and_the_next_ones(
    client, user, project, sam, settings, django_capture_on_commit_callbacks
):
    files = [png(scene("ellipse", seed).rgb, f"{seed}.png") for seed in range(6)]
    images = images_upload(project=project, user=user, files=files, labels=[]).stored
    newest_first = sorted(images, key=lambda i: -i.pk)
    client.force_login(user)
    page = client.get(f"/projects/{project.id}/images/{newest_first[1].pk}/label/")
    assert page.status_code == 200
    assert Job.objects.filter(kind="sam-embeddings").count() == 0  # a GET starts no work
    config = page.context["config"]["smart"]
    # The opened image and the next three (SIGHTLINE_SAM_PREFETCH) in the labeler's order.
    assert (config["backend"], config["prepare"]) == ("sam", [i.pk for i in newest_first[1:5]])
    current, *ahead = config["prepare"]
    with django_capture_on_commit_callbacks(execute=True):
        prepared = client.post(
            f"/api/images/{current}/smart/prepare/", {"ahead": ahead}, content_type="application/json"
        )
    assert (prepared.status_code, prepared.json()["preparing"], prepared.json()["ready"]) == (200, True, False)
    cached = {p.stem for p in cache_dir(settings).glob("*/*.npy")}
    assert cached == {i.sha256 for i in newest_first[1:5]}
    assert Job.objects.get(kind="sam-embeddings").status == "finished"
    again = client.post(f"/api/images/{current}/smart/prepare/", {"ahead": ahead}, content_type="application/json")
    assert again.json() == {
        "backend": "sam",
        "ready": True,
        "preparing": False,
        "job": None,
        "job_url": None,
        "detail": "",
    }


def test_a_prepare_call_only_reaches_images_of_the_same_project(api, user, project, sam, settings):
    other = make_project(owner=UserFactory())
    elsewhere = images_upload(
        project=other, user=other.owner, files=[png(scene("ring").rgb, "x.png")], labels=[]
    ).stored[0]
    mine = images_upload(project=project, user=user, files=[png(scene("ring").rgb, "r.png")], labels=[]).stored[0]
    api.post(f"/api/images/{mine.pk}/smart/prepare/", {"ahead": [elsewhere.pk]}, format="json")
    assert Job.objects.get(kind="sam-embeddings").payload == {"image_ids": [mine.pk]}


def test_a_stale_prefetch_is_skipped(api, user, project, sam, settings):
    from datetime import timedelta

    from django.utils import timezone

    image = images_upload(project=project, user=user, files=[png(scene("ring").rgb, "r.png")], labels=[]).stored[0]
    api.post(f"/api/images/{image.pk}/smart/prepare/", {}, format="json")
    sam_jobs = Job.objects.filter(kind="sam-embeddings")
    sam_jobs.update(created_at=timezone.now() - timedelta(hours=1))  # the worker was busy for an hour
    job_run(sam_jobs.get().pk)
    assert sam_jobs.get().phase == "Skipped: asked for too long ago (the person has moved on)."
    assert not cache_dir(settings).exists()


def test_the_cache_forgets_the_least_recently_used_beyond_its_size(user, project, sam, settings):
    images = images_upload(
        project=project, user=user, labels=[], files=[png(scene("blob", seed).rgb, f"{seed}.png") for seed in range(3)]
    ).stored
    backend = smart.smart_backend()
    for image in images:
        smart.sam_embedding(backend, image)
        time.sleep(0.01)
    smart._embeddings.items.clear()
    smart.sam_embedding(backend, images[0])  # read again: now the most recently used
    size = next(cache_dir(settings).glob("*/*.npy")).stat().st_size
    assert smart.sam_cache_trim(limit_bytes=2 * size) == 1
    kept = {p.stem for p in cache_dir(settings).glob("*/*.npy")}
    assert kept == {images[0].sha256, images[2].sha256}


def test_a_broken_checkpoint_is_reported_at_start_up_and_on_the_health_page(client, settings, tmp_path, capsys):
    broken = tmp_path / "sam_vit_b.pth"
    broken.write_bytes(b"\x00" * 100)
    settings.SIGHTLINE_SAM_CHECKPOINT = str(broken)
    call_command("check")
    out = capsys.readouterr()
    assert "sightline.W001" in out.err
    assert f"SIGHTLINE_SAM_CHECKPOINT: {broken} cannot be read as a PyTorch checkpoint" in out.err
    health = client.get("/healthz", headers={"X-Health-Token": "test-health-token"}).json()
    assert health["checks"]["smart"]["ok"] is False
    assert health["checks"]["smart"]["backend"] == "grabcut"
    assert "smart" in health["failing"]

    settings.SIGHTLINE_SAM_CHECKPOINT = str(tmp_path / "nowhere.pth")
    assert client.get("/healthz", headers={"X-Health-Token": "test-health-token"}).json()["checks"]["smart"][
        "error"
    ] == (f"SIGHTLINE_SAM_CHECKPOINT: {tmp_path / 'nowhere.pth'} cannot be opened (No such file or directory).")
    settings.SIGHTLINE_SAM_CHECKPOINT = ""
    assert client.get("/healthz", headers={"X-Health-Token": "test-health-token"}).json()["checks"]["smart"] == {
        "ok": True,
        "backend": "grabcut",
        "description": "GrabCut (OpenCV): foreground and background scribbles",
        "error": "",
    }


def test_too_many_marks_are_refused_before_any_is_converted(api, ellipse, monkeypatch):
    from annotations.assist import prompts

    image, _ = ellipse

    def never(*args, **kwargs):
        raise AssertionError("the marks were converted before their count was checked")

    monkeypatch.setattr(prompts, "_marks", never)
    clicks = api.post(f"/api/images/{image.id}/smart/", {"foreground": [[5, 5]] * 200_000}, format="json")
    assert (clicks.status_code, clicks.json()) == (400, {"detail": "Send at most 500 marks."})
    stroke = api.post(f"/api/images/{image.id}/smart/", {"background": [[[5, 5]] * 20_001]}, format="json")
    assert (stroke.status_code, stroke.json()) == (
        400,
        {"detail": "The marks have more than 20,000 points; send fewer points per stroke."},
    )
