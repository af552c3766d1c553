"""Every role, a stranger and an anonymous client against every endpoint and page so far.

Allowed requests succeed; denied ones get 401/403/404 and change nothing in the database.
"""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from annotations.geometry import encode_mask
from annotations.models import Annotation, Classification, ImageStatus, LabelingSession
from jobs.models import Job
from projects.models import Image, Invitation, Label, Membership, Project
from projects.uploads import images_upload
from tests.conftest import client_for
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = pytest.mark.django_db

ROLES = ["Owner", "Admin", "Developer", "Labeler", "Viewer"]
LABELERS = ["Owner", "Admin", "Developer", "Labeler"]
EXPORTERS = ["Owner", "Admin", "Developer"]
WHO = [*ROLES, "stranger", "anonymous"]


@pytest.fixture
def world():
    owner = UserFactory(username="owner")
    members = {role: UserFactory(username=role.lower()) for role in ROLES[1:]}
    project = make_project(owner=owner, **members)
    target = UserFactory(username="target")  # a member that member-management requests act on
    make_project(owner=owner, name="other")
    from projects.models import Role
    from projects.services import membership_grant

    membership_grant(project=project, email=target.email, role=Role.objects.get(name="Viewer"))
    label = Label.objects.create(project=project, name="gull")
    image = images_upload(
        project=project, user=owner, files=[SimpleUploadedFile("a.png", image_bytes())], labels=[]
    ).stored[0]
    users = {"Owner": owner, **members, "stranger": UserFactory(username="stranger"), "anonymous": None}
    newcomer = UserFactory(username="newcomer", email="newcomer@example.com")
    from annotations.services import transfers

    # A queued export (in tests nothing is enqueued until a commit): the job that cancel requests act on.
    job = transfers.transfer_start(project=project, user=owner, direction="export", format_key="coco")
    from projects.services import invitation_create

    invitation = invitation_create(
        project=project, email="invited@example.com", role=Role.objects.get(name="Viewer"), invited_by=owner
    )
    return {
        "invitation": invitation,
        "project": project,
        "label": label,
        "image": image,
        "users": users,
        "target": target,
        "newcomer": newcomer,
        "job": job,
    }


def snapshot():
    """Everything a denied request could have changed."""
    return (
        sorted(Project.objects.values_list("id", "name", "description", "owner_id")),
        sorted(Label.objects.values_list("id", "name", "color", "hotkey")),
        sorted(Membership.objects.values_list("project_id", "user_id", "role__name")),
        sorted(Invitation.objects.values_list("project_id", "email", "role__name")),
        sorted(Image.objects.values_list("id", "name")),
        sorted(Classification.objects.values_list("image_id", "label_id", "is_default")),
        sorted(Job.objects.values_list("id", "kind", "status", "cancel_requested")),
        sorted(Annotation.objects.values_list("id", "image_id", "label_id", "kind")),
        sorted(ImageStatus.objects.values_list("image_id", "user_id", "status")),
        sorted(LabelingSession.objects.values_list("image_id", "user_id", "active_seconds")),
        sorted(Image.objects.values_list("id", "is_validation")),
    )


