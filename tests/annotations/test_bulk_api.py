import pytest

from annotations.models import Annotation, Classification
from projects.models import Image, Label
from projects.uploads import images_upload
from tests.factories import image_file, make_project

pytestmark = pytest.mark.django_db

BOX = {"x": 1, "y": 1, "width": 5, "height": 5}


@pytest.fixture
def project(user):
    return make_project(owner=user)


@pytest.fixture
def images(project, user):
    files = [image_file(f"{i}.png", color=(i, 9, 9)) for i in range(3)]
    return images_upload(project=project, user=user, files=files, labels=[]).stored


@pytest.fixture
def gull(project):
    return Label.objects.create(project=project, name="gull")


def bulk(api, project, **body):
    return api.post(f"/api/projects/{project.id}/annotations/bulk/", body, format="json")


def test_append_predictions_to_many_images(api, project, images, gull):
    items = [
        {
            "image": i.id,
            "shapes": [{"label": gull.id, "kind": "box", "geometry": BOX, "source": "prediction", "score": 0.5}],
        }
        for i in images
    ]
    first = bulk(api, project, mode="append", images=items)
    assert first.status_code == 200
    assert first.json() == {"saved": [{"image": i.id, "revision": 1} for i in images]}
    assert bulk(api, project, mode="append", images=items).json()["saved"][0]["revision"] == 2
    assert Annotation.objects.filter(source="prediction").count() == 6


def test_replace_needs_current_revisions_and_saves_nothing_when_one_is_stale(api, project, images, gull):
    api.put(
        f"/api/images/{images[1].id}/annotations/",
        {"revision": 0, "shapes": [{"label": gull.id, "kind": "box", "geometry": BOX}]},
        format="json",
    )
    items = [{"image": i.id, "revision": 0, "classifications": [{"label": gull.id}], "shapes": []} for i in images]
    response = bulk(api, project, mode="replace", images=items)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "1 image(s) were saved since the revisions you sent; nothing was saved.",
        "stale": [{"image": images[1].id, "revision": 1}],
    }
    assert Classification.objects.count() == 0
    items[1]["revision"] = 1
    assert bulk(api, project, mode="replace", images=items).status_code == 200
    assert Annotation.objects.count() == 0
    assert Classification.objects.filter(is_default=True).count() == 3


@pytest.mark.parametrize(
    ("items", "field", "message"),
    [
        ([{"image": 999999, "shapes": []}], "images", "images[0]: image 999999 is not an image of this project"),
        ([{"image": "x"}], "images", 'images[0]: must be an object with an integer "image" id'),
        (
            [{"image": "{a}", "shapes": [{"label": "{l}", "kind": "polyline", "geometry": {"points": [[1, 1]]}}]}],
            "shapes",
            "images[0] shape 0: polyline needs at least 2 points, got 1",
        ),
        ([{"image": "{a}"}, {"image": "{a}"}], "images", "each image may appear only once per request"),
    ],
)
def test_bad_bulk_input_is_400_and_saves_nothing(api, project, images, gull, items, field, message):
    def fill(value):
        ids = {"{a}": images[0].id, "{l}": gull.id}
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return ids.get(value, value) if isinstance(value, str) else value

    response = bulk(api, project, mode="append", images=fill(items))
    assert response.status_code == 400
    assert response.json() == {field: [message]}
    assert Annotation.objects.count() == 0
    assert set(Image.objects.values_list("annotation_revision", flat=True)) == {0}


def test_an_image_of_another_project_is_refused(api, project, images, user):
    other = make_project(owner=user, name="Other")
    foreign = images_upload(project=other, user=user, files=[image_file("f.png", color=(0, 0, 1))], labels=[]).stored[0]
    response = bulk(api, project, mode="append", images=[{"image": foreign.id, "shapes": []}])
    assert response.json() == {"images": [f"images[0]: image {foreign.id} is not an image of this project"]}
