"""Sharing is an invitation, in Chromium: an Owner shares, the person accepts on the home page, another
declines, a pending one is withdrawn, and a Viewer sees members' names but never their e-mails."""

import pytest

from projects.models import Invitation, Membership, Role
from projects.services import INVITED, membership_grant
from tests.browser.test_labeler import login
from tests.factories import UserFactory, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def share(page, live_server, project, email: str, role: str) -> None:
    page.goto(f"{live_server.url}/projects/{project.id}/settings/")
    page.fill("#member-add input[name=email]", email)
    page.select_option("#member-add select[name=role]", label=role)
    page.click("#member-add button[type=submit]")
    page.wait_for_selector("#messages")


def test_an_invitation_is_accepted_declined_or_withdrawn_and_viewers_never_see_emails(page, live_server):
    owner = UserFactory(username="owner")
    project = make_project(owner=owner, name="Birds")
    UserFactory(username="ana", email="ana@example.com")
    UserFactory(username="ben", email="ben@example.com")
    viewer = UserFactory(username="viewer", email="viewer@example.com")
    membership_grant(project=project, email=viewer.email, role=Role.objects.get(name="Viewer"))

    login(page, live_server, "owner")
    for email in ("ana@example.com", "ben@example.com", "nobody@example.com"):
        share(page, live_server, project, email, "Labeler")
        # The same words whether or not the address belongs to anyone.
        assert page.inner_text("#messages") == INVITED.format(email=email)
    page.goto(f"{live_server.url}/projects/{project.id}/settings/")
    rows = page.eval_on_selector_all("#invitations tbody tr", "rows => rows.map(r => r.cells[0].innerText)")
    assert sorted(rows) == ["ana@example.com", "ben@example.com", "nobody@example.com"]
    page.locator("#invitations tr", has_text="nobody@example.com").get_by_role("button", name="Withdraw").click()
    page.wait_for_selector("#invitations tr:has-text('nobody@example.com')", state="detached")
    page.context.clear_cookies()

    login(page, live_server, "ana")
    assert page.inner_text("#invitations li").startswith("Birds as Labeler, from owner")
    page.click("#invitations button:has-text('Accept')")
    page.wait_for_url(f"{live_server.url}/projects/{project.id}/")  # straight into the project
    page.context.clear_cookies()

    login(page, live_server, "ben")
    page.click("#invitations button:has-text('Decline')")
    page.wait_for_selector("#invitations", state="detached")
    assert page.locator("a", has_text="Birds").count() == 0
    page.context.clear_cookies()

    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/projects/{project.id}/settings/")
    members = page.inner_text("#members")
    assert ("ana" in members, "@example.com" in members, page.locator("#member-add").count()) == (True, False, 0)
    assert sorted(Membership.objects.filter(project=project).values_list("user__username", "role__name")) == [
        ("ana", "Labeler"),
        ("owner", "Owner"),
        ("viewer", "Viewer"),
    ]
    assert Invitation.objects.count() == 0