SQUARE = encode_mask(np.pad(np.ones((10, 10), dtype=bool), ((5, 33), (5, 49))))  # on the 64 x 48 image
# Rows whose allowed request computes an answer without storing anything (a GET's safety, over POST).
COMPUTES = {"rasterize", "polygonize", "smart prepare"}
# (name, method, url, body, allowed roles). URLs are formatted with the world's ids.
API = [
    ("project get", "get", "/api/projects/{p}/", None, ROLES),
    ("project patch", "patch", "/api/projects/{p}/", {"name": "Renamed"}, ["Owner", "Admin"]),
    ("project delete", "delete", "/api/projects/{p}/", None, ["Owner"]),
    ("labels list", "get", "/api/projects/{p}/labels/", None, ROLES),
    ("label create", "post", "/api/projects/{p}/labels/", {"name": "tern"}, ["Owner", "Admin", "Developer"]),
    ("label get", "get", "/api/projects/{p}/labels/{l}/", None, ROLES),
    ("label patch", "patch", "/api/projects/{p}/labels/{l}/", {"color": "#000000"}, ["Owner", "Admin", "Developer"]),
    ("label delete", "delete", "/api/projects/{p}/labels/{l}/", None, ["Owner", "Admin", "Developer"]),
    ("members list", "get", "/api/projects/{p}/members/", None, ROLES),
    (
        "member add",
        "post",
        "/api/projects/{p}/members/",
        {"email": "newcomer@example.com", "role": "Viewer"},
        ["Owner", "Admin"],
    ),
    ("member get", "get", "/api/projects/{p}/members/{t}/", None, ROLES),
    ("invitations list", "get", "/api/projects/{p}/invitations/", None, ["Owner", "Admin"]),
    ("invitation withdraw", "delete", "/api/projects/{p}/invitations/{inv}/", None, ["Owner", "Admin"]),
    ("member role", "patch", "/api/projects/{p}/members/{t}/", {"role": "Labeler"}, ["Owner", "Admin"]),
    ("member remove", "delete", "/api/projects/{p}/members/{t}/", None, ["Owner", "Admin"]),
    ("transfer", "post", "/api/projects/{p}/transfer-ownership/", {"user_id": "{t}"}, ["Owner"]),
    ("images list", "get", "/api/projects/{p}/images/", None, ROLES),
    ("upload", "upload", "/api/projects/{p}/images/", None, ["Owner", "Admin", "Developer"]),
    ("image get", "get", "/api/images/{i}/", None, ROLES),
    ("image file", "get", "/api/images/{i}/file/", None, ROLES),
    ("image thumbnail", "get", "/api/images/{i}/thumbnail/", None, ROLES),
    ("image delete", "delete", "/api/images/{i}/", None, ["Owner", "Admin", "Developer"]),
    ("image history", "get", "/api/images/{i}/history/", None, ROLES),
    ("jobs list", "get", "/api/projects/{p}/jobs/", None, ROLES),
    ("job get", "get", "/api/jobs/{j}/", None, ROLES),
    ("job cancel", "post", "/api/jobs/{j}/cancel/", None, ["Owner", "Admin", "Developer"]),
    ("image patch", "patch", "/api/images/{i}/", {"is_validation": True}, LABELERS),
    (
        "images validation",
        "post",
        "/api/projects/{p}/images/validation/",
        {"images": ["{i}"], "is_validation": True},
        LABELERS,
    ),
    ("annotations get", "get", "/api/images/{i}/annotations/", None, ROLES),
    (
        "annotations put",
        "put",
        "/api/images/{i}/annotations/",
        {
            "revision": 0,
            "shapes": [{"label": "{l}", "kind": "box", "geometry": {"x": 1, "y": 1, "width": 5, "height": 5}}],
        },
        LABELERS,
    ),
    ("seen", "post", "/api/images/{i}/seen/", None, ROLES),
    ("heartbeat", "post", "/api/images/{i}/heartbeat/", None, LABELERS),
    (
        "rasterize",
        "post",
        "/api/images/{i}/rasterize/",
        {"kind": "box", "geometry": {"x": 1, "y": 1, "width": 5, "height": 5}},
        LABELERS,
    ),
    (
        "polygonize",
        "post",
        "/api/images/{i}/polygonize/",
        {"geometry": {"rle": SQUARE}},
        LABELERS,
    ),
    ("smart get", "get", "/api/images/{i}/smart/", None, LABELERS),
    ("smart prepare", "post", "/api/images/{i}/smart/prepare/", {}, LABELERS),
    (
        "bulk",
        "post",
        "/api/projects/{p}/annotations/bulk/",
        {
            "mode": "append",
            "images": [
                {
                    "image": "{i}",
                    "shapes": [{"label": "{l}", "kind": "box", "geometry": {"x": 1, "y": 1, "width": 4, "height": 4}}],
                }
            ],
        },
        LABELERS,
    ),
    ("export get", "get", "/api/projects/{p}/export/?format=csv", None, EXPORTERS),
    ("export start", "post", "/api/projects/{p}/export/", {"format": "csv"}, EXPORTERS),
    ("transfer get", "get", "/api/transfers/{j}/", None, EXPORTERS),
    ("similar by image", "get", "/api/projects/{p}/similar/?image={i}", None, ROLES),
    ("similarity index", "get", "/api/projects/{p}/similarity-index/", None, ROLES),
    ("similar pairs", "get", "/api/projects/{p}/similar-pairs/", None, ROLES),
    (
        "pair search start",
        "post",
        "/api/projects/{p}/similar-pairs/",
        {"limit": 2},
        ["Owner", "Admin", "Developer", "Labeler"],
    ),
]
PAGES = [
    ("grid page", "get", "/projects/{p}/", None, ROLES),
    ("labeler page", "get", "/projects/{p}/images/{i}/label/", None, ROLES),
    ("label selected", "get", "/projects/{p}/images/label/?image={i}", None, ROLES),
    ("labeler strip", "get", "/projects/{p}/images/{i}/label/strip/", None, ROLES),
    ("transfer page", "get", "/projects/{p}/transfer/", None, ROLES),
    ("transfer job page", "get", "/projects/{p}/transfer/jobs/{j}/", None, ROLES),
    (
        "transfer start page",
        "post",
        "/projects/{p}/transfer/start/",
        {"export": "1", "format": "csv"},
        EXPORTERS,
    ),
    ("similar page", "get", "/projects/{p}/similar/", None, ROLES),
    ("pairs page", "get", "/projects/{p}/similar-pairs/", None, ROLES),
    ("similarity index line", "get", "/projects/{p}/similarity-index/", None, ROLES),
    (
        "images validation page",
        "post",
        "/projects/{p}/images/validation/",
        {"image": "{i}", "validation": "add"},
        LABELERS,
    ),
    ("settings page", "get", "/projects/{p}/settings/", None, ROLES),
    ("settings save", "post", "/projects/{p}/settings/", {"name": "Renamed", "description": ""}, ["Owner", "Admin"]),
    ("delete page", "post", "/projects/{p}/delete/", {"confirm_name": "Birds"}, ["Owner"]),
    ("label add page", "post", "/projects/{p}/labels/", {"name": "tern"}, ["Owner", "Admin", "Developer"]),
    ("label delete page", "post", "/projects/{p}/labels/{l}/delete/", {}, ["Owner", "Admin", "Developer"]),
    (
        "member add page",
        "post",
        "/projects/{p}/members/",
        {"email": "newcomer@example.com", "role": "{labeler_role}"},
        ["Owner", "Admin"],
    ),
    ("member role page", "post", "/projects/{p}/members/{t}/role/", {"role": "{labeler_role}"}, ["Owner", "Admin"]),
    ("invitation withdraw page", "post", "/projects/{p}/invitations/{inv}/withdraw/", {}, ["Owner", "Admin"]),
    ("member remove page", "post", "/projects/{p}/members/{t}/remove/", {}, ["Owner", "Admin"]),
    ("transfer page", "post", "/projects/{p}/members/{t}/owner/", {}, ["Owner"]),
    ("images delete page", "post", "/projects/{p}/images/delete/", {"image": "{i}"}, ["Owner", "Admin", "Developer"]),
    (
        "images label page",
        "post",
        "/projects/{p}/images/labels/",
        {"image": "{i}", "label": "{l}", "operation": "assign"},
        ["Owner", "Admin", "Developer", "Labeler"],
    ),
    (
        "label edit page",
        "post",
        "/projects/{p}/labels/{l}/edit/",
        {"name": "herring gull", "color": "#112233", "hotkey": "", "keypoints": "", "attributes": ""},
        ["Owner", "Admin", "Developer"],
    ),
    ("jobs page", "get", "/projects/{p}/jobs/", None, ROLES),
    ("job cancel page", "post", "/projects/{p}/jobs/{j}/cancel/", {}, ["Owner", "Admin", "Developer"]),
]


