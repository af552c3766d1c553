import pytest

from annotations.geometry import encode_mask
from annotations.models import Annotation, Classification, ImageStatus
from projects.models import Label
from projects.uploads import images_upload
from tests.conftest import client_for
from tests.factories import UserFactory, image_file, make_project

pytestmark = pytest.mark.django_db

BOX = {"x": 10, "y": 5, "width": 20, "height": 10}
POLYGON = {
    "parts": [
        {"outer": [[0, 0], [40, 0], [40, 30], [0, 30]], "holes": [[[10, 10], [20, 10], [20, 20], [10, 20]]]},
        {"outer": [[50, 5], [60, 5], [55, 15]], "holes": []},
    ]
}


@pytest.fixture
def project(user):
    return make_project(owner=user)


@pytest.fixture
def image(project, user):
    return images_upload(project=project, user=user, files=[image_file(width=64, height=48)], labels=[]).stored[0]


@pytest.fixture
def gull(project):
    return Label.objects.create(project=project, name="gull")


@pytest.fixture
def tern(project):
    return Label.objects.create(project=project, name="tern")


def url(image):
    return f"/api/images/{image.id}/annotations/"


def test_a_new_image_has_an_empty_document_at_revision_0(api, image):
    assert api.get(url(image)).json() == {"image": image.id, "revision": 0, "classifications": [], "shapes": []}


