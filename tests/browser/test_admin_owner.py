"""An owner who is not staff signs in to admin, makes a role of their own project and gives it to two members;
each member's rights change on their very next request."""

import pytest
from django.contrib.auth.models import Permission

from projects.models import Membership, Role
from projects.uploads import images_upload
from tests.browser.test_training import shot
from tests.conftest import client_for
from tests.factories import UserFactory, image_file, make_project

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_owner_makes_a_reviewer_role_in_admin_and_members_rights_follow(page, live_server):
    owner = UserFactory(username="olga")
    vera, leo = UserFactory(username="vera"), UserFactory(username="leo")
    project = make_project(owner=owner, name="Harbour", Viewer=vera, Labeler=leo)
    [image] = images_upload(project=project, user=owner, files=[image_file()], labels=[]).stored
    accept = f"/api/images/{image.id}/predictions/accept/"
    annotations = f"/api/images/{image.id}/annotations/"
    as_vera, as_leo = client_for(vera), client_for(leo)
    # Before: the Viewer may not accept suggestions; the Labeler may save annotations.
    assert as_vera.post(accept, {"revision": 0, "threshold": 0.5}, format="json").status_code == 403
    saved = as_leo.put(annotations, {"revision": 0, "shapes": []}, format="json")
    assert saved.status_code == 200, saved.content

    # The owner opens admin: the app's log-in page, then back to admin.
    assert not owner.is_staff
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_url(f"{live_server.url}/accounts/login/?next=%2Fadmin%2F")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert sorted(page.locator("#content-main th[scope=row] a").all_text_contents()) == [
        "Labels",
        "Memberships",
        "Projects",
        "Roles",
    ]
    shot(page, "admin-owner-index")

    # A role of this project: view and review.
    page.click("#content-main a[href='/admin/projects/role/add/']")
    page.fill("#id_name", "Reviewer")
    page.fill("#id_description", "Checks what the models suggest")
    assert page.locator("#id_project option").all_text_contents() == ["Harbour"]
    for codename in ("view_project", "review_project"):
        pk = Permission.objects.get(codename=codename).pk
        page.select_option("#id_permissions_from", str(pk))
        page.click("#id_permissions_add")
    shot(page, "admin-owner-role")
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}/admin/projects/role/")
    reviewer = Role.objects.get(name="Reviewer")
    assert (reviewer.project_id, reviewer.codenames()) == (project.id, {"view_project", "review_project"})

    # Given to both members, each from their membership's page.
    for member in (vera, leo):
        membership = Membership.objects.get(project=project, user=member)
        page.goto(f"{live_server.url}/admin/projects/membership/{membership.pk}/change/")
        assert page.input_value("#id_member") == member.username
        page.select_option("#id_role", str(reviewer.pk))
        page.click("input[name=_save]")
        page.wait_for_url(f"{live_server.url}/admin/projects/membership/")
        assert Membership.objects.get(pk=membership.pk).role == reviewer

    # Their next requests: the Viewer now accepts suggestions; the Labeler no longer saves annotations.
    answer = as_vera.post(accept, {"revision": 1, "threshold": 0.5}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["accepted"] == 0
    refused = as_leo.put(annotations, {"revision": 1, "shapes": []}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "Your role in this project does not allow this: label images."

    # The members page tells who changed what.
    page.goto(f"{live_server.url}/projects/{project.id}/settings/")
    history = page.locator("#history tr td:last-child").all_text_contents()
    assert history[:3] == [
        "changed leo's role from Labeler to Reviewer",
        "changed vera's role from Viewer to Reviewer",
        "created the role Reviewer: review_project, view_project",
    ]
    shot(page, "members-history")
