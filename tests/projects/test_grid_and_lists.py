"""The grid's selection, label actions and sort, the project list's overview, and label editing (issue 13)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.models import Classification
from projects.models import Image, Label, Role
from projects.services import membership_grant
from projects.uploads import images_upload
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    project = make_project(owner=user)
    files = [
        SimpleUploadedFile(name, image_bytes(color=(i * 40, 10, 10)))
        for i, name in enumerate(["b.png", "c.png", "a.png"])
    ]
    images_upload(project=project, user=user, files=files, labels=[])
    Label.objects.create(project=project, name="gull", hotkey=1)
    return project


def ids(project, *names):
    return [Image.objects.get(project=project, name=name).pk for name in names]


def labels_of(project):
    rows = Classification.objects.filter(image__project=project).order_by("image__name")
    return list(rows.values_list("image__name", "label__name", "is_default"))


def test_assign_and_remove_a_label_for_the_selected_images(client, user, project):
    client.force_login(user)
    gull = Label.objects.get(project=project, name="gull")
    revisions = dict(Image.objects.filter(project=project).values_list("name", "annotation_revision"))
    url = f"/projects/{project.id}/images/labels/"
    response = client.post(
        url, {"image": ids(project, "a.png", "b.png"), "label": gull.id, "operation": "assign"}, follow=True
    )
    assert "Labeled 2 images gull." in response.content.decode()
    assert labels_of(project) == [("a.png", "gull", True), ("b.png", "gull", True)]
    after = dict(Image.objects.filter(project=project).values_list("name", "annotation_revision"))
    assert {n: after[n] - revisions[n] for n in after} == {"a.png": 1, "b.png": 1, "c.png": 0}  # open labelers see it
    response = client.post(url, {"image": ids(project, "a.png"), "label": gull.id, "operation": "remove"}, follow=True)
    assert "Took gull off 1 image." in response.content.decode()
    assert labels_of(project) == [("b.png", "gull", True)]


def test_removing_the_default_label_makes_the_next_one_default(client, user, project):
    client.force_login(user)
    gull, tern = Label.objects.get(name="gull"), Label.objects.create(project=project, name="tern")
    image = Image.objects.get(project=project, name="a.png")
    Classification.objects.create(image=image, label=gull, is_default=True)
    Classification.objects.create(image=image, label=tern)
    client.post(
        f"/projects/{project.id}/images/labels/", {"image": [image.pk], "label": gull.id, "operation": "remove"}
    )
    assert labels_of(project) == [("a.png", "tern", True)]


def test_select_all_acts_on_every_image_the_filter_matches(client, user, project):
    client.force_login(user)
    gull = Label.objects.get(project=project, name="gull")
    tern = Label.objects.create(project=project, name="tern")
    Classification.objects.create(image_id=ids(project, "a.png")[0], label=tern, is_default=True)
    Classification.objects.create(image_id=ids(project, "c.png")[0], label=tern, is_default=True)
    data = {"all_matching": "1", "labels": "tern", "type": "", "status": "", "label": gull.id, "operation": "assign"}
    client.post(f"/projects/{project.id}/images/labels/", data)
    assert [row for row in labels_of(project) if row[1] == "gull"] == [
        ("a.png", "gull", False),
        ("c.png", "gull", False),
    ]
    client.post(
        f"/projects/{project.id}/images/validation/", {"all_matching": "1", "labels": "NOT tern", "validation": "add"}
    )
    assert list(Image.objects.filter(is_validation=True).values_list("name", flat=True)) == ["b.png"]


def test_a_viewer_may_not_assign_labels_and_a_stranger_gets_404(client, project):
    viewer = UserFactory()
    membership_grant(project=project, email=viewer.email, role=Role.objects.get(name="Viewer"))
    gull = Label.objects.get(project=project, name="gull")
    data = {"image": ids(project, "a.png"), "label": gull.id, "operation": "assign"}
    client.force_login(viewer)
    assert client.post(f"/projects/{project.id}/images/labels/", data).status_code == 403
    client.force_login(UserFactory())
    assert client.post(f"/projects/{project.id}/images/labels/", data).status_code == 404
    assert labels_of(project) == []


def test_the_grid_sorts_by_name_date_and_status(client, user, project):
    client.force_login(user)
    from annotations.services import image_seen

    image_seen(image=Image.objects.get(project=project, name="c.png"), user=user)

    def names(sort):
        page = client.get(f"/projects/{project.id}/", {"sort": sort}).content.decode()
        return sorted(("a.png", "b.png", "c.png"), key=lambda n: page.index(f"<bdi>{n}</bdi>"))

    assert names("name") == ["a.png", "b.png", "c.png"]
    assert names("name-desc") == ["c.png", "b.png", "a.png"]
    assert names("oldest") == ["b.png", "c.png", "a.png"]
    assert names("newest") == ["a.png", "c.png", "b.png"]
    assert names("status") == ["a.png", "b.png", "c.png"]  # not seen (newest first), then seen


def test_label_selected_posts_and_keeps_the_selection(client, user, project):
    client.force_login(user)
    chosen = ids(project, "a.png", "b.png")
    response = client.post(f"/projects/{project.id}/images/label/", {"image": chosen})
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.id}/images/{max(chosen)}/label/?ids={min(chosen)},{max(chosen)}"
    response = client.post(f"/projects/{project.id}/images/label/", {"all_matching": "1", "labels": "NOT gull"})
    assert response["Location"].endswith("/label/?labels=NOT+gull")


def test_the_project_list_shows_a_cover_and_the_counts(client, user, project):
    Classification.objects.create(
        image_id=ids(project, "a.png")[0], label=Label.objects.get(name="gull"), is_default=True
    )
    make_project(owner=user, name="Empty")
    client.force_login(user)
    page = client.get("/projects/").content.decode()
    newest = Image.objects.filter(project=project).order_by("-id").first()
    assert f'<img src="/api/images/{newest.pk}/thumbnail/"' in page
    assert "3 images · 1 labeled · 1 label\n" in page and "no models" in page
    assert "0 images · 0 labeled · 0 labels" in page and "no images" in page


def test_labels_can_be_renamed_recoloured_and_rebound_in_settings(client, user, project):
    gull = Label.objects.get(project=project, name="gull")
    client.force_login(user)
    page = client.get(f"/projects/{project.id}/settings/").content.decode()
    assert '<input type="number" name="hotkey" value="2"' in page  # the new-label form offers the next free hotkey
    data = {"name": "herring gull", "color": "#112233", "hotkey": "5", "keypoints": ""}
    response = client.post(f"/projects/{project.id}/labels/{gull.id}/edit/", data, follow=True)
    assert "Saved label herring gull." in response.content.decode()
    assert Label.objects.filter(pk=gull.pk).values_list("name", "color", "hotkey").get() == (
        "herring gull",
        "#112233",
        5,
    )
    labeler = UserFactory()
    membership_grant(project=project, email=labeler.email, role=Role.objects.get(name="Labeler"))
    client.force_login(labeler)
    assert client.post(f"/projects/{project.id}/labels/{gull.id}/edit/", {**data, "name": "x"}).status_code == 403
    assert Label.objects.get(pk=gull.pk).name == "herring gull"
