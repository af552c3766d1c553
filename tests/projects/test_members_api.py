import pytest
from django.contrib.auth.models import Permission
from guardian.shortcuts import get_perms

from projects.models import Invitation, Membership, Role
from projects.services import role_memberships_resync
from tests.conftest import client_for
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return make_project(owner=user)


def share(api, project, friend, role):
    """Invite, and accept as the invitee: what sharing is."""
    response = api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": role}, format="json")
    assert response.status_code == 202
    invitation = Invitation.objects.get(project=project, email=friend.email.lower())
    return client_for(friend).post(f"/api/invitations/{invitation.id}/accept/")


def test_sharing_invites_and_only_accepting_gives_the_role_and_its_object_permissions(api, project, user):
    friend = UserFactory(email="friend@example.com")
    response = api.post(
        f"/api/projects/{project.id}/members/", {"email": "FRIEND@example.com", "role": "Labeler"}, format="json"
    )
    assert response.status_code == 202
    assert get_perms(friend, project) == []  # nobody joins without consent
    assert client_for(friend).get(f"/api/projects/{project.id}/").status_code == 404
    [invitation] = client_for(friend).get("/api/invitations/").json()
    assert {k: invitation[k] for k in ("project_id", "project_name", "email", "role", "invited_by")} == {
        "project_id": project.id,
        "project_name": project.name,
        "email": "friend@example.com",
        "role": "Labeler",
        "invited_by": user.username,
    }
    accepted = client_for(friend).post(f"/api/invitations/{invitation['id']}/accept/")
    assert accepted.status_code == 200
    assert accepted.json() == {
        "user_id": friend.id,
        "username": friend.username,
        "email": "friend@example.com",
        "role": "Labeler",
        "is_owner": False,
    }
    assert sorted(get_perms(friend, project)) == ["annotate_project", "view_project"]
    assert client_for(friend).get(f"/api/projects/{project.id}/").status_code == 200
    assert Invitation.objects.count() == 0


def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(api, project):
    UserFactory(email="known@example.com")
    answers = [
        api.post(f"/api/projects/{project.id}/members/", {"email": email, "role": "Viewer"}, format="json")
        for email in ("known@example.com", "nobody@example.com")
    ]
    assert [a.status_code for a in answers] == [202, 202]
    assert [
        a.json()["detail"].replace(e, "E")
        for a, e in zip(answers, ("known@example.com", "nobody@example.com"), strict=True)
    ] == [
        "If E belongs to a Sightline account, or someone signs up with it, they will find the invitation on their "
        "home page and can accept or decline it."
    ] * 2


def test_someone_who_signs_up_later_with_the_address_finds_the_invitation(api, project):
    api.post(f"/api/projects/{project.id}/members/", {"email": "later@example.com", "role": "Viewer"}, format="json")
    newcomer = UserFactory(email="later@example.com")
    assert [i["project_id"] for i in client_for(newcomer).get("/api/invitations/").json()] == [project.id]


def test_declining_and_withdrawing_leave_no_member(api, project):
    friend = UserFactory()
    api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Viewer"}, format="json")
    invitation = Invitation.objects.get()
    assert client_for(friend).post(f"/api/invitations/{invitation.id}/decline/").status_code == 204
    assert (Invitation.objects.count(), Membership.objects.filter(user=friend).count()) == (0, 0)
    api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Viewer"}, format="json")
    invitation = Invitation.objects.get()
    assert [i["email"] for i in api.get(f"/api/projects/{project.id}/invitations/").json()] == [friend.email.lower()]
    assert api.delete(f"/api/projects/{project.id}/invitations/{invitation.id}/").status_code == 204
    assert client_for(friend).post(f"/api/invitations/{invitation.id}/accept/").status_code == 404
    assert Membership.objects.filter(user=friend).count() == 0


def test_an_invitation_is_only_for_its_addressee(api, project):
    friend, other = UserFactory(), UserFactory()
    api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Admin"}, format="json")
    invitation = Invitation.objects.get()
    assert client_for(other).get("/api/invitations/").json() == []
    assert client_for(other).post(f"/api/invitations/{invitation.id}/accept/").status_code == 404
    assert client_for(other).post(f"/api/invitations/{invitation.id}/decline/").status_code == 404
    assert (Invitation.objects.count(), Membership.objects.filter(user=other).count()) == (1, 0)


def test_viewers_see_members_names_but_not_their_emails(api, project, user):
    viewer = UserFactory(email="viewer@example.com")
    share(api, project, viewer, "Viewer")
    seen_by_viewer = client_for(viewer).get(f"/api/projects/{project.id}/members/").json()
    assert sorted((m["username"], m["email"]) for m in seen_by_viewer) == sorted(
        [(user.username, None), (viewer.username, None)]
    )
    seen_by_owner = api.get(f"/api/projects/{project.id}/members/").json()
    assert sorted(m["email"] for m in seen_by_owner) == sorted([user.email, "viewer@example.com"])


@pytest.mark.parametrize(
    ("role", "field", "message"),
    [
        ("Emperor", "role", "No role named 'Emperor'."),
        ("Owner", "role", "A project has one owner; use transfer ownership."),
    ],
)
def test_share_refuses_unknown_and_owner_roles(api, project, role, field, message):
    response = api.post(f"/api/projects/{project.id}/members/", {"email": "a@example.com", "role": role}, format="json")
    assert response.status_code == 400
    assert response.json()[field] == [message]
    assert (Invitation.objects.count(), Membership.objects.filter(project=project).count()) == (0, 1)


def test_inviting_a_member_again_changes_nothing(api, project):
    friend = UserFactory()
    share(api, project, friend, "Viewer")
    response = api.post(f"/api/projects/{project.id}/members/", {"email": friend.email, "role": "Admin"}, format="json")
    assert response.status_code == 202
    assert Invitation.objects.count() == 0
    assert Membership.objects.get(project=project, user=friend).role.name == "Viewer"


def test_change_role_updates_object_permissions(api, project):
    friend = UserFactory()
    share(api, project, friend, "Viewer")
    response = api.patch(f"/api/projects/{project.id}/members/{friend.id}/", {"role": "Developer"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "Developer"
    assert "train_project" in get_perms(friend, project)
    assert "manage_members_project" not in get_perms(friend, project)


def test_remove_member_takes_away_every_permission(api, project):
    friend = UserFactory()
    share(api, project, friend, "Admin")
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
    share(api, project, friend, "Labeler")
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
