"""Model Assist in Chromium: pick a detector, press M, and greyed suggestions appear; the slider hides the low
scores; a click and Space commit one, S the rest; after a reload they are annotations. Predict and Clear."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.models import Annotation
from projects.uploads import images_upload
from tests.browser.test_training import login, shot
from tests.factories import UserFactory, make_project
from tests.training.scenes import scene
from tests.training.test_model_load import loadable
from training.models import ModelVersion, Prediction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SHOWN = "window.sightline.assist.shown().map(s => s.id)"


def _slide(page, value: float) -> None:
    page.eval_on_selector(
        "#assist-threshold", "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }", value
    )


def test_model_assist_suggests_boxes_that_a_click_space_and_s_commit(page, live_server):
    from tests.conftest import client_for
    from tests.training.test_detection import TINY, annotate_scenes

    user = UserFactory(username="assisted")
    project = make_project(owner=user, name="Shapes")
    api = client_for(user)
    annotate_scenes(api, project, user, range(16))
    trained = api.post(
        f"/api/projects/{project.id}/training-jobs/",
        {"task": "detection", "name": "shapes", "parameters": TINY},
        format="json",
    )
    assert trained.status_code == 201, trained.content  # in tests the job runs inside this request
    model = ModelVersion.objects.get(name="shapes")
    png, _ = scene(800, objects=(3, 5))
    [image] = images_upload(project=project, user=user, files=[SimpleUploadedFile("new.png", png)], labels=[]).stored
    # The image after it in the labeler's walk (newest first), with suggestions stored beforehand.
    neighbour = project.images.filter(pk__lt=image.pk).order_by("-pk").first()
    assert api.post(f"/api/images/{neighbour.id}/predictions/", {"model": model.id}, format="json").status_code == 200

    login(page, live_server, "assisted")
    page.goto(f"{live_server.url}/projects/{project.id}/images/{image.id}/label/")
    page.wait_for_selector("body[data-labeler-ready=true]")
    assert page.input_value("#assist-model") == f"{model.id}:best"
    # M: none stored yet, so the model predicts this image now; the suggestions are drawn greyed.
    with page.expect_response(f"**/api/images/{image.id}/predictions/") as predicted:
        page.keyboard.press("m")
    assert predicted.value.request.method == "POST"
    page.wait_for_function("() => window.sightline.assist.loads === 1")
    stored = list(Prediction.objects.filter(image=image).order_by("-score", "id"))
    assert len(stored) >= 4
    assert page.evaluate(SHOWN) == [p.id for p in stored if p.score >= 0.3]
    # The slider filters here, without asking the server again.
    _slide(page, 0.05)
    assert page.evaluate(SHOWN) == [p.id for p in stored]
    _slide(page, stored[3].score)
    cut = float(page.input_value("#assist-threshold"))  # the slider's steps are 0.01
    shown = [p.id for p in stored if p.score >= cut]
    assert 3 <= len(shown) < len(stored)
    assert page.evaluate(SHOWN) == shown
    shot(page, "assist-suggestions")

    # A click on the smallest shown box selects it; Space commits it.
    smallest = min((p for p in stored if p.id in shown), key=lambda p: p.geometry["width"] * p.geometry["height"])
    point = page.evaluate(
        """(g) => { const r = window.sightline.renderer, c = r.canvas.getBoundingClientRect();
                    return [c.left + r.view.x + (g.x + g.width / 2) * r.view.scale,
                            c.top + r.view.y + (g.y + g.height / 2) * r.view.scale]; }""",
        smallest.geometry,
    )
    page.mouse.click(*point)
    assert page.evaluate("[...window.sightline.assist.selected]") == [smallest.id]
    with page.expect_response(f"**/api/images/{image.id}/predictions/accept/"):
        page.keyboard.press(" ")
    page.wait_for_function("() => window.sightline.store.shapes.length === 1")
    [first] = Annotation.objects.filter(image=image)
    assert (first.source, first.score, first.model_version_id) == ("prediction", smallest.score, model.id)
    # S commits every suggestion still shown.
    with page.expect_response(f"**/api/images/{image.id}/predictions/accept/"):
        page.keyboard.press("s")
    page.wait_for_function(f"() => window.sightline.store.shapes.length === {len(shown)}")
    assert page.evaluate(SHOWN) == []
    shot(page, "assist-committed")
    page.reload()
    page.wait_for_selector("body[data-labeler-ready=true]")
    assert page.evaluate("window.sightline.store.shapes.map(s => s.source)") == ["prediction"] * len(shown)
    assert sorted(Annotation.objects.filter(image=image).values_list("score", flat=True)) == sorted(
        p.score for p in stored if p.id in shown
    )
    assert Prediction.objects.filter(image=image).count() == len(stored) - len(shown)

    # Model Assist stayed on across the reload and showed what is left. Predict runs the model again (its
    # suggestions replace the image's); Clear deletes them.
    page.wait_for_function("() => window.sightline.assist.loads === 1")
    assert page.evaluate("window.sightline.assist.suggestions.length") == len(stored) - len(shown)
    with page.expect_response(f"**/api/images/{image.id}/predictions/") as again:
        page.click("#assist-predict")
    assert again.value.request.method == "POST"
    page.wait_for_function("() => window.sightline.assist.loads === 2")
    assert Prediction.objects.filter(image=image).count() == len(stored)
    with page.expect_response(lambda r: "/predictions/?model=" in r.url and r.request.method == "DELETE") as cleared:
        page.click("#assist-clear")
    assert cleared.value.request.method == "DELETE"
    page.wait_for_function("() => window.sightline.assist.suggestions.length === 0")
    assert Prediction.objects.filter(image=image).count() == 0
    assert Annotation.objects.filter(image=image).count() == len(shown)

    # D: the next image. Its annotations came with its page, and its suggestions with the page before.
    page.wait_for_function("() => sessionStorage.getItem('sightline:suggestions-ahead')")
    asked = []
    page.on("request", lambda r: asked.append((r.method, r.url.removeprefix(live_server.url))))
    page.keyboard.press("d")
    page.wait_for_url(f"**/images/{neighbour.id}/label/")
    page.wait_for_selector("body[data-labeler-ready=true]")
    page.wait_for_function("() => window.sightline.assist.loads === 1")
    ahead = Prediction.objects.filter(image=neighbour).order_by("-score", "id")
    assert page.evaluate(SHOWN) == [p.id for p in ahead if p.score >= cut]
    assert page.evaluate("window.sightline.store.shapes.length") == Annotation.objects.filter(image=neighbour).count()
    own = f"/api/images/{neighbour.id}/"
    assert [(m, u) for m, u in asked if u.startswith((f"{own}annotations/", f"{own}predictions/"))] == []
    page.wait_for_load_state("networkidle")  # no request left to race the database's flush after the test


def test_ml_mode_trains_from_its_settings_then_predicts_accepts_and_clears(page, live_server):
    from tests.conftest import client_for
    from tests.training.test_detection import annotate_scenes

    user = UserFactory(username="mlmode")
    project = make_project(owner=user, name="Shapes")
    truth = annotate_scenes(client_for(user), project, user, range(16))
    png, _ = scene(801, objects=(3, 5))
    [image] = images_upload(project=project, user=user, files=[SimpleUploadedFile("new.png", png)], labels=[]).stored
    login(page, live_server, "mlmode")
    page.goto(f"{live_server.url}/projects/{project.id}/images/{image.id}/label/")
    page.wait_for_selector("body[data-labeler-ready=true]")
    page.click("#ml-mode-toggle")
    assert page.is_visible("#ml-panel") and not page.is_visible("#label-side")
    boxes = sum(len(rows) for rows in truth.values())
    stats = [page.text_content(f"#ml-{name}") for name in ("annotated", "annotations", "status")]
    assert stats == ["16", str(boxes), "Not trained"]

    # The gear's settings, with spec 004's defaults, then a small run.
    page.click("#ml-settings")
    form = "#ml-settings-form"
    defaults = [page.input_value(f"{form} [name={n}]") for n in ("epochs", "batch_size", "learning_rate", "image_size")]
    assert defaults == ["50", "8", "0.002", "416"]
    assert [page.input_value(f"{form} [name={n}]") for n in ("confidence", "nms")] == ["0.30", "0.40"]
    assert "tf_efficientnet_lite0 (pretrained on this server)" in page.text_content(f"{form} [name=backbone]")
    # The training images: every labelled one checked (none trained on yet); one taken out.
    page.wait_for_selector("#ml-images-list li")
    states = page.eval_on_selector_all("#ml-images-list input", "boxes => boxes.map(b => [b.dataset.state, b.checked])")
    assert states == [["labeled", True]] * 16 + [["unlabeled", False]]
    assert page.text_content("#ml-images-count") == "16 chosen"
    page.click("#ml-images-list li:first-child input")
    assert page.text_content("#ml-images-count") == "15 chosen"
    page.fill(f"{form} [name=epochs]", "3")
    page.fill(f"{form} [name=batch_size]", "4")
    page.select_option(f"{form} [name=image_size]", "224")
    # Both heads are on by default (spec 004); this model is the detection head alone.
    assert page.is_checked(f"{form} [name=detection_head]") and page.is_checked(f"{form} [name=segmentation_head]")
    page.uncheck(f"{form} [name=segmentation_head]")
    page.click("#ml-settings-save")
    page.click("#ml-train")  # in tests the job runs inside this request; the panel then polls it
    page.wait_for_function("() => document.getElementById('ml-status').textContent.startsWith('Trained')")
    model = ModelVersion.objects.get()
    assert (model.name, model.epochs_trained, model.image_size) == ("ML model 1", 3, 224)
    assert model.dataset_version.items.count() == 15
    assert (model.task, model.segmentation_head, model.job.parameters["learn_from"]) == ("detection", False, "shapes")
    assert page.text_content("#ml-status") == "Trained ✓ (ML model 1)"
    assert page.get_attribute("#ml-save", "href") == f"/projects/{project.id}/models/{model.id}/#bundle"
    shot(page, "ml-mode-trained")

    # Predict Current, at the display threshold; Accept Predictions; Clear Predictions.
    _slide_ml = "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }"
    page.eval_on_selector("#ml-threshold", _slide_ml, 0.1)
    loads = page.evaluate("window.sightline.assist.loads")
    with page.expect_response(lambda r: r.url.endswith("/predictions/") and r.request.method == "POST"):
        page.click("#ml-predict")
    page.wait_for_function(f"() => window.sightline.assist.loads > {loads}")
    stored = list(Prediction.objects.filter(image=image).order_by("-score", "id"))
    shown = [p.id for p in stored if p.score >= 0.1]
    assert shown and page.evaluate(SHOWN) == shown
    shot(page, "ml-mode-predicted")
    with page.expect_response(f"**/api/images/{image.id}/predictions/accept/"):
        page.click("#ml-accept")
    page.wait_for_function(f"() => window.sightline.store.shapes.length === {len(shown)}")
    assert Annotation.objects.filter(image=image, source="prediction").count() == len(shown)
    with page.expect_response(lambda r: "/predictions/?model=" in r.url and r.request.method == "DELETE"):
        page.click("#ml-clear")
    page.wait_for_function("() => window.sightline.assist.suggestions.length === 0")
    assert Prediction.objects.filter(image=image).count() == 0
    # Load Existing Model: a file that is no bundle is refused with the reason; the saved model loads and assists.
    page.set_input_files("#ml-load", files=[{"name": "notes.zip", "mimeType": "application/zip", "buffer": b"no"}])
    page.wait_for_function("() => document.getElementById('ml-load-state').textContent.startsWith('Not loaded')")
    assert page.text_content("#ml-load-state") == (
        "Not loaded: file: This is not a model bundle: load the ZIP that Save Trained Model downloads."
    )
    bundle = {"name": "saved.zip", "mimeType": "application/zip", "buffer": loadable(model)}
    page.set_input_files("#ml-load", files=[bundle])
    page.wait_for_function("() => document.getElementById('ml-load-state').textContent.startsWith('Loaded')")
    loaded = ModelVersion.objects.get(loaded_from="saved.zip")
    assert page.text_content("#ml-load-state") == "Loaded ML model 1 (loaded): Model Assist and Predict Current use it."
    assert page.evaluate("() => window.sightline.assist.choice") == f"{loaded.id}:best"
    # ML Mode survives a reload.
    page.reload()
    page.wait_for_selector("body[data-labeler-ready=true]")
    assert page.is_visible("#ml-panel")
    page.wait_for_function("() => window.sightline.assist.loads === 1")  # ML Mode shows the stored suggestions
    page.wait_for_load_state("networkidle")
