"""Owners manage roles, memberships and ownership in Django admin; guardian's rows must follow."""

import pytest
from django.contrib.auth.models import Permission
from guardian.shortcuts import get_perms

from projects.models import Membership, Role
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_a_custom_role_created_in_admin_can_be_granted(admin_client):
    perms = Permission.objects.filter(codename__in=["view_project", "review_project"])
    response = admin_client.post(
        "/admin/projects/role/add/",
        {"name": "Reviewer", "description": "Checks labels", "permissions": [p.pk for p in perms]},
    )
    assert response.status_code == 302
    role = Role.objects.get(name="Reviewer")
    assert role.codenames() == {"view_project", "review_project"}
    assert role.is_builtin is False


def test_editing_a_role_in_admin_resyncs_its_members(admin_client):
    member = UserFactory()
    project = make_project(Labeler=member)
    role = Role.objects.get(name="Labeler")
    wanted = Permission.objects.filter(codename__in=["view_project", "annotate_project", "export_project"])
    admin_client.post(
        f"/admin/projects/role/{role.pk}/change/",
        {"name": "Labeler", "description": "", "permissions": [p.pk for p in wanted]},
    )
    assert sorted(get_perms(member, project)) == ["annotate_project", "export_project", "view_project"]


def test_a_membership_added_in_admin_grants_object_permissions(admin_client):
    member = UserFactory()
    project = make_project()
    response = admin_client.post(
        "/admin/projects/membership/add/",
        {"project": project.pk, "user": member.pk, "role": Role.objects.get(name="Developer").pk},
    )
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=member).role.name == "Developer"
    assert "train_project" in get_perms(member, project)


def test_built_in_roles_cannot_be_deleted_in_admin(admin_client):
    role = Role.objects.get(name="Viewer")
    assert admin_client.post(f"/admin/projects/role/{role.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Role.objects.filter(name="Viewer").exists()


def test_bulk_deleting_memberships_in_admin_takes_their_permissions(admin_client):
    member = UserFactory()
    project = make_project(Labeler=member)
    owner_membership = Membership.objects.get(project=project, user=project.owner)
    member_membership = Membership.objects.get(project=project, user=member)
    both = {"action": "delete_selected", "_selected_action": [owner_membership.pk, member_membership.pk], "post": "yes"}
    assert admin_client.post("/admin/projects/membership/", both).status_code == 403  # the owner's stays
    assert Membership.objects.filter(project=project).count() == 2
    just_member = {"action": "delete_selected", "_selected_action": [member_membership.pk], "post": "yes"}
    assert admin_client.post("/admin/projects/membership/", just_member).status_code == 302
    assert get_perms(member, project) == []
    assert list(Membership.objects.filter(project=project).values_list("user_id", flat=True)) == [project.owner_id]


def test_admin_refuses_a_second_owner_with_a_form_error(admin_client):
    member = UserFactory()
    project = make_project()
    response = admin_client.post(
        "/admin/projects/membership/add/",
        {"project": project.pk, "user": member.pk, "role": Role.objects.get(name="Owner").pk},
    )
    assert response.status_code == 200
    assert "A project has one owner; use transfer ownership." in response.content.decode()
    assert not Membership.objects.filter(user=member).exists()


def test_built_in_role_names_cannot_change_in_admin(admin_client):
    owner = Role.objects.get(name="Owner")
    admin_client.post(f"/admin/projects/role/{owner.pk}/change/", {"name": "Proprietor", "description": "x"})
    assert Role.objects.filter(name="Owner").exists()
    assert len(Role.objects.get(name="Owner").codenames()) == 12
    viewer = Role.objects.get(name="Viewer")
    admin_client.post(
        f"/admin/projects/role/{viewer.pk}/change/", {"name": "Watcher", "description": "", "permissions": []}
    )
    assert Role.objects.filter(name="Viewer").exists()
