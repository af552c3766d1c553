"""The smart tool in Chromium: work area, scribbles, Extract, refine, Done, and the mask is stored."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from annotations.geometry import decode_mask
from annotations.models import Annotation
from projects.models import Label
from projects.uploads import images_upload
from tests.annotations.smart_scenes import iou, scene
from tests.browser.test_labeler import login, open_labeler, saved, screen
from tests.browser.test_training import shot
from tests.factories import UserFactory, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def drag(page, points):
    page.mouse.move(*screen(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*screen(page, *point), steps=4)
    page.mouse.up()


def open_scene(page, live_server, kind: str, seed: int):
    """A project with one generated scene and a label, opened in the labeler by its owner."""
    user = UserFactory(username="labeler")
    project = make_project(owner=user, name="Shapes")
    Label.objects.create(project=project, name="blob", color="#ff8800", hotkey=1)
    s = scene(kind, seed)
    buffer = io.BytesIO()
    PILImage.fromarray(s.rgb).save(buffer, format="PNG")
    image = images_upload(
        project=project, user=user, labels=[], files=[SimpleUploadedFile(f"{kind}.png", buffer.getvalue())]
    ).stored[0]
    login(page, live_server)
    open_labeler(page, f"{live_server.url}/projects/{project.id}/images/{image.id}/label/")
    return s, image


def test_extract_refine_and_keep_a_smart_mask(live_server, page):
    s, image = open_scene(page, live_server, "ring", 2)

    page.keyboard.press("w")
    assert page.locator("#smart-backend").inner_text() == "GrabCut (OpenCV): foreground and background scribbles"
    box = s.box
    drag(page, [(box["x"], box["y"]), (box["x"] + box["width"], box["y"] + box["height"])])
    ring = s.foreground[0]
    drag(page, ring[:12])  # half the ring first
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.sightline.tools.smart.extractions === 1")
    assert page.locator("#smart-state").inner_text().startswith("Extracted ")
    assert Annotation.objects.count() == 0  # until Done, nothing is saved

    # Refine: the rest of the ring, and the hole as background (right button).
    drag(page, ring[12:])
    page.mouse.click(*screen(page, *s.background[0]), button="right")
    page.click("button[data-action=smart-extract]")
    page.wait_for_function("() => window.sightline.tools.smart.extractions === 2")
    shot(page, "smart-refined")
    assert page.evaluate(
        "() => [window.sightline.tools.smart.foreground.length, window.sightline.tools.smart.background.length]"
    ) == [2, 1]

    page.click("button[data-action=smart-done]")
    saved(page)
    stored = Annotation.objects.get(image=image)
    assert (stored.kind, stored.source, stored.label.name) == ("mask", "smart", "blob")
    mask = decode_mask(stored.geometry["rle"])
    assert iou(mask, s.truth) >= 0.9
    assert not mask[int(s.truth.shape[0] / 2), int(s.truth.shape[1] / 2)]  # the hole stays a hole
    assert page.locator("#object-list li").count() == 1
    assert page.evaluate("() => window.sightline.tools.smart.result") is None


def test_with_sam_the_labeler_prepares_in_a_worker_and_says_so_until_the_embedding_is_ready(
    live_server, page, settings, tmp_path, monkeypatch
):
    from jobs import services as jobs
    from jobs.models import Job
    from jobs.runner import job_run
    from tests.annotations.sam_tiny import tiny_checkpoint

    settings.SIGHTLINE_SAM_CHECKPOINT = str(tiny_checkpoint(tmp_path / "sam_tiny.pth"))
    settings.SIGHTLINE_SAM_CACHE_PREFIX = f"cache/sam-{tmp_path.name}"
    monkeypatch.setattr(jobs, "_enqueue", lambda job_id, kind: None)  # this test plays the worker itself
    s, image = open_scene(page, live_server, "ellipse", 1)
    # Opening the image asked a worker for its embedding (a POST); the page load itself started nothing.
    wait = Job.objects.filter(kind="sam-embeddings")
    for _ in range(100):
        if wait.exists():
            break
        page.wait_for_timeout(100)
    job = wait.get()
    assert (job.status, job.payload) == ("queued", {"image_ids": [image.pk]})

    page.keyboard.press("w")
    assert page.locator("#smart-backend").inner_text().startswith("Segment Anything custom")
    box = s.box
    drag(page, [(box["x"], box["y"]), (box["x"] + box["width"], box["y"] + box["height"])])
    mark = s.foreground[0]
    page.mouse.click(*screen(page, *(mark[0] if isinstance(mark[0], list) else mark)))  # a click, or a stroke's start
    page.keyboard.press("Enter")
    page.wait_for_selector("#smart-state:has-text('Preparing the smart tool…')")
    shot(page, "smart-preparing")
    assert page.evaluate("() => window.sightline.tools.smart.extractions") == 0
    job_run(job.pk)  # the worker computes the embedding; the labeler sees the job finish and extracts
    page.wait_for_function("() => window.sightline.tools.smart.extractions === 1", timeout=15_000)
    assert page.locator("#smart-state").inner_text().startswith("Extracted ")
    assert Job.objects.get(pk=job.pk).status == "finished"
    assert Job.objects.filter(kind="sam-embeddings").count() == 1  # the Extract waited for the same job
