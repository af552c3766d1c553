import json
import re

import pytest

from projects.models import Role
from projects.services import membership_grant
from projects.uploads import images_upload
from tests.factories import UserFactory, image_file, make_project

pytestmark = pytest.mark.django_db


def config(response) -> dict:
    match = re.search(r'<script id="labeler-config" type="application/json">(.*?)</script>', response.content.decode())
    return json.loads(match.group(1))


@pytest.fixture
def project(user):
    project = make_project(owner=user)
    files = [image_file(f"{i}.png", color=(i, 3, 3)) for i in range(3)]
    images_upload(project=project, user=user, files=files, labels=[])
    images_upload(project=project, user=user, files=[image_file("cat.png", color=(9, 9, 9))], labels=["cat"])
    return project


def test_the_labeler_walks_the_grid_order_and_only_the_filtered_images(client, user, project):
    client.force_login(user)
    ids = list(project.images.order_by("-id").values_list("id", flat=True))
    middle = config(client.get(f"/projects/{project.id}/images/{ids[1]}/label/"))
    assert middle["previousUrl"] == f"/projects/{project.id}/images/{ids[0]}/label/"
    assert middle["nextUrl"] == f"/projects/{project.id}/images/{ids[2]}/label/"
    assert middle["canAnnotate"] is True
    assert middle["image"]["url"] == f"/api/images/{ids[1]}/file/"
    filtered = config(client.get(f"/projects/{project.id}/images/{ids[0]}/label/", {"labels": "cat"}))
    assert (filtered["previousUrl"], filtered["nextUrl"]) == (None, None)  # cat.png is the only match


def test_a_viewer_may_look_but_not_annotate_and_a_stranger_gets_404(client, project):
    viewer = UserFactory()
    membership_grant(project=project, email=viewer.email, role=Role.objects.get(name="Viewer"))
    image = project.images.first()
    client.force_login(viewer)
    assert config(client.get(f"/projects/{project.id}/images/{image.id}/label/"))["canAnnotate"] is False
    client.force_login(UserFactory())
    assert client.get(f"/projects/{project.id}/images/{image.id}/label/").status_code == 404


def test_label_selected_walks_only_the_chosen_images(client, user, project):
    client.force_login(user)
    ids = list(project.images.order_by("-id").values_list("id", flat=True))
    response = client.get(f"/projects/{project.id}/images/label/", {"image": [ids[3], ids[1]]})
    assert response["Location"] == f"/projects/{project.id}/images/{ids[1]}/label/?ids={ids[3]},{ids[1]}"
    page = config(client.get(response["Location"]))
    assert page["previousUrl"] is None
    assert page["nextUrl"] == f"/projects/{project.id}/images/{ids[3]}/label/?ids={ids[3]}%2C{ids[1]}"
    strip = client.get(
        f"/projects/{project.id}/images/{ids[1]}/label/strip/", {"ids": f"{ids[3]},{ids[1]}"}
    ).content.decode()
    assert strip.count("<li") == 2 and 'aria-current="true"' in strip
    odd = client.get(f"/projects/{project.id}/images/{ids[1]}/label/strip/", {"ids": f"{ids[3]},²,{ids[1]}"})
    assert odd.content.decode().count("<li") == 2  # a number int() cannot read is ignored, not a 500
    everything = client.get(f"/projects/{project.id}/images/label/")
    assert everything["Location"] == f"/projects/{project.id}/images/{ids[0]}/label/"


def test_a_bad_filter_on_the_labeler_returns_to_the_grid_with_the_reason(client, user, project):
    client.force_login(user)
    image = project.images.first()
    response = client.get(f"/projects/{project.id}/images/{image.id}/label/", {"labels": "horse"}, follow=True)
    assert "No label named &#x27;horse&#x27; in this project." in response.content.decode()
