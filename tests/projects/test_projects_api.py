import pytest
from guardian.models import UserObjectPermission

from projects.models import Membership, Project
from tests.conftest import client_for
from tests.factories import UserFactory, make_project

pytestmark = pytest.mark.django_db


def test_create_project_makes_the_creator_its_owner(user, api):
    response = api.post("/api/projects/", {"name": " Birds ", "description": "Gulls and terns"}, format="json")
    assert response.status_code == 201
    project = Project.objects.get()
    assert response.json()["name"] == "Birds"
    assert response.json()["owner"] == user.username
    assert (project.owner, project.description) == (user, "Gulls and terns")
    assert Membership.objects.get(project=project).role.name == "Owner"
    assert UserObjectPermission.objects.filter(user=user, object_pk=str(project.pk)).count() == 12


def test_list_shows_only_the_projects_the_user_can_see(user, api):
    mine = make_project(owner=user, name="Mine")
    shared = make_project(name="Shared", Viewer=user)
    make_project(name="Hidden")
    assert [p["id"] for p in api.get("/api/projects/").json()] == [shared.id, mine.id]


def test_rename_and_describe(user, api):
    project = make_project(owner=user)
    response = api.patch(
        f"/api/projects/{project.id}/", {"name": "Seabirds", "description": "All of them"}, format="json"
    )
    assert response.status_code == 200
    project.refresh_from_db()
    assert (project.name, project.description) == ("Seabirds", "All of them")


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"name": ""}, "name", "This field may not be blank."),
        ({"name": "x" * 201}, "name", "Ensure this field has no more than 200 characters."),
        ({"name": ["a"]}, "name", "Not a valid string."),
        ({"colour": "red"}, "colour", "Unknown field."),
    ],
)
def test_bad_project_input_is_400_and_changes_nothing(user, api, payload, field, message):
    project = make_project(owner=user, name="Birds")
    response = api.patch(f"/api/projects/{project.id}/", payload, format="json")
    assert response.status_code == 400
    assert response.json()[field] == [message]
    project.refresh_from_db()
    assert project.name == "Birds"


def test_a_non_object_body_is_400(api):
    response = api.post("/api/projects/", ["name"], format="json")
    assert response.status_code == 400
    assert Project.objects.count() == 0


def test_delete_project_removes_it_and_its_permission_rows(user, api):
    project = make_project(owner=user, Labeler=UserFactory())
    assert api.delete(f"/api/projects/{project.id}/").status_code == 204
    assert Project.objects.count() == 0
    assert UserObjectPermission.objects.count() == 0


def test_a_project_the_user_may_not_see_is_404_like_a_missing_one(api):
    other = make_project()
    for url in [f"/api/projects/{other.id}/", "/api/projects/999999/"]:
        response = api.get(url)
        assert response.status_code == 404
        assert response.json() == {"detail": "No such project."}


def test_seeing_without_the_permission_is_403(user):
    project = make_project(Viewer=user)
    response = client_for(user).patch(f"/api/projects/{project.id}/", {"name": "Mine now"}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Your role in this project does not allow this: rename and describe the project."
    }
    project.refresh_from_db()
    assert project.name == "Birds"
