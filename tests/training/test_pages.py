"""Training pages: the form starts a job, the job page polls, statistics draw, predictions show, grid buttons."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job
from projects.files import stored_bytes
from projects.models import Image, Role
from projects.services import membership_grant
from tests.factories import UserFactory
from tests.training.conftest import FAST, colour_png
from training import predictions
from training.models import ModelVersion, Prediction, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser_client(client, user):
    client.force_login(user)
    return client


def form_start(client, project, capture, **fields):
    data = {
        "kind": "single",
        "name": "colours",
        **{k: v for k, v in FAST.items() if k != "fine_tune"},
        "fine_tune": FAST["fine_tune"],
        "pretrained": "on",
        **fields,
    }
    with capture(execute=True):
        return client.post(f"/projects/{project.id}/models/", data)


def test_the_form_starts_a_job_and_its_page_shows_curves_and_the_model(
    browser_client, colours_project, django_capture_on_commit_callbacks
):
    page = browser_client.get(f"/projects/{colours_project.id}/models/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="epochs" value="6"' in html and 'name="image_size"' in html and "Advanced parameters" in html
    response = form_start(browser_client, colours_project, django_capture_on_commit_callbacks)
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response.url == f"/projects/{colours_project.id}/training/{job.id}/"
    assert (job.status, job.parameters["epochs"], job.parameters["multi_label"]) == ("finished", 3, False)
    page = browser_client.get(response.url).content.decode()
    assert "View training statistics of colours" in page
    assert page.count("<svg") == 2  # loss and accuracy curves
    assert 'class="marker"' in page  # the red line at the best epoch
    assert "hx-trigger" not in page.split('id="job-progress"')[1].split(">")[0]  # finished: no more polling


def test_a_running_job_polls_and_offers_stop(browser_client, colours_project, django_capture_on_commit_callbacks):
    form_start(browser_client, colours_project, django_capture_on_commit_callbacks)
    job = TrainingJob.objects.get()
    TrainingJob.objects.filter(pk=job.pk).update(status="running", epoch=1, progress=0.4, loss=0.25, eta_seconds=30)
    partial = browser_client.get(
        f"/projects/{colours_project.id}/training/{job.id}/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert partial.startswith('\n<section class="card" id="job-progress"')
    assert 'hx-trigger="every 2s"' in partial
    assert (
        'value="0.4"' in partial
        and "epoch 1 of 3" in partial
        and "loss 0.2500" in partial
        and "about 30 s left" in partial
    )
    assert "Stop (keeps the best model so far)" in partial
    table = browser_client.get(f"/projects/{colours_project.id}/models/", HTTP_HX_REQUEST="true").content.decode()
    assert table.lstrip().startswith('<section class="card grow" id="jobs" hx-get=')  # polls while a job runs
    assert 'value="0.4"' in table and "epoch 1/3" in table
    browser_client.post(f"/projects/{colours_project.id}/training/{job.id}/cancel/")
    assert TrainingJob.objects.get().cancel_requested is True


def test_form_errors_are_shown_and_nothing_starts(browser_client, colours_project, django_capture_on_commit_callbacks):
    response = form_start(browser_client, colours_project, django_capture_on_commit_callbacks, epochs="0")
    assert response.status_code == 200
    assert "epochs: Must be from 1 to 500." in response.content.decode()
    assert TrainingJob.objects.count() == 0


def test_statistics_pages_draw_a_confusion_matrix_and_predictions(
    browser_client, colours_project, django_capture_on_commit_callbacks
):
    form_start(browser_client, colours_project, django_capture_on_commit_callbacks)
    model = ModelVersion.objects.get()
    html = browser_client.get(f"/projects/{colours_project.id}/models/{model.id}/").content.decode()
    assert 'id="confusion"' in html and "true \\ predicted" in html
    assert re.search(r'<strong id="accuracy">1\.0000</strong>', html)
    partial = browser_client.get(
        f"/projects/{colours_project.id}/models/{model.id}/?split=train&checkpoint=last", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert partial.lstrip().startswith('<section class="card" id="statistics">')
    page = browser_client.get(
        f"/projects/{colours_project.id}/models/{model.id}/predictions/?view=advanced"
    ).content.decode()
    gallery = page.split('id="gallery"')[1]
    assert gallery.count('class="tile ') == 4
    assert gallery.count("chip truth") == 4 and gallery.count("chip other") == 4  # advanced: both labels per image
    wrong = browser_client.get(
        f"/projects/{colours_project.id}/models/{model.id}/predictions/?show=wrong"
    ).content.decode()
    assert "No images here." in wrong


def test_predict_page_predicts_uploads_and_images_chosen_in_the_grid(
    browser_client, colours_project, django_capture_on_commit_callbacks
):
    form_start(browser_client, colours_project, django_capture_on_commit_callbacks)
    model = ModelVersion.objects.get()
    upload = SimpleUploadedFile("new-red.png", colour_png((220, 30, 30), 77))
    html = browser_client.post(
        f"/projects/{colours_project.id}/predict/", {"model": model.id, "file": upload, "predict": "1"}
    ).content.decode()
    assert "new-red.png" in html
    assert re.search(r'<li class="positive">red <strong>\d+%</strong>', html)
    chosen = Image.objects.filter(name__in=["blue3.png", "red3.png"]).order_by("id")
    # The grid's "Predict selected" posts the ids (no token in any URL) and shows them, ready to predict.
    page = browser_client.post(
        f"/projects/{colours_project.id}/predict/", {"image": [i.id for i in chosen]}
    ).content.decode()
    assert "2 images chosen in the grid" in page and '<ol class="predictions">' not in page
    # Predicting them runs as a job, which stores each label's score; the page then shows them ranked.
    with django_capture_on_commit_callbacks(execute=True):
        started = browser_client.post(
            f"/projects/{colours_project.id}/predict/",
            {"model": model.id, "image": [i.id for i in chosen], "predict": "1"},
        )
    job = Job.objects.get(kind="prediction")
    assert started["Location"] == f"/projects/{colours_project.id}/predict/?job={job.id}"
    assert (job.status, job.phase) == ("finished", "Predicted 2 images with colours.")
    expected = predictions.images_predict(
        model=model, checkpoint="best", images=[stored_bytes(i.file.name) for i in chosen]
    )
    for image, ranked in zip(chosen, expected, strict=True):
        stored = Prediction.objects.filter(image=image).select_related("label").order_by("-score")
        assert [(p.kind, p.label.name, p.score) for p in stored] == [("label", r["label"], r["score"]) for r in ranked]
    html = browser_client.get(started["Location"]).content.decode()
    assert re.search(r'red3\.png</span>\s*<ol class="predictions">\s*<li class="positive">red', html)
    assert re.search(r'blue3\.png</span>\s*<ol class="predictions">\s*<li class="positive">blue', html)
    bad = browser_client.post(
        f"/projects/{colours_project.id}/predict/",
        {"model": model.id, "file": SimpleUploadedFile("x.png", b"nope"), "predict": "1"},
    ).content.decode()
    assert "This is not an image file Sightline can read." in bad


def test_predict_selected_defaults_to_the_model_the_user_came_from(
    browser_client, colours_project, django_capture_on_commit_callbacks
):
    form_start(browser_client, colours_project, django_capture_on_commit_callbacks)
    first = ModelVersion.objects.get()
    second = ModelVersion.objects.get()  # a copy of it with its own job, made later: the newest model
    job = second.job
    job.pk = job.id = None
    job.save()
    second.pk, second.name, second.job = None, "newer", job
    second.save()
    chosen = list(Image.objects.filter(project=colours_project).values_list("id", flat=True)[:2])
    page = browser_client.post(f"/projects/{colours_project.id}/predict/", {"image": chosen}).content.decode()
    assert f'<option value="{second.id}" selected>' in page  # nothing viewed yet: the newest model
    browser_client.get(f"/projects/{colours_project.id}/models/{first.id}/")
    page = browser_client.post(f"/projects/{colours_project.id}/predict/", {"image": chosen}).content.decode()
    assert f'<option value="{first.id}" selected>' in page


def test_the_grid_adds_and_removes_images_from_the_validation_set(browser_client, colours_project):
    ids = list(Image.objects.filter(name__in=["red1.png", "blue1.png"]).values_list("id", flat=True))
    response = browser_client.post(
        f"/projects/{colours_project.id}/images/validation/", {"image": ids, "validation": "add"}
    )
    assert response.status_code == 302
    assert Image.objects.filter(is_validation=True).count() == 2
    grid = browser_client.get(f"/projects/{colours_project.id}/").content.decode()
    assert grid.count('<span class="badge"') == 2 and 'id="predict-selected"' in grid and 'id="models-link"' in grid
    browser_client.post(
        f"/projects/{colours_project.id}/images/validation/", {"image": ids[:1], "validation": "remove"}
    )
    assert list(Image.objects.filter(is_validation=True).values_list("id", flat=True)) == ids[1:]


def test_a_viewer_sees_statistics_but_not_the_training_form_or_predict(
    client, user, colours_project, django_capture_on_commit_callbacks
):
    viewer = UserFactory()
    membership_grant(project=colours_project, email=viewer.email, role=Role.objects.get(name="Viewer"))
    client.force_login(user)
    form_start(client, colours_project, django_capture_on_commit_callbacks)
    model = ModelVersion.objects.get()
    client.force_login(viewer)
    page = client.get(f"/projects/{colours_project.id}/models/").content.decode()
    assert 'id="train-form"' not in page and "colours" in page
    assert client.post(f"/projects/{colours_project.id}/models/", {"kind": "single"}).status_code == 403
    assert client.get(f"/projects/{colours_project.id}/models/{model.id}/").status_code == 200
    assert client.get(f"/projects/{colours_project.id}/predict/").status_code == 403
    assert (
        client.post(
            f"/projects/{colours_project.id}/images/validation/", {"image": [1], "validation": "add"}
        ).status_code
        == 403
    )
    assert TrainingJob.objects.count() == 1 and not Image.objects.filter(is_validation=True).exists()


def test_a_label_named_all_has_its_own_precision_recall_curve(browser_client, user, django_capture_on_commit_callbacks):
    from tests.factories import make_project
    from tests.training.conftest import upload

    project = make_project(owner=user, name="Odd names")
    upload(project, user, [(f"r{i}.png", colour_png((220, 30, 30), i)) for i in range(6)], ["all", "red"])
    upload(project, user, [(f"b{i}.png", colour_png((30, 30, 220), 50 + i)) for i in range(6)], ["all"])
    form_start(browser_client, project, django_capture_on_commit_callbacks, kind="multi", name="odd")
    model = ModelVersion.objects.get()
    assert model.labels == ["all", "red"]
    overall = browser_client.get(f"/projects/{project.id}/models/{model.id}/?curve=all").content.decode()
    label = browser_client.get(f"/projects/{project.id}/models/{model.id}/?curve=0").content.decode()
    assert "Precision-recall: all labels" in overall and 'data-curve="all"' in overall
    assert "Precision-recall: all</figcaption>" in label and 'data-curve="0"' in label
