"""Object attributes: labels define them, shapes carry checked values, JSON and COCO keep them."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from projects.attributes import definitions_parse, definitions_text
from projects.models import Label
from projects.uploads import images_upload
from tests.factories import image_bytes, make_project

pytestmark = pytest.mark.django_db

DEFINITIONS = [
    {"name": "truncated", "type": "checkbox"},
    {"name": "count", "type": "number"},
    {"name": "colour", "type": "choice", "choices": ["red", "green"]},
    {"name": "note", "type": "text"},
]


@pytest.fixture
def project(user):
    project = make_project(owner=user)
    images_upload(project=project, user=user, files=[SimpleUploadedFile("a.png", image_bytes(64, 48))], labels=[])
    return project


def box(label_id, **attributes):
    return {
        "label": label_id,
        "kind": "box",
        "geometry": {"x": 1, "y": 1, "width": 5, "height": 5},
        "attributes": attributes,
    }


def test_a_label_defines_attributes_and_shapes_carry_checked_values(api, project):
    created = api.post(f"/api/projects/{project.id}/labels/", {"name": "car", "attributes": DEFINITIONS}, format="json")
    assert created.status_code == 201
    assert created.json()["attributes"] == DEFINITIONS
    label_id, image = created.json()["id"], project.images.get()
    good = box(label_id, truncated=True, count=3, colour="red", note="behind a tree", extra="kept as it is")
    saved = api.put(f"/api/images/{image.id}/annotations/", {"revision": 0, "shapes": [good]}, format="json")
    assert saved.status_code == 200
    assert saved.json()["shapes"][0]["attributes"] == good["attributes"]


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"truncated": "yes"}, "shape 0: attribute 'truncated' must be true or false"),
        ({"count": "3"}, "shape 0: attribute 'count' must be a number"),
        ({"count": True}, "shape 0: attribute 'count' must be a number"),
        ({"colour": "blue"}, "shape 0: attribute 'colour' must be one of red, green"),
        ({"note": 5}, "shape 0: attribute 'note' must be text of at most 1000 characters"),
    ],
)
def test_a_value_that_does_not_fit_its_definition_is_a_400_and_saves_nothing(api, project, attributes, message):
    label = Label.objects.create(project=project, name="car", attributes=DEFINITIONS)
    image = project.images.get()
    response = api.put(
        f"/api/images/{image.id}/annotations/", {"revision": 0, "shapes": [box(label.id, **attributes)]}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"shapes": [message]}
    assert image.annotations.count() == 0


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        ([{"name": "x", "type": "colour"}], "Attribute 1 (x): the type is one of text, number, checkbox, choice."),
        ([{"name": "x", "type": "choice"}], "Attribute 1 (x): a choice needs 1 to 50 choices."),
        ([{"name": "x"}, {"name": "x"}], "Attribute 'x' is defined twice."),
        ([{"type": "text"}], "Attribute 1 needs a name."),
    ],
)
def test_bad_definitions_are_a_400(api, project, definitions, message):
    response = api.post(
        f"/api/projects/{project.id}/labels/", {"name": "car", "attributes": definitions}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"attributes": [message]}
    assert not Label.objects.filter(project=project).exists()


def test_the_settings_line_form_reads_and_writes_definitions():
    text = "truncated: checkbox; count: number; colour: red | green; note"
    assert definitions_parse(text) == DEFINITIONS
    assert definitions_text(DEFINITIONS) == "truncated: checkbox; count: number; colour: red | green; note: text"


@pytest.mark.parametrize("key", ["json", "coco"])
def test_exports_keep_attribute_values_and_json_keeps_the_definitions(api, user, project, key):
    label = Label.objects.create(project=project, name="car", attributes=DEFINITIONS)
    image = project.images.get()
    api.put(
        f"/api/images/{image.id}/annotations/",
        {"revision": 0, "shapes": [box(label.id, count=2, colour="green")]},
        format="json",
    )
    exported = api.get(
        f"/api/projects/{project.id}/export/", {"format": key, "include_images": "true" if key == "coco" else "false"}
    )
    target = make_project(owner=user, name="Copy")
    if key == "json":
        images_upload(project=target, user=user, files=[SimpleUploadedFile("a.png", image_bytes(64, 48))], labels=[])
    upload = SimpleUploadedFile(f"x.{key}", exported.getvalue())
    assert (
        api.post(f"/api/projects/{target.id}/import/", {"format": key, "file": upload}, format="multipart").status_code
        == 200
    )
    copied = target.images.get().annotations.get()
    assert copied.attributes == {"count": 2, "colour": "green"}
    assert copied.label.attributes == (DEFINITIONS if key == "json" else [])  # COCO has no place for definitions


def test_redefining_an_attribute_clears_the_values_that_no_longer_fit_so_every_image_still_saves(api, project):
    label = Label.objects.create(project=project, name="car", attributes=DEFINITIONS)
    image = project.images.get()
    api.put(
        f"/api/images/{image.id}/annotations/",
        {"revision": 0, "shapes": [box(label.id, count=3, colour="red", note="x")]},
        format="json",
    )
    redefined = [
        {"name": "count", "type": "checkbox"},
        {"name": "colour", "type": "choice", "choices": ["red", "blue"]},
    ]
    response = api.patch(f"/api/projects/{project.id}/labels/{label.id}/", {"attributes": redefined}, format="json")
    assert response.status_code == 200
    document = api.get(f"/api/images/{image.id}/annotations/").json()
    assert document["revision"] == 2  # the page that had it open is told
    assert document["shapes"][0]["attributes"] == {
        "colour": "red",
        "note": "x",
    }  # count no longer fits; note is undefined
    assert api.put(f"/api/images/{image.id}/annotations/", document, format="json").status_code == 200
