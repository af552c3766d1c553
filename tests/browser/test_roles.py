"""What each role is offered, in Chromium: an Owner, a Labeler and a Viewer on the same project."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from projects.models import Label, Role
from projects.services import membership_grant
from projects.uploads import images_upload
from tests.browser.test_labeler import login
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TOOLS = ["select", "box", "polygon", "polyline", "points", "mask", "smart"]


@pytest.fixture
def project(live_server):
    owner = UserFactory(username="owner")
    project = make_project(owner=owner, name="Birds")
    for role in ("Labeler", "Viewer"):
        membership_grant(
            project=project, email=UserFactory(username=role.lower()).email, role=Role.objects.get(name=role)
        )
    Label.objects.create(project=project, name="gull", hotkey=1)
    image = images_upload(
        project=project, user=owner, labels=[], files=[SimpleUploadedFile("a.png", image_bytes(200, 150))]
    ).stored[0]
    return {"project": project, "image": image}


def visible(page, selector):
    return page.locator(selector).count() > 0 and page.locator(selector).first.is_visible()


def offered(page, live_server, username, project, image):
    login(page, live_server, username)
    page.goto(f"{live_server.url}/projects/{project.id}/")
    grid = {
        "upload": visible(page, "#upload"),
        "transfers": page.inner_text("#transfers-link") if visible(page, "#transfers-link") else None,
        "label_selected": visible(page, "#label-selected"),
        "labels_menu": visible(page, "#label-menu"),
        "predict": visible(page, "#predict-selected"),
        "delete": visible(page, "button.danger"),
    }
    page.goto(f"{live_server.url}/projects/{project.id}/images/{image.id}/label/")
    page.wait_for_selector("body[data-labeler-ready=true]")
    tools = page.eval_on_selector_all("[data-tool]", "els => els.map(e => e.dataset.tool)")
    page.goto(f"{live_server.url}/projects/{project.id}/transfer/")
    transfers = {
        "export": visible(page, "#export-form"),
        "import": visible(page, "#import-form"),
        "replace": page.locator("input[value=replace]").count() == 1,
    }
    page.context.clear_cookies()
    return grid, tools, transfers


def test_each_role_is_offered_only_what_it_may_do(project, page, live_server):
    owner = offered(page, live_server, "owner", **project)
    assert owner == (
        {
            "upload": True,
            "transfers": "Import / export",
            "label_selected": True,
            "labels_menu": True,
            "predict": True,
            "delete": True,
        },
        TOOLS,
        {"export": True, "import": True, "replace": True},
    )
    labeler = offered(page, live_server, "labeler", **project)
    assert labeler == (
        {
            "upload": False,
            "transfers": "Import",
            "label_selected": True,
            "labels_menu": True,
            "predict": False,
            "delete": False,
        },
        TOOLS,
        {"export": False, "import": True, "replace": False},
    )
    viewer = offered(page, live_server, "viewer", **project)
    assert viewer == (
        {
            "upload": False,
            "transfers": None,
            "label_selected": True,
            "labels_menu": False,
            "predict": False,
            "delete": False,
        },
        [],
        {"export": False, "import": False, "replace": False},
    )
