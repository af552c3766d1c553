import pytest
from django.contrib.auth.models import Permission
from guardian.shortcuts import get_perms

from projects.models import Membership, Role
from projects.services import role_memberships_resync
from tests.conftest import client_for
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return make_project(owner=user)


def test_share_by_email_gives_the_role_and_its_object_permissions(api, project):
    friend = UserFactory(email="friend@example.com")
    response = api.post(
        f"/api/projects/{project.id}/members/", {"email": "FRIEND@example.com", "role": "Labeler"}, format="json"
    )
    assert response.status_code == 201
    assert response.json() == {
        "user_id": friend.id,
        "username": friend.username,
        "email": "friend@example.com",
        "role": "Labeler",
        "is_owner": False,
    }
    assert sorted(get_perms(friend, project)) == ["annotate_project", "view_project"]
    assert client_for(friend).get(f"/api/projects/{project.id}/").status_code == 200


@pytest.mark.parametrize(
    ("email", "role", "field", "message"),
    [
        ("nobody@example.com", "Labeler", "email", "No registered user has this email. Ask them to sign up first."),
        ("friend@example.com", "Emperor", "role", "No role named 'Emperor'."),
        ("friend@example.com", "Owner", "role", "A project has one owner; use transfer ownership."),
    ],
)
def test_share_refuses_unknown_users_and_roles(api, project, email, role, field, message):
    UserFactory(email="friend@example.com")
    response = api.post(f"/api/projects/{project.id}/members/", {"email": email, "role": role}, format="json")
    assert response.status_code == 400
    assert response.json()[field] == [message]
    assert Membership.objects.filter(project=project).count() == 1


def test_sharing_twice_is_refused(api, project):
    friend = UserFactory()
    api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Viewer"}, format="json")
    response = api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Admin"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"email": [f"{friend.username} is already a member; change their role instead."]}
    assert Membership.objects.get(project=project, user=friend).role.name == "Viewer"


def test_change_role_updates_object_permissions(api, project):
    friend = UserFactory()
    api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Viewer"}, format="json")
    response = api.patch(f"/api/projects/{project.id}/members/{friend.id}/", {"role": "Developer"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "Developer"
    assert "train_project" in get_perms(friend, project)
    assert "manage_members_project" not in get_perms(friend, project)


def test_remove_member_takes_away_every_permission(api, project):
    friend = UserFactory()
    api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Admin"}, format="json")
    assert api.delete(f"/api/projects/{project.id}/members/{friend.id}/").status_code == 204
    assert get_perms(friend, project) == []
    assert client_for(friend).get(f"/api/projects/{project.id}/").status_code == 404


def test_the_owner_cannot_be_removed_or_demoted(api, project, user):
    assert api.delete(f"/api/projects/{project.id}/members/{user.id}/").json() == {
        "user": ["The owner cannot be removed; transfer ownership first."]
    }
    assert (
        api.patch(f"/api/projects/{project.id}/members/{user.id}/", {"role": "Viewer"}, format="json").status_code
        == 400
    )
    assert Membership.objects.get(project=project, user=user).role.name == "Owner"


def test_transfer_ownership(api, project, user):
    friend = UserFactory()
    api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Labeler"}, format="json")
    response = api.post(f"/api/projects/{project.id}/transfer-ownership/", {"user_id": friend.id}, format="json")
    assert response.status_code == 200
    assert response.json()["owner"] == friend.username
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role__name"))
    assert roles == {user.username: "Admin", friend.username: "Owner"}
    assert "delete_project" in get_perms(friend, project)
    assert "delete_project" not in get_perms(user, project)
    # The previous owner, now an Admin, can no longer hand the project on.
    assert (
        api.post(f"/api/projects/{project.id}/transfer-ownership/", {"user_id": user.id}, format="json").status_code
        == 403
    )


def test_only_the_owner_transfers_ownership(project):
    admin = UserFactory()
    from projects.services import membership_grant

    membership_grant(project=project, email=admin.email, role=Role.objects.get(name="Admin"))
    response = client_for(admin).post(
        f"/api/projects/{project.id}/transfer-ownership/", {"user_id": admin.id}, format="json"
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "Only the project's owner can transfer ownership."}
    project.refresh_from_db()
    assert project.owner != admin


def test_editing_a_role_updates_every_member_holding_it(project):
    labeler = UserFactory()
    from projects.services import membership_grant

    membership_grant(project=project, email=labeler.email, role=Role.objects.get(name="Labeler"))
    role = Role.objects.get(name="Labeler")
    role.permissions.add(Permission.objects.get(codename="export_project"))
    assert role_memberships_resync(role=role) == 1
    assert sorted(get_perms(labeler, project)) == ["annotate_project", "export_project", "view_project"]


def test_roles_are_listed_with_their_permissions(api):
    roles = {r["name"]: r["permissions"] for r in api.get("/api/roles/").json()}
    assert sorted(roles) == ["Admin", "Developer", "Labeler", "Owner", "Viewer"]
    assert roles["Viewer"] == ["view_project"]
    assert len(roles["Owner"]) == 12
    assert "delete_project" not in roles["Admin"] and len(roles["Admin"]) == 11


def test_ownership_passes_only_to_a_member(api, project):
    outsider = UserFactory()
    response = api.post(f"/api/projects/{project.id}/transfer-ownership/", {"user_id": outsider.id}, format="json")
    assert response.status_code == 400
    assert response.json() == {"user_id": ["Ownership can only pass to a member of the project."]}
    project.refresh_from_db()
    assert project.owner != outsider
