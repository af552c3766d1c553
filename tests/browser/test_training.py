"""Training in Chromium: start from the form, watch the job page update itself, read the statistics, set thresholds."""

import os

import pytest

from projects.models import Image
from tests.factories import UserFactory, make_project
from tests.training.conftest import colour_png, shapes_png, upload
from training.models import ModelVersion, TrainingJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
SHOTS = os.environ.get("SIGHTLINE_SCREENSHOTS")  # a folder to keep screenshots in, for a person to look at


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def login(page, live_server, username):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/")


def fast_settings(page):
    page.fill("input[name=epochs]", "3")
    page.click("summary:has-text('Advanced parameters')")
    page.fill("input[name=batch_size]", "8")
    page.fill("input[name=learning_rate]", "0.01")
    page.select_option("select[name=fine_tune]", "head")


def test_train_from_the_form_and_read_the_statistics(page, live_server):
    user = UserFactory(username="trainer")
    project = make_project(owner=user, name="Colours")
    upload(project, user, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(12)], ["red"])
    upload(project, user, [(f"blue{i}.png", colour_png((30, 30, 220), 100 + i)) for i in range(12)], ["blue"])
    login(page, live_server, "trainer")
    page.goto(f"{live_server.url}/projects/{project.id}/")
    page.click("#models-link")
    page.fill("input[name=name]", "colours")
    fast_settings(page)
    shot(page, "train-form")
    page.click("#train-form button[type=submit]")  # in tests the job runs inside this request
    page.wait_for_selector("#model-link")
    assert page.text_content("#job-status") == "finished"
    assert page.locator("#job-progress svg").count() == 2
    shot(page, "job-finished")
    page.click("#model-link")
    page.wait_for_selector("#confusion")
    page.wait_for_load_state("load")  # htmx and the page's modules are deferred: bound only once parsing ends
    assert page.text_content("#accuracy") == "1.0000"
    assert page.locator("#confusion td.diagonal").all_text_contents() == ["2", "2"]
    shot(page, "statistics-single")
    page.select_option("select[name=split]", "train")  # htmx redraws the statistics and pushes the URL
    page.wait_for_url("**split=train**")
    page.wait_for_function("() => document.querySelector('#summary strong').textContent === '20'")
    page.click("#show-predictions")
    page.wait_for_selector("#gallery")
    assert page.locator("#gallery .tile").count() == 20
    page.goto(f"{live_server.url}/projects/{project.id}/models/{ModelVersion.objects.get().id}/")
    page.click("#switch-checkpoint")
    page.wait_for_selector("#predict-with:has-text('last')")
    assert ModelVersion.objects.get().predict_with == "last"
    # The offline model is a job: Prepare starts it (in tests it runs inside the request), then it downloads.
    page.click("#bundle-prepare")
    page.wait_for_selector("#bundle-download", timeout=120_000)
    href = page.get_attribute("#bundle-download", "href")
    download = page.request.get(f"{live_server.url}{href}")
    assert (download.status, download.headers["content-type"]) == (200, "application/zip")
    # An image predicted through the SeeMe API (a script's) is counted on the model's page, with its answer.
    import requests

    from accounts.services import token_get_or_create

    model = ModelVersion.objects.get()
    answer = requests.post(
        f"{live_server.url}/api/v1/inferences/{model.id}",
        files={"file": ("red-new.png", colour_png((220, 30, 30), 999))},
        headers={"Authorization": f"trainer:{token_get_or_create(user=user).key}"},
    ).json()
    assert (answer["prediction"], answer["name"]) == ("red", "red-new.png")
    page.goto(f"{live_server.url}/projects/{project.id}/models/{model.id}/")
    assert page.text_content("#inference-count") == "1"
    cells = page.locator("#inference-latest tbody td").all_text_contents()
    assert (cells[1], cells[2], cells[3], cells[4]) == ("trainer", "red-new.png", "red", f"{answer['confidence']:.3f}")
    shot(page, "model-inferences")


