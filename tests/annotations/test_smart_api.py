"""POST /api/images/{id}/smart/ through HTTP, on GrabCut and on a tiny SAM: masks, the embedding cache,
prefetching from the labeler page, the saved result, permissions and bad input."""

import io
import time

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image as PILImage

from annotations import smart
from annotations.geometry import decode_mask
from annotations.models import Annotation
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
    settings.SIGHTLINE_SAM_CACHE_DIR = tmp_path / "sam-cache"
    yield settings.SIGHTLINE_SAM_CHECKPOINT
    smart._engine.cache_clear()
    smart._embeddings.items.clear()


def test_grabcut_extracts_the_shape_and_the_mask_saves_as_a_smart_object(api, project, ellipse):
    image, s = ellipse
    body = api.post(f"/api/images/{image.id}/smart/", {"box": s.box, "foreground": s.foreground,
                    "background": s.background}, format="json").json()  # fmt: skip
    assert (body["backend"], body["score"], body["embedding_cached"]) == ("grabcut", None, None)
    mask = decode_mask(body["rle"])
    assert mask.shape == (480, 640)
    assert iou(mask, s.truth) >= 0.9
    assert body["area"] == int(mask.sum())
    ys, xs = np.nonzero(mask)
    assert body["bbox"] == {"x": int(xs.min()), "y": int(ys.min()), "width": int(xs.max() - xs.min() + 1),
                            "height": int(ys.max() - ys.min() + 1)}  # fmt: skip
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
    body = api.post(f"/api/images/{image.id}/smart/", {"box": half, "foreground": [[s.box["x"] + 60, 240]]},
                    format="json").json()  # fmt: skip
    mask = decode_mask(body["rle"])
    right_edge = int(np.ceil(half["x"] + half["width"]))
    assert not mask[:, right_edge:].any()
    assert body["bbox"]["x"] + body["bbox"]["width"] <= right_edge


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"box": {"x": 0, "y": 0, "width": 2, "height": 2}}, {"detail": "The work area must be at least 4x4 pixels inside the 640x480 image."}),
        ({"foreground": [[900, 10]]}, {"detail": "foreground[0] goes outside the 640x480 image."}),
        ({"foreground": "here"}, {"foreground": ["Expected a list."]}),
        ({"marks": []}, {"marks": ["Unknown field."]}),
    ],
)  # fmt: skip
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
    assert Annotation.objects.count() == 0


def test_sam_computes_an_embedding_once_and_reads_it_from_the_cache_after(api, ellipse, sam, settings):
    image, s = ellipse
    assert api.get(f"/api/images/{image.id}/smart/").json() == {
        "backend": "sam", "description": "Segment Anything custom (32-d, 2 blocks) (sam_tiny.pth)", "error": "",
        "embedding_cached": False,
    }  # fmt: skip
    payload = {"box": s.box, "foreground": s.foreground, "background": s.background}
    first = api.post(f"/api/images/{image.id}/smart/", payload, format="json").json()
    assert (first["backend"], first["embedding_cached"]) == ("sam", False)
    assert isinstance(first["score"], float)
    cached = list(settings.SIGHTLINE_SAM_CACHE_DIR.glob(f"*/{image.sha256}.npy"))
    assert len(cached) == 1
    assert np.load(cached[0]).shape == (32, 16, 16)

    smart._embeddings.items.clear()  # another process: only the disk cache is shared
    second = api.post(f"/api/images/{image.id}/smart/", payload, format="json").json()
    assert second["embedding_cached"] is True
    assert second["rle"] == first["rle"]
    mask = decode_mask(second["rle"])
    assert second["area"] == int(mask.sum()) > 0
    x0, y0 = int(np.floor(s.box["x"])), int(np.floor(s.box["y"]))
    assert not mask[:y0].any() and not mask[:, :x0].any()


def test_opening_the_labeler_computes_embeddings_for_this_image_and_the_next_ones(
    client, user, project, sam, settings, django_capture_on_commit_callbacks
):
    files = [png(scene("ellipse", seed).rgb, f"{seed}.png") for seed in range(6)]
    images = images_upload(project=project, user=user, files=files, labels=[]).stored
    newest_first = sorted(images, key=lambda i: -i.pk)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        page = client.get(f"/projects/{project.id}/images/{newest_first[1].pk}/label/")
    assert page.status_code == 200
    assert page.context["config"]["smart"]["backend"] == "sam"
    cached = {p.stem for p in settings.SIGHTLINE_SAM_CACHE_DIR.glob("*/*.npy")}
    # The opened image and the next three (SIGHTLINE_SAM_PREFETCH) in the labeler's order.
    assert cached == {i.sha256 for i in newest_first[1:5]}


def test_a_stale_prefetch_is_skipped(user, project, sam, settings):
    image = images_upload(project=project, user=user, files=[png(scene("ring").rgb, "r.png")], labels=[]).stored[0]
    assert smart.sam_embeddings_prefetch(image_ids=[image.pk], requested_at=time.time() - 3600) == 0
    assert smart.sam_embeddings_prefetch(image_ids=[image.pk], requested_at=time.time()) == 1
    assert smart.sam_embeddings_prefetch(image_ids=[image.pk], requested_at=time.time()) == 0


def test_the_cache_forgets_the_least_recently_used_beyond_its_size(user, project, sam, settings):
    images = images_upload(project=project, user=user, labels=[],
                           files=[png(scene("blob", seed).rgb, f"{seed}.png") for seed in range(3)]).stored  # fmt: skip
    backend = smart.smart_backend()
    for image in images:
        smart.sam_embedding(backend, image)
        time.sleep(0.01)
    smart._embeddings.items.clear()
    smart.sam_embedding(backend, images[0])  # read again: now the most recently used
    size = next(settings.SIGHTLINE_SAM_CACHE_DIR.glob("*/*.npy")).stat().st_size
    assert smart.sam_cache_trim(limit_bytes=2 * size) == 1
    kept = {p.stem for p in settings.SIGHTLINE_SAM_CACHE_DIR.glob("*/*.npy")}
    assert kept == {images[0].sha256, images[2].sha256}


def test_a_broken_checkpoint_is_reported_at_start_up_and_on_the_health_page(client, settings, tmp_path, capsys):
    broken = tmp_path / "sam_vit_b.pth"
    broken.write_bytes(b"\x00" * 100)
    settings.SIGHTLINE_SAM_CHECKPOINT = str(broken)
    call_command("check")
    out = capsys.readouterr()
    assert "sightline.W001" in out.err
    assert f"SIGHTLINE_SAM_CHECKPOINT: {broken} cannot be read as a PyTorch checkpoint" in out.err
    health = client.get("/healthz").json()
    assert health["checks"]["smart"]["ok"] is False
    assert health["checks"]["smart"]["backend"] == "grabcut"
    assert "smart" in health["failing"]

    settings.SIGHTLINE_SAM_CHECKPOINT = str(tmp_path / "nowhere.pth")
    assert client.get("/healthz").json()["checks"]["smart"]["error"] == (
        f"SIGHTLINE_SAM_CHECKPOINT: {tmp_path / 'nowhere.pth'} cannot be opened (No such file or directory)."
    )
    settings.SIGHTLINE_SAM_CHECKPOINT = ""
    assert client.get("/healthz").json()["checks"]["smart"] == {
        "ok": True, "backend": "grabcut", "description": "GrabCut (OpenCV): foreground and background scribbles",
        "error": "",
    }  # fmt: skip
