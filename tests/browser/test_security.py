"""Pages run under a strict Content-Security-Policy (scripts from our files only); what used inline script
works through data attributes. The page fixture fails any test that the policy blocked something in."""

import pytest

from projects.models import Label
from tests.browser.test_labeler import login
from tests.factories import UserFactory, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def owner(live_server):
    return UserFactory(username="owner", password="correct-horse-battery")


def test_swagger_ui_runs_under_the_policy(page, live_server, owner):
    login(page, live_server, "owner")
    response = page.goto(f"{live_server.url}/api/docs/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock-summary-path")
    assert page.locator(".opblock").count() > 50


def test_a_confirm_question_declared_in_data_attributes_guards_a_delete(page, live_server, owner):
    project = make_project(owner=owner, name="Birds")
    Label.objects.create(project=project, name="gull")
    login(page, live_server, "owner")
    page.goto(f"{live_server.url}/projects/{project.id}/settings/")
    asked = []

    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("text=Delete >> nth=0")
    assert asked == ["Delete label gull?"]
    assert Label.objects.filter(project=project).count() == 1

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("text=Delete >> nth=0")
    assert Label.objects.filter(project=project).count() == 0
