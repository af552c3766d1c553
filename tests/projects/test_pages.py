import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from guardian.shortcuts import get_perms

from projects.models import Invitation, Project, Role
from projects.uploads import images_upload
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def test_create_a_project_from_the_list_page(logged_in, user):
    response = logged_in.post("/projects/", {"name": "Seals", "description": "Grey ones"})
    project = Project.objects.get()
    assert response["Location"] == f"/projects/{project.id}/"
    assert (project.name, project.owner) == ("Seals", user)
    assert "Seals" in logged_in.get("/projects/").content.decode()


def test_the_grid_pages_with_htmx_partials(logged_in, user):
    project = make_project(owner=user)
    files = [SimpleUploadedFile(f"{i:02}.png", image_bytes(color=(i, 0, 0))) for i in range(61)]
    images_upload(project=project, user=user, files=files, labels=[])
    page1 = logged_in.get(f"/projects/{project.id}/").content.decode()
    assert "61 images" in page1
    assert page1.count('class="tile"') == 60
    assert "<html" in page1 and "Page 1 of 2" in page1
    assert 'hx-get="?page=2" hx-target="#grid"' in page1
    partial = logged_in.get(f"/projects/{project.id}/?page=2", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial
    assert partial.strip().startswith('<section class="card" id="grid">')
    assert partial.count('class="tile"') == 1
    assert 'alt="00.png"' in partial  # newest first, so the first upload is last


def test_grid_hides_actions_the_role_does_not_allow(client, user):
    project = make_project(Viewer=user)
    client.force_login(user)
    page = client.get(f"/projects/{project.id}/").content.decode()
    assert 'id="upload-form"' not in page
    assert "Delete selected" not in page


def test_delete_selected_images_from_the_grid(logged_in, user):
    project = make_project(owner=user)
    stored = images_upload(
        project=project,
        user=user,
        labels=[],
        files=[SimpleUploadedFile(f"{i}.png", image_bytes(color=(i, 1, 1))) for i in range(3)],
    ).stored
    response = logged_in.post(
        f"/projects/{project.id}/images/delete/", {"image": [stored[0].id, stored[2].id, "²", "x"]}
    )
    assert response.status_code == 302  # "²" is a digit to str.isdigit but not to int(): ignored, not a 500
    assert list(project.images.values_list("name", flat=True)) == ["1.png"]


def test_settings_page_labels_and_members(logged_in, user):
    project = make_project(owner=user)
    friend = UserFactory(email="friend@example.com")
    logged_in.post(
        f"/projects/{project.id}/labels/",
        {"name": "gull", "color": "#112233", "hotkey": "2", "keypoints": "beak, left eye,"},
    )
    assert list(project.labels.values_list("name", "color", "hotkey", "keypoint_template")) == [
        ("gull", "#112233", 2, ["beak", "left eye"])
    ]
    response = logged_in.post(
        f"/projects/{project.id}/labels/", {"name": "gull", "color": "", "hotkey": ""}, follow=True
    )
    assert "A label named &#x27;gull&#x27; already exists in this project." in response.content.decode()
    invited = logged_in.post(
        f"/projects/{project.id}/members/",
        {"email": "friend@example.com", "role": Role.objects.get(name="Labeler").id},
        follow=True,
    )
    assert "If friend@example.com belongs to a Sightline account" in invited.content.decode()
    assert get_perms(friend, project) == []  # not until they accept
    page = logged_in.get(f"/projects/{project.id}/settings/").content.decode()
    assert "Invited, not yet answered" in page and "friend@example.com" in page and "#112233" in page

    friend_client = Client()
    friend_client.force_login(friend)
    home = friend_client.get("/projects/").content.decode()
    assert f"<strong>{project.name}</strong> as Labeler, from {user.username}" in home
    invitation = Invitation.objects.get()
    joined = friend_client.post(f"/projects/invitations/{invitation.id}/accept/")
    assert joined.status_code == 302 and joined["Location"] == f"/projects/{project.id}/"
    assert sorted(get_perms(friend, project)) == ["annotate_project", "view_project"]
    # A Labeler sees who is in the project, not their e-mail addresses.
    seen = friend_client.get(f"/projects/{project.id}/settings/").content.decode()
    assert user.username in seen and user.email not in seen


def test_deleting_a_project_needs_its_name(logged_in, user):
    project = make_project(owner=user, name="Seals")
    logged_in.post(f"/projects/{project.id}/delete/", {"confirm_name": "seals"})
    assert Project.objects.count() == 1
    logged_in.post(f"/projects/{project.id}/delete/", {"confirm_name": "Seals"})
    assert Project.objects.count() == 0