def test_the_job_page_follows_a_running_job_until_it_ends(page, live_server, monkeypatch):
    user = UserFactory(username="watcher")
    project = make_project(owner=user, name="Colours")
    upload(project, user, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(4)], ["red"])
    upload(project, user, [(f"blue{i}.png", colour_png((30, 30, 220), 100 + i)) for i in range(4)], ["blue"])
    from jobs import services as jobs
    from training import services

    monkeypatch.setattr(jobs, "_enqueue", lambda job_id, kind: None)  # this test plays the worker itself
    job = services.training_job_start(project=project, user=user, task="classification")
    TrainingJob.objects.filter(pk=job.pk).update(status="running", epoch=2, progress=0.3, loss=0.5)
    login(page, live_server, "watcher")
    page.goto(f"{live_server.url}/projects/{project.id}/training/{job.pk}/")
    assert page.get_attribute("#job-bar", "value") == "0.3"
    # The worker reports a later epoch: the page shows it without a reload.
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "valid_loss": 1.2 / e,
            "train_accuracy": 0.5 + e / 10,
            "valid_accuracy": 0.45 + e / 10,
            "learning_rate": 0.001,
            "seconds": 1.0,
        }
        for e in (1, 2, 3)
    ]
    TrainingJob.objects.filter(pk=job.pk).update(epoch=3, progress=0.6, loss=0.2, history=history, best_epoch=3)
    page.wait_for_function("() => document.getElementById('job-bar').value === 0.6", timeout=10_000)
    assert "epoch 3 of 6" in page.text_content("#job-progress")
    assert page.locator("#model-link").count() == 0
    assert page.locator("#job-progress svg").count() == 2
    shot(page, "job-running")
    page.click("#cancel-job")
    page.wait_for_selector("text=stopping")
    assert TrainingJob.objects.get(pk=job.pk).cancel_requested is True
    TrainingJob.objects.filter(pk=job.pk).update(status="failed", error="The worker ran out of memory.")
    page.wait_for_selector("#job-error", timeout=10_000)
    assert page.text_content("#job-error") == "The worker ran out of memory."


def test_clicking_the_precision_recall_curve_sets_thresholds(page, live_server):
    user = UserFactory(username="tuner")
    project = make_project(owner=user, name="Scenes")
    kinds = ["bar", "disc", "square"]
    for mask in range(8):
        chosen = [k for bit, k in enumerate(kinds) if mask >> bit & 1]
        upload(project, user, [(f"s{mask}-{i}.png", shapes_png(set(chosen), mask * 10 + i)) for i in range(6)], chosen)
    login(page, live_server, "tuner")
    page.goto(f"{live_server.url}/projects/{project.id}/models/")
    page.check("input[name=kind][value=multi]")
    fast_settings(page)
    page.click("#train-form button[type=submit]")
    page.click("#model-link")
    page.wait_for_selector("#thresholds-form")
    page.wait_for_load_state("load")  # the curve's module script is deferred: it listens only once parsing ends
    shot(page, "statistics-multi")
    page.locator("svg.clickable").scroll_into_view_if_needed()  # as a person would, on a smaller screen
    box = page.locator("svg.clickable").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3)  # somewhere on the curve
    page.wait_for_url("**thresholds=**")
    values = page.locator("input[name=threshold]").evaluate_all("inputs => inputs.map(i => i.value)")
    assert len(set(values)) == 1  # the "all labels" curve sets one threshold for every label
    page.click("#thresholds-form button.primary")
    shot(page, "thresholds-saved")
    page.wait_for_selector("text=Thresholds saved")
    model = ModelVersion.objects.get()
    assert model.thresholds["best"] == [float(values[0])] * 3
    assert Image.objects.filter(project=project).count() == 43  # the empty scene's six copies are one image


def test_the_labeler_adds_its_image_to_the_validation_set(page, live_server):
    user = UserFactory(username="marker")
    project = make_project(owner=user, name="Colours")
    [image] = upload(project, user, [("red.png", colour_png((220, 30, 30), 1))], ["red"])
    login(page, live_server, "marker")
    page.goto(f"{live_server.url}/projects/{project.id}/images/{image.id}/label/")
    with page.expect_response(f"**/api/images/{image.id}/") as saved:
        page.check("#in-validation")
    assert saved.value.status == 200
    assert Image.objects.get(pk=image.pk).is_validation is True
    with page.expect_response(f"**/api/images/{image.id}/"):
        page.uncheck("#in-validation")
    page.reload()
    assert page.is_checked("#in-validation") is False


