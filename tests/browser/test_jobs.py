"""The project's Jobs page in Chromium: every kind in one list, live progress, Cancel, and quiet when idle."""

import pytest

from jobs import services as jobs
from jobs.models import Job
from tests.browser.test_labeler import login
from tests.factories import UserFactory, make_project
from tests.training.conftest import colour_png, upload
from training import services as training

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_jobs_page_lists_every_kind_follows_progress_and_cancels(page, live_server, monkeypatch):
    monkeypatch.setattr(jobs, "_enqueue", lambda job_id, kind: None)  # this test plays the worker itself
    user = UserFactory(username="operator")
    project = make_project(owner=user, name="Busy")
    upload(project, user, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(4)], ["red"])
    upload(project, user, [(f"blue{i}.png", colour_png((30, 30, 220), 100 + i)) for i in range(4)], ["blue"])
    from annotations.services import transfers

    export = transfers.transfer_start(project=project, user=user, direction="export", format_key="coco")
    train = training.training_job_start(project=project, user=user, task="classification")
    Job.objects.filter(pk=export.pk).update(status="running", progress=0.25, phase="Reading the project")
    login(page, live_server, "operator")
    page.goto(f"{live_server.url}/projects/{project.id}/")
    page.click("#jobs-link")
    page.wait_for_selector(f"#job-{export.pk}")
    assert page.text_content(f"#job-{export.pk} td:nth-child(2)") == "Export"
    assert page.text_content(f"#job-{train.pk} td:nth-child(2)") == "Training"
    assert "Reading the project" in page.text_content(f"#job-{export.pk}")
    assert page.text_content(f"#job-{export.pk} td:nth-child(5)") == "operator"
    # The worker reports progress: the page shows it without a reload.
    Job.objects.filter(pk=export.pk).update(progress=0.75, phase="Writing busy.json")
    page.wait_for_selector(f"#job-{export.pk} >> text=Writing busy.json", timeout=10_000)
    assert page.get_attribute(f"#job-{export.pk} progress", "value") == "0.75"
    # Cancel the queued training job: it ends at once; the running export is asked to stop.
    page.click(f"#job-{train.pk} button:has-text('Cancel')")
    page.wait_for_selector(f"#job-{train.pk}[data-status=cancelled]")
    page.click(f"#job-{export.pk} button:has-text('Cancel')")
    page.wait_for_selector(f"#job-{export.pk} >> text=stopping…")
    assert Job.objects.get(pk=export.pk).cancel_requested is True
    Job.objects.filter(pk=export.pk).update(status="cancelled")
    Job.objects.filter(project=project).exclude(pk__in=[export.pk, train.pk]).update(status="finished")
    page.wait_for_selector(f"#job-{export.pk}[data-status=cancelled]", timeout=10_000)
    # Nothing is live any more: the list stops polling and offers no Cancel.
    assert page.get_attribute("#job-list", "hx-trigger") is None
    assert page.locator("#job-list button:has-text('Cancel')").count() == 0
