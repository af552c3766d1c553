"""A semantic segmentation model in Chromium: its statistics page draws mIoU, the pixel confusion matrix and the
curves; in the labeler, Model Assist draws its masks greyed, a click inside one selects it and Space commits it as
a mask annotation."""

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.geometry import decode_mask, encode_mask
from annotations.models import Annotation
from projects.uploads import images_upload
from tests.browser.test_training import login, shot
from tests.factories import UserFactory, make_project
from tests.training.scenes import ring_scene
from training import statistics
from training.models import ModelVersion, Prediction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_segmentation_models_statistics_and_its_masks_in_model_assist(page, live_server):
    from tests.conftest import client_for
    from tests.training.conftest import annotate_rings
    from tests.training.test_segmentation import TINY

    user = UserFactory(username="painter")
    project = make_project(owner=user, name="Rings")
    api = client_for(user)
    annotate_rings(api, project, user, range(12))
    trained = api.post(
        f"/api/projects/{project.id}/training-jobs/",
        {"task": "semantic-segmentation", "name": "rings", "parameters": {**TINY, "epochs": 3}},
        format="json",
    )
    assert trained.status_code == 201, trained.content  # in tests the job runs inside this request
    model = ModelVersion.objects.get(name="rings")
    stats = api.get(f"/api/models/{model.id}/statistics/").json()

    login(page, live_server, "painter")
    page.goto(f"{live_server.url}/projects/{project.id}/models/{model.id}/")
    assert page.text_content("#miou") == f"{stats['miou']:.4f}"
    assert page.text_content("#pixel-accuracy") == f"{stats['pixel_accuracy']:.4f}"
    headers = page.locator("#confusion thead th").all_text_contents()
    assert headers == ["true \\ predicted", "background", "ring", "square"]
    assert page.locator("#per-class tbody tr").count() == 3
    assert page.locator("figure.chart figcaption").all_text_contents() == ["Validation mIoU", "Training loss"]
    shot(page, "segmentation-statistics")

    png, *_ = ring_scene(700)
    [image] = images_upload(project=project, user=user, files=[SimpleUploadedFile("new.png", png)], labels=[]).stored
    page.goto(f"{live_server.url}/projects/{project.id}/images/{image.id}/label/")
    page.wait_for_selector("body[data-labeler-ready=true]")
    assert page.input_value("#assist-model") == f"{model.id}:best"
    page.evaluate("() => window.sightline.assist.setThreshold(0.05)")
    with page.expect_response(f"**/api/images/{image.id}/predictions/"):
        page.keyboard.press("m")
    page.wait_for_function("() => window.sightline.assist.loads === 1")
    stored = list(Prediction.objects.filter(image=image).order_by("-score", "id"))
    assert stored and {p.kind for p in stored} == {"mask"}
    assert page.evaluate("window.sightline.assist.shown().map(s => s.id)") == [p.id for p in stored]
    shot(page, "segmentation-assist")

    # A mask suggestion's pixels as the labeler reads COCO's column-major runs: here one run wraps from the foot of
    # column 1 to the top of column 2, so the mask's top is row 0 although column 1's part starts at row 3.
    known = np.zeros((5, 4), bool)
    known[3:5, 1], known[0:2, 2], known[4, 3] = True, True, True
    read = page.evaluate(
        """async (rle) => { const { MaskSuggestion } = await import("/static/labeler/assist.js");
             const mask = new MaskSuggestion(rle), covered = [];
             for (let y = 0; y < 5; y++) for (let x = 0; x < 4; x++) covered.push(mask.covers(x + 0.5, y + 0.5));
             return { area: mask.area, left: mask.left, top: mask.top, covered,
                      outside: [mask.covers(-1, 0), mask.covers(4, 0), mask.covers(0, 5)] }; }""",
        encode_mask(known),
    )
    assert (read["area"], read["left"], read["top"]) == (5, 1, 0)
    assert read["covered"] == known.ravel().tolist() and read["outside"] == [False, False, False]

    # A click on the pixel deepest inside the largest mask selects that mask, and Space commits it.
    chosen = max(stored, key=lambda p: decode_mask(p.geometry["rle"]).sum())
    mask = decode_mask(chosen.geometry["rle"]).astype(np.uint8)
    depth = cv2.distanceTransform(np.pad(mask, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    row, column = np.unravel_index(int(depth.argmax()), depth.shape)
    point = page.evaluate(
        """([x, y]) => { const r = window.sightline.renderer, c = r.canvas.getBoundingClientRect();
                         return [c.left + r.view.x + x * r.view.scale, c.top + r.view.y + y * r.view.scale]; }""",
        [float(column) + 0.5, float(row) + 0.5],
    )
    page.mouse.click(*point)
    assert page.evaluate("[...window.sightline.assist.selected]") == [chosen.id]
    with page.expect_response(f"**/api/images/{image.id}/predictions/accept/"):
        page.keyboard.press(" ")
    page.wait_for_load_state("networkidle")
    [annotation] = Annotation.objects.filter(image=image)
    assert (annotation.kind, annotation.label_id, annotation.geometry) == ("mask", chosen.label_id, chosen.geometry)
    assert annotation.source == "prediction" and annotation.score == pytest.approx(chosen.score)

    # ML Mode's two heads (spec 004), both on by default, train one model: its detection head learns the rings'
    # boxes from their polygons, its segmentation head the squares' pixels from the painted masks. Predict Current
    # shows both kinds of suggestion greyed.
    page.click("#ml-mode-toggle")
    page.click("#ml-settings")
    form = "#ml-settings-form"
    assert page.is_checked(f"{form} [name=detection_head]") and page.is_checked(f"{form} [name=segmentation_head]")
    # Not this image: its one committed mask would be its label's only painted image, which a head cannot validate.
    page.wait_for_selector("#ml-images-list li")
    page.uncheck(f"#ml-images-list input[value='{image.id}']")
    page.fill(f"{form} [name=name]", "both")
    page.fill(f"{form} [name=epochs]", "6")
    page.fill(f"{form} [name=batch_size]", "4")
    page.select_option(f"{form} [name=image_size]", "224")
    page.click("#ml-settings-save")
    page.click("#ml-train")  # in tests the job runs inside this request; the panel then polls it
    page.wait_for_function(
        "() => document.getElementById('ml-status').textContent === 'Trained ✓ (both)'", timeout=60_000
    )
    both = ModelVersion.objects.get(name="both")
    assert (both.task, both.segmentation_head, both.epochs_trained, both.image_size) == ("detection", True, 6, 224)
    assert both.job.parameters["learn_from"] == "all"  # each head learns from its own kinds
    assert not both.dataset_version.items.filter(image=image).exists()
    assert page.evaluate("() => window.sightline.assist.choice") == f"{both.id}:best"
    page.eval_on_selector("#ml-threshold", "(el) => { el.value = '0.1'; el.dispatchEvent(new Event('input')); }")
    loads = page.evaluate("window.sightline.assist.loads")
    with page.expect_response(lambda r: r.url.endswith("/predictions/") and r.request.method == "POST"):
        page.click("#ml-predict")
    page.wait_for_function(f"() => window.sightline.assist.loads > {loads}")
    stored = Prediction.objects.filter(image=image, model_version=both, score__gte=0.1)
    shown = page.evaluate("window.sightline.assist.shown().map(s => [s.id, s.kind, s.label_name])")
    assert sorted(shown) == sorted([p.id, p.kind, p.label.name] for p in stored)
    assert ["mask", "square"] in [row[1:] for row in shown] and "box" in [row[1] for row in shown]
    shot(page, "ml-mode-two-heads")
    page.wait_for_load_state("networkidle")

    # Its page: the detector's statistics, then the segmentation head's; Make a new prediction draws both.
    pixels = statistics.segmentation_statistics(model=both, checkpoint="best", split="valid")
    page.goto(f"{live_server.url}/projects/{project.id}/models/{both.id}/")
    assert page.text_content("h1 .muted") == "object detection with a segmentation head"
    assert page.text_content("#segmentation-head #miou") == f"{pixels['miou']:.4f}"
    headers = page.locator("#pixel-confusion thead th").all_text_contents()
    assert headers == ["true \\ predicted", "background", "ring", "square"]
    assert page.locator("figure.chart figcaption").first.text_content() == "Validation mAP and mIoU"
    shot(page, "two-heads-statistics")
    page.goto(f"{live_server.url}/projects/{project.id}/predict/?model={both.id}")
    page.set_input_files("input[name=file]", files=[{"name": "new.png", "mimeType": "image/png", "buffer": png}])
    page.click("#predict-form button.primary")
    page.wait_for_selector(".predicted-boxes svg image")
    page.wait_for_load_state("load")
    assert page.text_content("#results h2") == "Boxes and masks found by both"
    painted = page.locator("g.pixels").evaluate_all("masks => masks.map(m => m.dataset.label)")
    assert "square" in painted and page.locator("g.pixels image.mask-picture").count() == len(painted)
    assert (
        page.locator(".mask-count").text_content() == f"{len(painted)} label{'' if len(painted) == 1 else 's'} painted"
    )
    page.fill("#mask-opacity", "0.2")
    page.dispatch_event("#mask-opacity", "input")
    assert page.eval_on_selector("figure.predicted-masks", "f => f.style.getPropertyValue('--mask-opacity')") == "0.2"
    shot(page, "predict-two-heads")
    page.goto(f"{live_server.url}/projects/{project.id}/images/{image.id}/label/")
    page.wait_for_selector("body[data-labeler-ready=true]")

    # Only the segmentation head: a semantic segmentation model of the painted masks. Again not this image: its
    # committed mask is its label's only paint.
    page.click("#ml-settings")
    page.wait_for_selector("#ml-images-list li")
    page.uncheck(f"#ml-images-list input[value='{image.id}']")
    page.uncheck(f"{form} [name=detection_head]")
    page.fill(f"{form} [name=name]", "painted")
    page.fill(f"{form} [name=epochs]", "1")
    page.fill(f"{form} [name=batch_size]", "4")
    page.select_option(f"{form} [name=image_size]", "224")
    page.click("#ml-settings-save")
    page.click("#ml-train")  # in tests the job runs inside this request; the panel then polls it
    page.wait_for_function("() => document.getElementById('ml-status').textContent === 'Trained ✓ (painted)'")
    painted = ModelVersion.objects.get(name="painted")
    assert (painted.task, painted.epochs_trained, painted.image_size) == ("semantic-segmentation", 1, 224)
    assert (painted.job.parameters["learn_from"], [label["name"] for label in painted.dataset_version.labels]) == (
        "painted",
        ["square"],
    )
    assert page.evaluate("() => window.sightline.assist.choice") == f"{painted.id}:best"
    assert page.input_value("#assist-model") == f"{painted.id}:best"
    page.wait_for_load_state("networkidle")


def test_an_instance_segmentation_models_statistics_and_gallery(page, live_server):
    """Its page shows COCOeval's mask mAP and the precision-recall chart; its gallery draws each object's mask over
    its crop."""
    from tests.conftest import client_for
    from tests.training.conftest import annotate_rings
    from tests.training.test_instances import TINY

    user = UserFactory(username="outliner")
    project = make_project(owner=user, name="Objects")
    api = client_for(user)
    annotate_rings(api, project, user, range(12))
    trained = api.post(
        f"/api/projects/{project.id}/training-jobs/",
        {"task": "instance-segmentation", "name": "objects", "parameters": TINY},
        format="json",
    )
    assert trained.status_code == 201, trained.content
    model = ModelVersion.objects.get(name="objects")
    stats = api.get(f"/api/models/{model.id}/statistics/").json()

    login(page, live_server, "outliner")
    page.goto(f"{live_server.url}/projects/{project.id}/models/{model.id}/")
    assert page.text_content("#map50") == f"{stats['map50']:.4f}"
    assert "mask mAP@0.5" in page.text_content("#statistics")
    assert page.locator("figure.chart figcaption", has_text="Precision-recall: all labels").count() == 1
    shot(page, "instances-statistics")

    page.click("#gallery-link")
    page.wait_for_selector("#gallery-summary")
    tiles = page.locator(".gallery-grid .tile").count()
    assert tiles > 0 and page.locator(".gallery-grid image.mask-picture").count() == tiles
    assert "between the predicted mask and a true one" in page.text_content("#gallery-summary")
    shot(page, "instances-gallery")
    page.wait_for_load_state("networkidle")
