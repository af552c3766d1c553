import numpy as np
import pytest

from annotations.geometry import decode_mask, encode_mask
from projects.uploads import images_upload
from tests.factories import image_file, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(user):
    project = make_project(owner=user)
    return images_upload(project=project, user=user, files=[image_file(width=64, height=48)], labels=[]).stored[0]


def test_rasterize_a_polygon_with_a_hole(api, image):
    polygon = {
        "parts": [{"outer": [[0, 0], [20, 0], [20, 20], [0, 20]], "holes": [[[5, 5], [15, 5], [15, 15], [5, 15]]]}]
    }
    response = api.post(f"/api/images/{image.id}/rasterize/", {"kind": "polygon", "geometry": polygon}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["kind"], body["keypoints"], body["attributes"]) == ("mask", [], {})
    mask = decode_mask(body["geometry"]["rle"])
    assert mask.shape == (48, 64)
    assert int(mask.sum()) == 400 - 100


def test_convert_a_mask_to_a_polygon(api, image):
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 20:50] = True
    body = api.post(
        f"/api/images/{image.id}/polygonize/", {"geometry": {"rle": encode_mask(mask)}, "simplify": 0}, format="json"
    ).json()
    assert body["kind"] == "polygon"
    assert sorted(body["geometry"]["parts"][0]["outer"]) == [[20.0, 10.0], [20.0, 30.0], [50.0, 10.0], [50.0, 30.0]]


@pytest.mark.parametrize(
    ("path", "payload", "expected"),
    [
        (
            "rasterize",
            {"kind": "polyline", "geometry": {"points": [[0, 0], [1, 1]]}},
            {"kind": ['"polyline" is not a valid choice.']},
        ),
        (
            "rasterize",
            {"kind": "polygon", "geometry": {"parts": [{"outer": [[0, 0], [1, 1]]}]}},
            {"geometry": ["polygon part 0 outer ring needs at least 3 points, got 2"]},
        ),
        (
            "polygonize",
            {"geometry": {"rle": {"size": [48, 64], "counts": "PPYo1"}}},
            {"geometry": ["mask counts are not valid COCO compressed RLE"]},
        ),
    ],
)
def test_bad_operations_are_400(api, image, path, payload, expected):
    response = api.post(f"/api/images/{image.id}/{path}/", payload, format="json")
    assert response.status_code == 400
    assert response.json() == expected
