import pytest

from projects.models import Label
from tests.factories import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return make_project(owner=user)


def test_create_list_update_and_delete_labels(api, project):
    created = api.post(
        f"/api/projects/{project.id}/labels/", {"name": "gull", "color": "#00ff00", "hotkey": 1}, format="json"
    )
    assert created.status_code == 201
    label_id = created.json()["id"]
    assert created.json() == {
        "id": label_id,
        "name": "gull",
        "color": "#00ff00",
        "hotkey": 1,
        "keypoint_template": [],
        "attributes": [],
    }
    second = api.post(f"/api/projects/{project.id}/labels/", {"name": "tern"}, format="json").json()
    assert second["hotkey"] == 2  # the lowest hotkey no label holds
    assert second["color"] == "#3cb44b"  # the palette's second colour, since one label existed
    assert [label["name"] for label in api.get(f"/api/projects/{project.id}/labels/").json()] == ["gull", "tern"]
    updated = api.patch(
        f"/api/projects/{project.id}/labels/{label_id}/", {"name": "herring gull", "hotkey": None}, format="json"
    )
    assert updated.json() == {
        "id": label_id,
        "name": "herring gull",
        "color": "#00ff00",
        "hotkey": None,
        "keypoint_template": [],
        "attributes": [],
    }
    assert api.delete(f"/api/projects/{project.id}/labels/{label_id}/").status_code == 204
    assert list(Label.objects.values_list("name", flat=True)) == ["tern"]


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"name": "gull"}, "name", "A label named 'gull' already exists in this project."),
        ({"name": "new", "hotkey": 3}, "hotkey", "Hotkey 3 already belongs to label 'gull'."),
        ({"name": "new", "hotkey": 10}, "hotkey", "Ensure this value is less than or equal to 9."),
        ({"name": "new", "hotkey": 0}, "hotkey", "Ensure this value is greater than or equal to 1."),
        ({"name": "new", "color": "red"}, "color", "This value does not match the required pattern."),
        ({"name": "  "}, "name", "This field may not be blank."),
    ],
)
def test_bad_labels_are_400_and_store_nothing(api, project, payload, field, message):
    Label.objects.create(project=project, name="gull", hotkey=3)
    response = api.post(f"/api/projects/{project.id}/labels/", payload, format="json")
    assert response.status_code == 400
    assert response.json()[field] == [message]
    assert Label.objects.count() == 1


def test_the_same_label_name_may_exist_in_two_projects(api, project, user):
    other = make_project(owner=user, name="Other")
    for p in (project, other):
        assert api.post(f"/api/projects/{p.id}/labels/", {"name": "gull"}, format="json").status_code == 201


def test_a_label_of_another_project_is_404(api, project, user):
    other = make_project(owner=user, name="Other")
    label = Label.objects.create(project=other, name="gull")
    assert api.get(f"/api/projects/{project.id}/labels/{label.id}/").status_code == 404
    assert api.delete(f"/api/projects/{project.id}/labels/{label.id}/").status_code == 404
    assert Label.objects.filter(pk=label.pk).exists()


def test_keypoint_templates(api, project):
    created = api.post(
        f"/api/projects/{project.id}/labels/",
        {"name": "Face", "keypoint_template": ["left eye", "right eye"]},
        format="json",
    ).json()
    assert created["keypoint_template"] == ["left eye", "right eye"]
    response = api.patch(
        f"/api/projects/{project.id}/labels/{created['id']}/", {"keypoint_template": ["eye", "eye"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"keypoint_template": ["Keypoint names must differ from each other."]}
    assert Label.objects.get().keypoint_template == ["left eye", "right eye"]


def test_deleting_a_used_label_asks_for_confirmation_with_counts(api, project, user):
    from annotations.models import Annotation
    from projects.uploads import images_upload
    from tests.factories import image_file

    image = images_upload(project=project, user=user, files=[image_file()], labels=["gull"]).stored[0]
    gull = Label.objects.get(name="gull")
    box = {"x": 1, "y": 1, "width": 5, "height": 5}
    api.put(
        f"/api/images/{image.id}/annotations/",
        {
            "revision": 0,
            "classifications": [{"label": gull.id}],
            "shapes": [
                {"label": gull.id, "kind": "box", "geometry": box},
                {"label": gull.id, "kind": "box", "geometry": box},
            ],
        },
        format="json",
    )
    response = api.delete(f"/api/projects/{project.id}/labels/{gull.id}/")
    assert response.status_code == 409
    assert response.json() == {
        "detail": "2 objects and 1 image classification use this label and would be deleted with it. "
        "Send ?confirm=true to delete them all.",
        "annotations": 2,
        "classifications": 1,
    }
    assert Annotation.objects.count() == 2
    assert api.delete(f"/api/projects/{project.id}/labels/{gull.id}/?confirm=true").status_code == 204
    assert (Label.objects.count(), Annotation.objects.count()) == (0, 0)
    image.refresh_from_db()
    assert image.annotation_revision == 2  # a labeler holding revision 1 must reload, not overwrite


def test_sync_labels_is_a_project_setting(api, project):
    assert api.patch(f"/api/projects/{project.id}/", {"sync_labels": True}, format="json").json()["sync_labels"] is True