def _fill(value, world):
    from projects.models import Role

    ids = {
        "p": world["project"].id,
        "l": world["label"].id,
        "i": world["image"].id,
        "t": world["target"].id,
        "j": world["job"].id,
        "inv": world["invitation"].id,
        "labeler_role": Role.objects.get(name="Labeler").id,
    }
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]  # an id in a JSON body is a number
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    return value


def _api_call(who, method, url, body, world):
    user = world["users"][who]
    client = APIClient() if user is None else client_for(user)
    if method == "upload":
        files = [SimpleUploadedFile("new.png", image_bytes(color=(9, 9, 9)))]
        return client.post(url, {"files": files}, format="multipart")
    return getattr(client, method)(url, body, format="json")


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(("name", "method", "url", "body", "allowed"), API, ids=[row[0] for row in API])
def test_api(world, who, name, method, url, body, allowed):
    before = snapshot()
    response = _api_call(who, method, _fill(url, world), _fill(body, world), world)
    if who in allowed:
        assert response.status_code in {200, 201, 202, 204}, response.content
        if method != "get" and name not in COMPUTES:
            assert snapshot() != before
    else:
        expected = {"anonymous": 401, "stranger": 404}.get(who, 403)
        assert response.status_code == expected, response.content
        assert snapshot() == before


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(("name", "method", "url", "body", "allowed"), PAGES, ids=[row[0] for row in PAGES])
def test_pages(world, who, name, method, url, body, allowed):
    before = snapshot()
    client = Client()
    if world["users"][who] is not None:
        client.force_login(world["users"][who])
    response = getattr(client, method)(_fill(url, world), _fill(body, world))
    if who in allowed:
        assert response.status_code in {200, 302}
        if method == "post":
            assert snapshot() != before
    elif who == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
        assert snapshot() == before
    else:
        assert response.status_code == (404 if who == "stranger" else 403)
        assert snapshot() == before


# Endpoints outside any project: every signed-in user may use them, an anonymous client may not.
ACCOUNT_API = [
    ("get", "/api/projects/"),
    ("post", "/api/projects/"),
    ("get", "/api/me/"),
    ("get", "/api/roles/"),
    ("get", "/api/invitations/"),
    ("get", "/api/labeling-time/"),
]
ACCOUNT_PAGES = [
    ("get", "/projects/"),
    ("post", "/projects/"),
    ("get", "/accounts/profile/"),
    ("get", "/labeling-time/"),
    ("post", "/accounts/profile/token/"),
]


@pytest.mark.parametrize(("method", "url"), ACCOUNT_API)
def test_account_api(method, url):
    body = {"name": "Fresh"} if method == "post" else None
    assert getattr(APIClient(), method)(url, body, format="json").status_code == 401
    assert Project.objects.count() == 0
    assert getattr(client_for(UserFactory()), method)(url, body, format="json").status_code in {200, 201}


@pytest.mark.parametrize(("method", "url"), ACCOUNT_PAGES)
def test_account_pages(method, url):
    body = {"name": "Fresh", "description": ""} if method == "post" else None
    response = getattr(Client(), method)(url, body)
    assert (response.status_code, response["Location"].split("?")[0]) == (302, "/accounts/login/")
    assert Project.objects.count() == 0
    client = Client()
    client.force_login(UserFactory())
    assert getattr(client, method)(url, body).status_code in {200, 302}