def test_save_every_kind_and_read_it_back(api, image, gull, tern, user):
    import numpy as np

    mask = np.zeros((48, 64), dtype=bool)
    mask[10:20, 30:40] = True
    shapes = [
        {
            "label": gull.id,
            "kind": "box",
            "geometry": BOX,
            "occluded": True,
            "keypoints": [{"name": "beak", "x": 12, "y": 7, "visible": False}],
        },
        {"label": tern.id, "kind": "polygon", "geometry": POLYGON, "attributes": {"age": "adult"}},
        {"label": gull.id, "kind": "polyline", "geometry": {"points": [[1, 1], [5, 5], [9, 1]]}},
        {"label": gull.id, "kind": "points", "geometry": {"points": [[3, 4]]}, "source": "prediction", "score": 0.75},
        {"label": tern.id, "kind": "mask", "geometry": {"rle": encode_mask(mask)}, "source": "smart"},
    ]
    response = api.put(
        url(image), {"revision": 0, "classifications": [{"label": tern.id}], "shapes": shapes}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["revision"] == 1
    assert body["classifications"] == [{"label": tern.id, "name": "tern", "default": True}]
    assert [s["kind"] for s in body["shapes"]] == ["box", "polygon", "polyline", "points", "mask"]
    box = body["shapes"][0]
    assert box["geometry"] == {"x": 10.0, "y": 5.0, "width": 20.0, "height": 10.0}
    assert (box["occluded"], box["keypoints"], box["author"], box["source"], box["score"]) == (
        True,
        [{"name": "beak", "x": 12.0, "y": 7.0, "visible": False}],
        user.id,
        "manual",
        None,
    )
    assert body["shapes"][1]["geometry"] == POLYGON
    assert body["shapes"][1]["attributes"] == {"age": "adult"}
    assert (body["shapes"][3]["source"], body["shapes"][3]["score"]) == ("prediction", 0.75)
    assert body["shapes"][4]["geometry"]["rle"] == encode_mask(mask)
    assert api.get(url(image)).json() == body
    assert ImageStatus.objects.get(image=image, user=user).status == "labeled"


def test_coordinates_outside_the_image_are_clipped(api, image, gull):
    shapes = [
        {"label": gull.id, "kind": "box", "geometry": {"x": -10, "y": 40, "width": 100, "height": 100}},
        {"label": gull.id, "kind": "polyline", "geometry": {"points": [[-5, -5], [100, 20]]}},
    ]
    body = api.put(url(image), {"revision": 0, "shapes": shapes}, format="json").json()
    assert body["shapes"][0]["geometry"] == {"x": 0.0, "y": 40.0, "width": 64.0, "height": 8.0}
    assert body["shapes"][1]["geometry"] == {"points": [[0.0, 0.0], [64.0, 20.0]]}


def test_saving_keeps_ids_of_unchanged_shapes_and_replaces_the_rest(api, image, gull, tern):
    first = api.put(
        url(image),
        {
            "revision": 0,
            "shapes": [
                {"label": gull.id, "kind": "box", "geometry": BOX},
                {"label": tern.id, "kind": "points", "geometry": {"points": [[1, 1]]}},
            ],
        },
        format="json",
    ).json()
    kept, dropped = first["shapes"]
    moved = {**kept, "geometry": {**BOX, "x": 11}}
    second = api.put(
        url(image),
        {
            "revision": 1,
            "shapes": [
                moved,
                {"label": tern.id, "kind": "polyline", "geometry": {"points": [[1, 1], [2, 2]]}},
            ],
        },
        format="json",
    ).json()
    assert second["revision"] == 2
    assert second["shapes"][0]["id"] == kept["id"]
    assert second["shapes"][0]["geometry"]["x"] == 11.0
    assert second["shapes"][0]["created_at"] == kept["created_at"]
    assert second["shapes"][0]["updated_at"] > kept["updated_at"]
    assert second["shapes"][1]["id"] not in {kept["id"], dropped["id"]}
    assert Annotation.objects.count() == 2


def test_a_stale_revision_is_409_with_the_current_document_and_changes_nothing(api, image, gull):
    api.put(url(image), {"revision": 0, "shapes": [{"label": gull.id, "kind": "box", "geometry": BOX}]}, format="json")
    response = api.put(url(image), {"revision": 0, "shapes": []}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["detail"] == "Someone saved this image since revision 0; it is now at revision 1."
    assert body["current"]["revision"] == 1
    assert [s["kind"] for s in body["current"]["shapes"]] == ["box"]
    assert Annotation.objects.count() == 1


BAD_SHAPES = [
    (
        {"kind": "polygon", "geometry": {"parts": [{"outer": [[0, 0], [5, 5]], "holes": []}]}},
        "shape 1: polygon part 0 outer ring needs at least 3 points, got 2",
    ),
    (
        {"kind": "polygon", "geometry": {"parts": [{"outer": [[0, 0], [5, 5], [9, 0]], "holes": [[[1, 1], [2, 2]]]}]}},
        "shape 1: polygon part 0 hole 0 needs at least 3 points, got 2",
    ),
    ({"kind": "polyline", "geometry": {"points": [[0, 0]]}}, "shape 1: polyline needs at least 2 points, got 1"),
    ({"kind": "points", "geometry": {"points": [[0, 0], [1, "NaN"]]}}, "shape 1: points point 1 y must be a number"),
    (
        {"kind": "box", "geometry": {"x": 0, "y": 0, "width": 0, "height": 1}},
        "shape 1: box width and height must be positive",
    ),
    ({"kind": "box", "geometry": {"x": 100, "y": 0, "width": 5, "height": 5}}, "shape 1: box lies outside the image"),
    (
        {"kind": "circle", "geometry": {}},
        "shape 1: unknown kind 'circle'; use one of box, polygon, polyline, points, mask",
    ),
    (
        {"kind": "mask", "geometry": {"rle": {"size": [10, 10], "counts": "0"}}},
        "shape 1: mask size [10, 10] is not the image's [height, width] = [48, 64]",
    ),
    (
        {"kind": "mask", "geometry": {"rle": {"size": [48, 64], "counts": "!!"}}},
        "shape 1: mask counts are not valid COCO compressed RLE",
    ),
    (
        {"kind": "polyline", "geometry": {"points": [[0, 0], [1, 1]]}, "keypoints": [{"name": "a", "x": 1, "y": 1}]},
        "shape 1: keypoints belong to boxes and polygons, not to a polyline",
    ),
    ({"kind": "box", "geometry": BOX, "score": 2}, "shape 1: score must be a number from 0 to 1, or null"),
    ({"kind": "box", "geometry": BOX, "colour": "red"}, "shape 1: unknown fields: colour"),
]


@pytest.mark.parametrize(("shape", "message"), BAD_SHAPES, ids=[m for _, m in BAD_SHAPES])
def test_bad_shapes_are_400_naming_the_shape_and_nothing_is_saved(api, image, gull, shape, message):
    good = {"label": gull.id, "kind": "box", "geometry": BOX}
    response = api.put(url(image), {"revision": 0, "shapes": [good, {"label": gull.id, **shape}]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"shapes": [message]}
    image.refresh_from_db()
    assert (image.annotation_revision, Annotation.objects.count()) == (0, 0)


def test_a_label_from_another_project_is_400(api, image, user):
    foreign = Label.objects.create(project=make_project(owner=user, name="Other"), name="gull")
    response = api.put(
        url(image), {"revision": 0, "shapes": [{"label": foreign.id, "kind": "box", "geometry": BOX}]}, format="json"
    )
    assert response.json() == {"shapes": [f"shape 0: label {foreign.id} is not a label of this project"]}
    response = api.put(url(image), {"revision": 0, "classifications": [{"label": foreign.id}]}, format="json")
    assert response.json() == {
        "classifications": [f"classifications[0]: label {foreign.id} is not a label of this project"]
    }
    assert Classification.objects.count() == 0


def test_classifications_with_one_default(api, image, gull, tern):
    body = api.put(
        url(image),
        {"revision": 0, "classifications": [{"label": gull.id}, {"label": tern.id, "default": True}]},
        format="json",
    ).json()
    assert body["classifications"] == [
        {"label": tern.id, "name": "tern", "default": True},
        {"label": gull.id, "name": "gull", "default": False},
    ]
    two = api.put(
        url(image),
        {"revision": 1, "classifications": [{"label": gull.id, "default": True}, {"label": tern.id, "default": True}]},
        format="json",
    )
    assert two.json() == {"classifications": ["classifications: only one label can be the default"]}


def test_synchronised_labels_label_the_image(api, image, project, gull, tern):
    project.sync_labels = True
    project.save()
    body = api.put(
        url(image),
        {
            "revision": 0,
            "classifications": [{"label": tern.id}],
            "shapes": [{"label": gull.id, "kind": "box", "geometry": BOX}],
        },
        format="json",
    ).json()
    assert body["classifications"] == [
        {"label": tern.id, "name": "tern", "default": True},
        {"label": gull.id, "name": "gull", "default": False},
    ]


def test_roles_that_may_not_annotate_get_403_and_strangers_404(image, project, gull):
    viewer, stranger = UserFactory(), UserFactory()
    from projects.models import Role
    from projects.services import membership_grant

    membership_grant(project=project, email=viewer.email, role=Role.objects.get(name="Viewer"))
    doc = {"revision": 0, "shapes": [{"label": gull.id, "kind": "box", "geometry": BOX}]}
    assert client_for(viewer).get(url(image)).status_code == 200
    assert client_for(viewer).put(url(image), doc, format="json").status_code == 403
    assert client_for(stranger).get(url(image)).status_code == 404
    assert client_for(stranger).put(url(image), doc, format="json").status_code == 404
    assert Annotation.objects.count() == 0


def test_non_finite_numbers_in_json_are_400(api, image, gull):
    body = '{"revision": 0, "shapes": [{"label": %d, "kind": "box", "geometry": {"x": NaN, "y": 0, "width": 1, "height": 1}}]}'
    response = api.put(url(image), body % gull.id, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert Annotation.objects.count() == 0


def test_a_self_intersecting_polygon_is_400_unless_repair_is_asked_for(api, image, gull):
    bowtie = {"parts": [{"outer": [[0, 0], [10, 10], [10, 0], [0, 6]], "holes": []}]}
    shape = {"label": gull.id, "kind": "polygon", "geometry": bowtie}
    url = f"/api/images/{image.id}/annotations/"
    refused = api.put(url, {"revision": 0, "shapes": [shape]}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {
        "shapes": [
            "shape 0: polygon part 0 is not a valid polygon (Self-intersection[3.75 3.75]); fix it, or send "
            '"repair": true to have it split into valid parts'
        ]
    }
    assert Annotation.objects.count() == 0
    saved = api.put(url, {"revision": 0, "shapes": [{**shape, "repair": True}]}, format="json")
    assert saved.status_code == 200
    assert [len(s["geometry"]["parts"]) for s in saved.json()["shapes"]] == [2]