def test_train_a_detector_from_the_form_read_its_statistics_and_set_thresholds(page, live_server):
    from tests.conftest import client_for
    from tests.training.test_detection import annotate_scenes
    from training import galleries, statistics

    user = UserFactory(username="detective")
    project = make_project(owner=user, name="Shapes")
    annotate_scenes(client_for(user), project, user, range(16))
    login(page, live_server, "detective")
    page.goto(f"{live_server.url}/projects/{project.id}/models/")
    page.click("#task-tabs a:has-text('Object detection')")
    page.wait_for_selector("#detection-note")
    page.fill("input[name=name]", "shapes")
    page.fill("input[name=epochs]", "2")
    page.select_option("select[name=model_size]", "small")
    page.click("summary:has-text('Advanced parameters')")
    page.select_option("select[name=image_size]", "224")
    page.fill("input[name=batch_size]", "4")
    shot(page, "train-form-detection")
    page.click("#train-form button[type=submit]")  # in tests the job runs inside this request
    page.wait_for_selector("#model-link")
    assert page.text_content("#job-status") == "finished"
    assert "object detection (small)" in page.text_content("#job-progress")
    legends = [legend.locator("span").all_text_contents() for legend in page.locator("#job-progress .legend").all()]
    best = f"best model: epoch {TrainingJob.objects.get().best_epoch}"
    assert legends == [
        ["mAP@0.5", "mAP@[.5:.95]", best],
        ["total", "box ctrness", "box regression", "classification", best],
    ]
    shot(page, "job-finished-detection")
    page.click("#model-link")
    page.wait_for_selector("#map50")
    page.wait_for_load_state("load")
    model = ModelVersion.objects.get()
    assert page.text_content("#map50") == f"{model.metrics['best']['valid']['map50']:.4f}"
    shot(page, "statistics-detection")
    page.locator("svg.clickable").scroll_into_view_if_needed()
    box = page.locator("svg.clickable").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3)
    page.wait_for_url("**thresholds=**")
    values = page.locator("input[name=threshold]").evaluate_all("inputs => inputs.map(i => i.value)")
    page.click("#thresholds-form button.primary")
    page.wait_for_selector("text=Thresholds saved")
    model.refresh_from_db()
    assert model.thresholds["best"] == [float(values[0])] * 3

    # Show predictions: each validation image with its true boxes dashed and the predicted ones solid.
    page.click("#show-predictions")
    page.wait_for_selector(".detection-predictions")
    rows = statistics.detection_predictions(model=model, checkpoint="best", split="valid")
    assert page.locator(".detection-predictions li.tile").count() == len(rows)
    assert page.locator("rect.predicted").count() == sum(len(row["boxes"]) for row in rows)
    shot(page, "predictions-detection")
    page.go_back()

    # The gallery: the Missing tab holds the boxes predicted with nothing there; one opens in the labeler.

    page.click("#gallery-link")
    page.click("#gallery-tabs a:has-text('Missing')")
    page.wait_for_url("**tab=missing**")
    missing = galleries.gallery(model=model, checkpoint="best", split="valid", tab="missing", label=0)["items"]
    assert page.locator("#gallery-summary").text_content().split()[0] == str(len(missing))
    page.select_option("select[name=split]", "train")  # the selects submit their form
    page.wait_for_url("**split=train**")
    page.click("#gallery-tabs a:has-text('All')")
    page.wait_for_url("**tab=all**")
    shot(page, "gallery-detection")
    page.locator(".gallery-grid li a").first.click()
    page.wait_for_selector("body[data-labeler-ready=true]")

    # Make a new prediction: the boxes drawn on the image, and a slider that hides those below its score.
    from tests.training.scenes import scene

    page.goto(f"{live_server.url}/projects/{project.id}/predict/")
    page.set_input_files(
        "input[name=file]", files=[{"name": "new.png", "mimeType": "image/png", "buffer": scene(321)[0]}]
    )
    page.click("#predict-form button.primary")
    page.wait_for_selector(".predicted-boxes svg image")
    page.wait_for_load_state("load")
    scores = [float(v) for v in page.locator("g.box").evaluate_all("boxes => boxes.map(b => b.dataset.score)")]
    assert scores and min(scores) >= 0.05
    expected = sum(score >= 0.3 for score in scores)
    assert page.locator(".box-count").text_content() == f"{expected} box{'' if expected == 1 else 'es'}"
    shot(page, "predict-detection")
    page.fill("#box-threshold", "1")  # the range input's value, as dragging it to the end sets it
    page.dispatch_event("#box-threshold", "input")
    assert page.locator(".box-count").text_content() == "0 boxes"
    assert page.locator("g.box:not(.hidden)").count() == 0

    # Predict the grid's selection: a job, whose stored boxes the page then draws on each image.
    from training.models import Prediction

    page.goto(f"{live_server.url}/projects/{project.id}/")
    page.check("#select-page")
    page.click("#predict-selected")
    page.wait_for_selector("text=16 images chosen in the grid")
    page.click("#predict-form button.primary")  # in tests the job runs inside this request
    page.wait_for_url("**/predict/?job=**")
    page.wait_for_selector("#prediction-phase")
    assert page.text_content("#prediction-phase").startswith("Predicted 16 images with shapes,")
    assert page.locator("figure.predicted-boxes").count() == 16
    assert page.locator("g.box").count() == Prediction.objects.count() > 0
    shot(page, "predict-selected-detection")
