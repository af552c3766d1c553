"""One permission matrix, generated from the URL configuration.

Every route of every app (admin's aside), with every method its view answers, is a test here. Each is tried by
an anonymous client, a stranger, a user with a pending invitation, and each role of the project. A caller the
entry allows gets its success code; every other gets the one right refusal: 401 from the API or the log-in
page for an anonymous client, 404 for whoever is not a member (nothing is told about the project), 403 for a
member whose role lacks the right. Each call runs in a savepoint on the same world, so every caller meets the
same data; a denied call leaves every row of every table as it was, and an allowed mutation changes some.

A route without an entry fails here, so an endpoint is in the matrix from its first day. Public routes are
listed with their reason. Function views declare their methods (require_safe, require_http_methods): a view
that does not is a failure too, because its methods could not be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from annotations.geometry import encode_mask
from annotations.models import ReplacedDocument
from annotations.services import history, transfers
from jobs.runner import job_run
from projects.models import Project, Role
from projects.services import invitation_create, membership_grant
from similarity import searches
from tests.conftest import client_for
from tests.factories import UserFactory, image_bytes, make_project
from tests.training.conftest import colour_png, upload
from tests.training.test_model_load import loadable
from training import services as training
from training.models import ModelVersion, Prediction

pytestmark = pytest.mark.django_db

ROLES = ["Owner", "Admin", "Developer", "Labeler", "Viewer"]
WHO = [*ROLES, "stranger", "invitee", "anonymous"]
MEMBERS = ROLES
ANNOTATORS = ["Owner", "Admin", "Developer", "Labeler"]
DEVELOPERS = ["Owner", "Admin", "Developer"]  # labels, uploads, exports, training
MANAGERS = ["Owner", "Admin"]
OWNER = ["Owner"]
SIGNED_IN = [*ROLES, "stranger", "invitee"]  # what is a user's own, outside any project
INVITEE = ["invitee"]


@dataclass(frozen=True)
class Entry:
    """How a route is called and who may: url and body are formatted with the world's ids."""

    url: str
    allowed: list[str]
    body: object = None
    send: str = "json"  # json; form (an HTML form); multipart; image (a raw PNG body)
    codes: frozenset[int] | None = None  # an allowed caller's answer, when not the usual
    computes: bool = False  # an allowed POST that answers without storing anything
    members_see_404: bool = False  # a resource of one user: to anyone else it does not exist
    extra: dict = field(default_factory=dict)  # request headers


SQUARE = encode_mask(np.pad(np.ones((10, 10), dtype=bool), ((5, 33), (5, 49))))  # on the 64 x 48 image
BOX = {"x": 1, "y": 1, "width": 5, "height": 5}
TINY = {"epochs": 1, "batch_size": 8, "fine_tune": "head", "patience": 0}
SHAPES = {"revision": "{rev}", "shapes": [{"label": "{l}", "kind": "box", "geometry": BOX}]}
BULK = {"mode": "append", "images": [{"image": "{i}", "shapes": [{"label": "{l}", "kind": "box", "geometry": BOX}]}]}
CSV = ("file", "a.png,gull\n")  # a multipart file field: (name, content)
PNG = ("file", "png")
API, PAGE = "api", "page"

# (route, method) -> Entry. The route is the URL pattern as Django joins it.
MATRIX: dict[tuple[str, str], Entry] = {
    # Outside any project.
    ("api/projects/", "get"): Entry("/api/projects/", SIGNED_IN),
    ("api/projects/", "post"): Entry("/api/projects/", SIGNED_IN, {"name": "Fresh"}),
    ("api/me/", "get"): Entry("/api/me/", SIGNED_IN),
    ("api/roles/", "get"): Entry("/api/roles/", SIGNED_IN),
    ("api/invitations/", "get"): Entry("/api/invitations/", SIGNED_IN),
    ("api/labeling-time/", "get"): Entry("/api/labeling-time/", SIGNED_IN),
    ("api/invitations/<int:invitation_id>/accept/", "post"): Entry(
        "/api/invitations/{inv}/accept/", INVITEE, members_see_404=True
    ),
    ("api/invitations/<int:invitation_id>/decline/", "post"): Entry(
        "/api/invitations/{inv}/decline/", INVITEE, members_see_404=True
    ),
    ("projects/", "get"): Entry("/projects/", SIGNED_IN),
    ("projects/", "post"): Entry("/projects/", SIGNED_IN, {"name": "Fresh", "description": ""}),
    ("accounts/profile/", "get"): Entry("/accounts/profile/", SIGNED_IN),
    ("accounts/profile/token/", "post"): Entry("/accounts/profile/token/", SIGNED_IN),
    ("labeling-time/", "get"): Entry("/labeling-time/", SIGNED_IN),
    ("projects/invitations/<int:invitation_id>/<str:answer>/", "post"): Entry(
        "/projects/invitations/{inv}/accept/", INVITEE, members_see_404=True
    ),
    # Projects, labels, members.
    ("api/projects/<int:project_id>/", "get"): Entry("/api/projects/{p}/", MEMBERS),
    ("api/projects/<int:project_id>/", "patch"): Entry("/api/projects/{p}/", MANAGERS, {"name": "Renamed"}),
    ("api/projects/<int:project_id>/", "delete"): Entry("/api/projects/{p}/", OWNER),
    ("api/projects/<int:project_id>/labels/", "get"): Entry("/api/projects/{p}/labels/", MEMBERS),
    ("api/projects/<int:project_id>/labels/", "post"): Entry("/api/projects/{p}/labels/", DEVELOPERS, {"name": "tern"}),
    ("api/projects/<int:project_id>/labels/<int:label_id>/", "get"): Entry("/api/projects/{p}/labels/{l}/", MEMBERS),
    ("api/projects/<int:project_id>/labels/<int:label_id>/", "patch"): Entry(
        "/api/projects/{p}/labels/{l}/", DEVELOPERS, {"color": "#000000"}
    ),
    ("api/projects/<int:project_id>/labels/<int:label_id>/", "delete"): Entry(
        "/api/projects/{p}/labels/{l}/", DEVELOPERS
    ),
    ("api/projects/<int:project_id>/members/", "get"): Entry("/api/projects/{p}/members/", MEMBERS),
    ("api/projects/<int:project_id>/members/", "post"): Entry(
        "/api/projects/{p}/members/", MANAGERS, {"email": "newcomer@example.com", "role": "Viewer"}
    ),
    ("api/projects/<int:project_id>/members/<int:user_id>/", "get"): Entry("/api/projects/{p}/members/{t}/", MEMBERS),
    ("api/projects/<int:project_id>/members/<int:user_id>/", "patch"): Entry(
        "/api/projects/{p}/members/{t}/", MANAGERS, {"role": "Labeler"}
    ),
    ("api/projects/<int:project_id>/members/<int:user_id>/", "delete"): Entry(
        "/api/projects/{p}/members/{t}/", MANAGERS
    ),
    ("api/projects/<int:project_id>/invitations/", "get"): Entry("/api/projects/{p}/invitations/", MANAGERS),
    ("api/projects/<int:project_id>/invitations/<int:invitation_id>/", "delete"): Entry(
        "/api/projects/{p}/invitations/{inv}/", MANAGERS
    ),
    ("api/projects/<int:project_id>/transfer-ownership/", "post"): Entry(
        "/api/projects/{p}/transfer-ownership/", OWNER, {"user_id": "{t}"}
    ),
    # Images.
    ("api/projects/<int:project_id>/images/", "get"): Entry("/api/projects/{p}/images/", MEMBERS),
    ("api/projects/<int:project_id>/images/", "post"): Entry(
        "/api/projects/{p}/images/", DEVELOPERS, {"files": ("new.png", "png")}, send="multipart"
    ),
    ("api/projects/<int:project_id>/images/validation/", "post"): Entry(
        "/api/projects/{p}/images/validation/", ANNOTATORS, {"images": ["{i}"], "is_validation": True}
    ),
    ("api/images/<int:image_id>/", "get"): Entry("/api/images/{i}/", MEMBERS),
    ("api/images/<int:image_id>/", "patch"): Entry("/api/images/{i}/", ANNOTATORS, {"is_validation": True}),
    ("api/images/<int:image_id>/", "delete"): Entry("/api/images/{i}/", DEVELOPERS),
    ("api/images/<int:image_id>/file/", "get"): Entry("/api/images/{i}/file/", MEMBERS),
    ("api/images/<int:image_id>/thumbnail/", "get"): Entry("/api/images/{i}/thumbnail/", MEMBERS),
    # Annotations, history, the labeler's helpers.
    ("api/images/<int:image_id>/annotations/", "get"): Entry("/api/images/{i}/annotations/", MEMBERS),
    ("api/images/<int:image_id>/annotations/", "put"): Entry("/api/images/{i}/annotations/", ANNOTATORS, SHAPES),
    ("api/images/<int:image_id>/history/", "get"): Entry("/api/images/{h_image}/history/", MEMBERS),
    ("api/images/<int:image_id>/history/<int:entry_id>/restore/", "post"): Entry(
        "/api/images/{h_image}/history/{h}/restore/", ANNOTATORS
    ),
    ("api/images/<int:image_id>/seen/", "post"): Entry("/api/images/{i}/seen/", MEMBERS),
    ("api/images/<int:image_id>/heartbeat/", "post"): Entry("/api/images/{i}/heartbeat/", ANNOTATORS),
    ("api/images/<int:image_id>/rasterize/", "post"): Entry(
        "/api/images/{i}/rasterize/", ANNOTATORS, {"kind": "box", "geometry": BOX}, computes=True
    ),
    ("api/images/<int:image_id>/polygonize/", "post"): Entry(
        "/api/images/{i}/polygonize/", ANNOTATORS, {"geometry": {"rle": SQUARE}}, computes=True
    ),
    ("api/images/<int:image_id>/smart/", "get"): Entry("/api/images/{i}/smart/", ANNOTATORS),
    ("api/images/<int:image_id>/smart/", "post"): Entry(
        "/api/images/{i}/smart/",
        ANNOTATORS,
        {"box": {"x": 4, "y": 4, "width": 40, "height": 30}, "foreground": [[20, 20]]},
        computes=True,
    ),
    ("api/images/<int:image_id>/smart/prepare/", "post"): Entry(
        "/api/images/{i}/smart/prepare/", ANNOTATORS, {}, computes=True
    ),
    ("api/projects/<int:project_id>/annotations/bulk/", "post"): Entry(
        "/api/projects/{p}/annotations/bulk/", ANNOTATORS, BULK
    ),
    # Imports and exports.
    ("api/projects/<int:project_id>/export/", "get"): Entry("/api/projects/{p}/export/?format=csv", DEVELOPERS),
    ("api/projects/<int:project_id>/export/", "post"): Entry(
        "/api/projects/{p}/export/", DEVELOPERS, {"format": "csv"}
    ),
    ("api/projects/<int:project_id>/import/", "post"): Entry(
        "/api/projects/{p}/import/", ANNOTATORS, {"format": "csv", "file": CSV}, send="multipart"
    ),
    ("api/projects/<int:project_id>/import/preview/", "post"): Entry(
        "/api/projects/{p}/import/preview/", MANAGERS, {"format": "csv", "file": CSV}, send="multipart", computes=True
    ),
    ("api/transfers/<int:job_id>/", "get"): Entry("/api/transfers/{j}/", DEVELOPERS),
    ("api/transfers/<int:job_id>/file/", "get"): Entry("/api/transfers/{x}/file/", DEVELOPERS),
    # Jobs.
    ("api/projects/<int:project_id>/jobs/", "get"): Entry("/api/projects/{p}/jobs/", MEMBERS),
    ("api/jobs/<int:job_id>/", "get"): Entry("/api/jobs/{j}/", MEMBERS),
    ("api/jobs/<int:job_id>/cancel/", "post"): Entry("/api/jobs/{j}/cancel/", DEVELOPERS),
    # Similarity.
    ("api/projects/<int:project_id>/similar/", "get"): Entry("/api/projects/{p}/similar/?image={i}", MEMBERS),
    ("api/projects/<int:project_id>/similar/", "post"): Entry(
        "/api/projects/{p}/similar/", MEMBERS, {"file": PNG}, send="multipart", computes=True
    ),
    ("api/projects/<int:project_id>/similarity-index/", "get"): Entry("/api/projects/{p}/similarity-index/", MEMBERS),
    ("api/projects/<int:project_id>/similar-pairs/", "get"): Entry("/api/projects/{p}/similar-pairs/", MEMBERS),
    ("api/projects/<int:project_id>/similar-pairs/", "post"): Entry(
        "/api/projects/{p}/similar-pairs/", ANNOTATORS, {"limit": 3}
    ),
    ("api/pair-searches/<int:search_id>/", "get"): Entry("/api/pair-searches/{s}/", MEMBERS),
    # Training.
    ("api/projects/<int:project_id>/dataset-versions/", "get"): Entry("/api/projects/{p}/dataset-versions/", MEMBERS),
    ("api/dataset-versions/<int:version_id>/", "get"): Entry("/api/dataset-versions/{d}/", MEMBERS),
    ("api/projects/<int:project_id>/training-jobs/", "get"): Entry("/api/projects/{p}/training-jobs/", MEMBERS),
    ("api/projects/<int:project_id>/training-jobs/", "post"): Entry(
        "/api/projects/{p}/training-jobs/", DEVELOPERS, {"task": "classification", "parameters": TINY}
    ),
    ("api/training-jobs/<int:job_id>/", "get"): Entry("/api/training-jobs/{tj}/", MEMBERS),
    ("api/training-jobs/<int:job_id>/cancel/", "post"): Entry("/api/training-jobs/{tj}/cancel/", DEVELOPERS),
    ("api/projects/<int:project_id>/models/", "get"): Entry("/api/projects/{p}/models/", MEMBERS),
    ("api/projects/<int:project_id>/models/", "post"): Entry(
        "/api/projects/{p}/models/", DEVELOPERS, {"file": ("m.zip", "{bundle}"), "name": "loaded"}, send="multipart"
    ),
    ("api/models/<int:model_id>/", "get"): Entry("/api/models/{m}/", MEMBERS),
    ("api/models/<int:model_id>/", "patch"): Entry("/api/models/{m}/", DEVELOPERS, {"predict_with": "last"}),
    ("api/models/<int:model_id>/", "delete"): Entry("/api/models/{m}/", DEVELOPERS),
    ("api/models/<int:model_id>/statistics/", "get"): Entry("/api/models/{m}/statistics/", MEMBERS),
    ("api/models/<int:model_id>/predictions/", "get"): Entry("/api/models/{m}/predictions/", MEMBERS),
    ("api/models/<int:model_id>/predictions/download/", "get"): Entry(
        "/api/models/{m}/predictions/download/", DEVELOPERS
    ),
    ("api/models/<int:model_id>/bundle/", "post"): Entry("/api/models/{m}/bundle/", DEVELOPERS),
    # The bundle is built when someone asks for it: until then its download answers 409.
    ("api/models/<int:model_id>/bundle/", "get"): Entry("/api/models/{m}/bundle/", DEVELOPERS, codes=frozenset({409})),
    ("api/images/<int:image_id>/predictions/", "get"): Entry("/api/images/{i}/predictions/", MEMBERS),
    ("api/images/<int:image_id>/predictions/", "post"): Entry(
        "/api/images/{i}/predictions/", DEVELOPERS, {"model": "{m}"}
    ),
    ("api/images/<int:image_id>/predictions/", "delete"): Entry("/api/images/{i}/predictions/", ANNOTATORS),
    ("api/images/<int:image_id>/predictions/accept/", "post"): Entry(
        "/api/images/{i}/predictions/accept/", ANNOTATORS, {"revision": "{rev}", "ids": ["{pr}"]}
    ),
    ("api/projects/<int:project_id>/predictions/accept/", "post"): Entry(
        "/api/projects/{p}/predictions/accept/", ANNOTATORS, {"images": ["{i}"], "threshold": 0.5}
    ),
    ("api/projects/<int:project_id>/prelabel/", "post"): Entry(
        "/api/projects/{p}/prelabel/", DEVELOPERS, {"model": "{m}", "images": ["{i}"]}, codes=frozenset({202})
    ),
    ("api/predict/<int:project_id>/<str:model_name>/", "post"): Entry(
        "/api/predict/{p}/m/", DEVELOPERS, send="image", computes=True
    ),
    (r"api/predict/(?P<project_id>[0-9]+)/(?P<model_name>[^/]+)/(?P<checkpoint>best|last)/?$", "post"): Entry(
        "/api/predict/{p}/m/best/", DEVELOPERS, send="image", computes=True
    ),
    # Pages of a project.
    ("projects/<int:project_id>/", "get"): Entry("/projects/{p}/", MEMBERS),
    ("projects/<int:project_id>/settings/", "get"): Entry("/projects/{p}/settings/", MEMBERS),
    ("projects/<int:project_id>/settings/", "post"): Entry(
        "/projects/{p}/settings/", MANAGERS, {"name": "Renamed", "description": ""}
    ),
    ("projects/<int:project_id>/delete/", "post"): Entry("/projects/{p}/delete/", OWNER, {"confirm_name": "Birds"}),
    ("projects/<int:project_id>/labels/", "post"): Entry("/projects/{p}/labels/", DEVELOPERS, {"name": "tern"}),
    ("projects/<int:project_id>/labels/<int:label_id>/edit/", "post"): Entry(
        "/projects/{p}/labels/{l}/edit/",
        DEVELOPERS,
        {"name": "herring gull", "color": "#112233", "hotkey": "", "keypoints": "", "attributes": ""},
    ),
    ("projects/<int:project_id>/labels/<int:label_id>/delete/", "post"): Entry(
        "/projects/{p}/labels/{l}/delete/", DEVELOPERS, {}
    ),
    ("projects/<int:project_id>/members/", "post"): Entry(
        "/projects/{p}/members/", MANAGERS, {"email": "newcomer@example.com", "role": "{labeler_role}"}
    ),
    ("projects/<int:project_id>/members/<int:user_id>/role/", "post"): Entry(
        "/projects/{p}/members/{t}/role/", MANAGERS, {"role": "{labeler_role}"}
    ),
    ("projects/<int:project_id>/members/<int:user_id>/remove/", "post"): Entry(
        "/projects/{p}/members/{t}/remove/", MANAGERS, {}
    ),
    ("projects/<int:project_id>/members/<int:user_id>/owner/", "post"): Entry(
        "/projects/{p}/members/{t}/owner/", OWNER, {}
    ),
    ("projects/<int:project_id>/invitations/<int:invitation_id>/withdraw/", "post"): Entry(
        "/projects/{p}/invitations/{inv}/withdraw/", MANAGERS, {}
    ),
    ("projects/<int:project_id>/images/delete/", "post"): Entry(
        "/projects/{p}/images/delete/", DEVELOPERS, {"image": "{i}"}
    ),
    ("projects/<int:project_id>/images/labels/", "post"): Entry(
        "/projects/{p}/images/labels/", ANNOTATORS, {"image": "{i}", "label": "{l}", "operation": "assign"}
    ),
    ("projects/<int:project_id>/images/validation/", "post"): Entry(
        "/projects/{p}/images/validation/", ANNOTATORS, {"image": "{i}", "validation": "add"}
    ),
    ("projects/<int:project_id>/images/label/", "get"): Entry(
        "/projects/{p}/images/label/?image={i}", MEMBERS, codes=frozenset({302})
    ),
    ("projects/<int:project_id>/images/label/", "post"): Entry(
        "/projects/{p}/images/label/", MEMBERS, {"image": "{i}"}, computes=True
    ),
    ("projects/<int:project_id>/images/<int:image_id>/label/", "get"): Entry(
        "/projects/{p}/images/{i}/label/", MEMBERS
    ),
    ("projects/<int:project_id>/images/<int:image_id>/label/strip/", "get"): Entry(
        "/projects/{p}/images/{i}/label/strip/", MEMBERS
    ),
    ("projects/<int:project_id>/transfer/", "get"): Entry("/projects/{p}/transfer/", MEMBERS),
    ("projects/<int:project_id>/transfer/start/", "post"): Entry(
        "/projects/{p}/transfer/start/", DEVELOPERS, {"export": "1", "format": "csv"}
    ),
    ("projects/<int:project_id>/transfer/jobs/<int:job_id>/", "get"): Entry(
        "/projects/{p}/transfer/jobs/{j}/", MEMBERS
    ),
    ("projects/<int:project_id>/jobs/", "get"): Entry("/projects/{p}/jobs/", MEMBERS),
    ("projects/<int:project_id>/jobs/<int:job_id>/cancel/", "post"): Entry(
        "/projects/{p}/jobs/{j}/cancel/", DEVELOPERS, {}
    ),
    ("projects/<int:project_id>/similar/", "get"): Entry("/projects/{p}/similar/?image={i}", MEMBERS),
    ("projects/<int:project_id>/similar/", "post"): Entry(
        "/projects/{p}/similar/", MEMBERS, {"file": PNG}, codes=frozenset({200}), computes=True
    ),
    ("projects/<int:project_id>/similar-pairs/", "get"): Entry("/projects/{p}/similar-pairs/", MEMBERS),
    ("projects/<int:project_id>/similar-pairs/", "post"): Entry(
        "/projects/{p}/similar-pairs/", ANNOTATORS, {"limit": "3", "threshold": "0.5"}, codes=frozenset({200})
    ),
    ("projects/<int:project_id>/similar-pairs/<int:search_id>/", "get"): Entry(
        "/projects/{p}/similar-pairs/{s}/", MEMBERS
    ),
    ("projects/<int:project_id>/similarity-index/", "get"): Entry("/projects/{p}/similarity-index/", MEMBERS),
    ("projects/<int:project_id>/images/accept-predictions/", "post"): Entry(
        "/projects/{p}/images/accept-predictions/",
        ANNOTATORS,
        {"image": "{i}", "threshold": "0.5"},
        codes=frozenset({302}),
    ),
    ("projects/<int:project_id>/models/", "get"): Entry("/projects/{p}/models/", MEMBERS),
    ("projects/<int:project_id>/models/training-images/", "get"): Entry(
        "/projects/{p}/models/training-images/", DEVELOPERS
    ),
    ("projects/<int:project_id>/models/load/", "post"): Entry(
        "/projects/{p}/models/load/", DEVELOPERS, {"file": ("m.zip", "{bundle}"), "name": "loaded"}
    ),
    ("projects/<int:project_id>/models/", "post"): Entry(
        "/projects/{p}/models/", DEVELOPERS, {"kind": "single", "epochs": "1", "fine_tune": "head"}
    ),
    ("projects/<int:project_id>/training/<int:job_id>/", "get"): Entry("/projects/{p}/training/{tj}/", MEMBERS),
    ("projects/<int:project_id>/training/<int:job_id>/cancel/", "post"): Entry(
        "/projects/{p}/training/{tj}/cancel/", DEVELOPERS, {}
    ),
    ("projects/<int:project_id>/models/<int:model_id>/", "get"): Entry("/projects/{p}/models/{m}/", MEMBERS),
    ("projects/<int:project_id>/models/<int:model_id>/gallery/", "get"): Entry(
        "/projects/{p}/models/{m}/gallery/?tab=missing", MEMBERS
    ),
    ("projects/<int:project_id>/models/<int:model_id>/predictions/", "get"): Entry(
        "/projects/{p}/models/{m}/predictions/", MEMBERS
    ),
    ("projects/<int:project_id>/models/<int:model_id>/predict-with/", "post"): Entry(
        "/projects/{p}/models/{m}/predict-with/", DEVELOPERS, {"checkpoint": "last"}
    ),
    # The world's model is single-label, which has no thresholds: the page's answer is the message that says so
    # (tests/training/test_statistics_api.py saves them on a multi-label model).
    ("projects/<int:project_id>/models/<int:model_id>/thresholds/", "post"): Entry(
        "/projects/{p}/models/{m}/thresholds/", DEVELOPERS, {"threshold": "0.3"}, computes=True
    ),
    ("projects/<int:project_id>/models/<int:model_id>/delete/", "post"): Entry(
        "/projects/{p}/models/{m}/delete/", DEVELOPERS, {}
    ),
    ("projects/<int:project_id>/models/<int:model_id>/bundle/", "get"): Entry(
        "/projects/{p}/models/{m}/bundle/", DEVELOPERS
    ),
    ("projects/<int:project_id>/models/<int:model_id>/bundle/", "post"): Entry(
        "/projects/{p}/models/{m}/bundle/", DEVELOPERS, {}
    ),
    ("projects/<int:project_id>/predict/", "get"): Entry("/projects/{p}/predict/", DEVELOPERS),
    ("projects/<int:project_id>/predict/", "post"): Entry(
        "/projects/{p}/predict/",
        DEVELOPERS,
        {"predict": "1", "image": "{red}"},  # queues a prediction job
    ),
}


def _zip() -> bytes:
    """A version's import: one image labelled gull in train."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("train/gull/z.png", image_bytes(color=(5, 5, 5)))
    return out.getvalue()


# The SeeMe.ai SDK's API (projects/seeme/): the same world, a dataset whose version is the project, callers
# authenticated as the SDK does (username:apikey).
SD = "/api/v1/datasets/{sd}"
SV = SD + "/versions/{p}"
SEEME_D = "api/v1/datasets/<str:dataset_id>"
SEEME_V = SEEME_D + "/versions/<str:version_id>"
MATRIX.update(
    {
        ("api/v1/applications", "get"): Entry("/api/v1/applications", SIGNED_IN),
        ("api/v1/datasets", "get"): Entry("/api/v1/datasets", SIGNED_IN),
        ("api/v1/datasets", "post"): Entry("/api/v1/datasets", SIGNED_IN, {"name": "Fresh"}),
        (SEEME_D, "get"): Entry(SD, MEMBERS),
        (SEEME_D, "put"): Entry(SD, MANAGERS, {"name": "Renamed"}),
        (SEEME_D, "delete"): Entry(SD, OWNER),
        (SEEME_D + "/upload", "post"): Entry(SD + "/upload", MANAGERS, {"file": PNG}, send="multipart"),
        (SEEME_D + "/logo", "get"): Entry(SD + "/logo", MEMBERS),
        (SEEME_D + "/versions", "get"): Entry(SD + "/versions", MEMBERS),
        (SEEME_D + "/versions", "post"): Entry(SD + "/versions", MANAGERS, {"name": "v2"}),
        (SEEME_V, "get"): Entry(SV, MEMBERS),
        (SEEME_V, "put"): Entry(SV, MANAGERS, {"name": "v9"}),
        (SEEME_V, "delete"): Entry(SV, OWNER),
        ("api/v1/trainingrequests", "get"): Entry("/api/v1/trainingrequests", SIGNED_IN),
        ("api/v1/trainingrequests", "post"): Entry(
            "/api/v1/trainingrequests", DEVELOPERS, {"dataset_id": "{sd}", "dataset_version_id": "{p}"}
        ),
        ("api/v1/trainingrequests/<str:request_id>", "get"): Entry("/api/v1/trainingrequests/{tj}", MEMBERS),
        ("api/v1/trainingrequests/<str:request_id>", "put"): Entry(
            "/api/v1/trainingrequests/{tj}",
            DEVELOPERS,
            {"status": "finished"},
            computes=True,  # nothing to change
        ),
        ("api/v1/trainingrequests/<str:request_id>", "delete"): Entry(
            "/api/v1/trainingrequests/{tj}",
            DEVELOPERS,  # the queued job is cancelled
        ),
        ("api/v1/models", "get"): Entry("/api/v1/models", SIGNED_IN),
        ("api/v1/models/<str:model_id>", "get"): Entry("/api/v1/models/{m}", MEMBERS),
        ("api/v1/models/<str:model_id>/versions", "get"): Entry("/api/v1/models/{m}/versions", MEMBERS),
        ("api/v1/models/<str:model_id>/versions/<str:version_id>", "get"): Entry(
            "/api/v1/models/{m}/versions/{m}", MEMBERS
        ),
        ("api/v1/models/<str:model_id>/download/<str:asset>", "get"): Entry(
            "/api/v1/models/{m}/download/labels", MEMBERS
        ),
        ("api/v1/models/<str:model_id>/versions/<str:version_id>/download/<str:asset>", "get"): Entry(
            "/api/v1/models/{m}/versions/{m}/download/labels", MEMBERS
        ),
        # A model made through the SDK (on the world's project) with two versions, the second empty.
        ("api/v1/models", "post"): Entry("/api/v1/models", SIGNED_IN, {"name": "Fresh"}),
        ("api/v1/models/<str:model_id>", "put"): Entry("/api/v1/models/{sm}", MANAGERS, {"name": "Renamed"}),
        ("api/v1/models/<str:model_id>", "delete"): Entry("/api/v1/models/{sm}", OWNER),
        ("api/v1/models/<str:model_id>/upload", "post"): Entry(
            "/api/v1/models/{sm}/upload",
            DEVELOPERS,
            {"file": PNG},
            send="multipart",  # a logo
        ),
        ("api/v1/models/<str:model_id>/versions", "post"): Entry(
            "/api/v1/models/{sm}/versions", DEVELOPERS, {"name": "three"}
        ),
        ("api/v1/models/<str:model_id>/versions/<str:version_id>", "put"): Entry(
            "/api/v1/models/{sm}/versions/{sv}", DEVELOPERS, {"name": "two"}
        ),
        ("api/v1/models/<str:model_id>/versions/<str:version_id>", "delete"): Entry(
            "/api/v1/models/{sm}/versions/{sv}", DEVELOPERS
        ),
        ("api/v1/models/<str:model_id>/versions/<str:version_id>/upload", "post"): Entry(
            "/api/v1/models/{sm}/versions/{sv}/upload", DEVELOPERS, {"file": ("m.zip", "{bundle}")}, send="multipart"
        ),
        ("api/v1/inferences/<str:target>", "post"): Entry(
            "/api/v1/inferences/{m}", DEVELOPERS, {"file": PNG}, send="multipart"
        ),
        ("api/v1/inferences/<str:target>", "get"): Entry("/api/v1/inferences/{inf}", MEMBERS),
        ("api/v1/inferences/<str:target>", "put"): Entry(
            "/api/v1/inferences/{inf}", DEVELOPERS, {"error_reported": True, "error": "a tern"}
        ),
        ("api/v1/inferences/<str:target>/versions/<str:version_id>", "post"): Entry(
            "/api/v1/inferences/{m}/versions/{m}", DEVELOPERS, {"file": PNG}, send="multipart"
        ),
        (SEEME_V + "/download", "get"): Entry(SV + "/download", DEVELOPERS),
        (SEEME_V + "/download/<str:split_id>", "get"): Entry(SV + "/download/{sp}", DEVELOPERS),
        (SEEME_V + "/upload", "post"): Entry(SV + "/upload", DEVELOPERS, {"file": ("v.zip", _zip())}, send="multipart"),
        (SEEME_V + "/labels", "get"): Entry(SV + "/labels", MEMBERS),
        (SEEME_V + "/labels", "post"): Entry(SV + "/labels", DEVELOPERS, {"name": "tern"}),
        (SEEME_V + "/labels/<str:label_id>", "get"): Entry(SV + "/labels/{l}", MEMBERS),
        (SEEME_V + "/labels/<str:label_id>", "put"): Entry(SV + "/labels/{l}", DEVELOPERS, {"color": "#010203"}),
        (SEEME_V + "/labels/<str:label_id>", "delete"): Entry(SV + "/labels/{l}", DEVELOPERS),
        (SEEME_V + "/splits", "get"): Entry(SV + "/splits", MEMBERS),
        (SEEME_V + "/splits", "post"): Entry(SV + "/splits", DEVELOPERS, {"name": "holdout"}),
        (SEEME_V + "/splits/<str:split_id>", "get"): Entry(SV + "/splits/{sp}", MEMBERS),
        (SEEME_V + "/splits/<str:split_id>", "put"): Entry(SV + "/splits/{sp}", DEVELOPERS, {"name": "fit"}),
        (SEEME_V + "/splits/<str:split_id>", "delete"): Entry(SV + "/splits/{sp}", DEVELOPERS),
        (SEEME_V + "/splits/<str:split_id>/items/<str:item_id>", "delete"): Entry(
            SV + "/splits/{sp}/items/{i}", DEVELOPERS
        ),
        (SEEME_V + "/items", "get"): Entry(SV + "/items", MEMBERS),
        (SEEME_V + "/items", "post"): Entry(SV + "/items", DEVELOPERS, {"name": "new", "extension": "png"}),
        (SEEME_V + "/items/<str:item_id>", "get"): Entry(SV + "/items/{i}", MEMBERS),
        (SEEME_V + "/items/<str:item_id>", "put"): Entry(
            SV + "/items/{i}", ANNOTATORS, {"annotations": [{"label_id": "{l}", "coordinates": ""}]}
        ),
        (SEEME_V + "/items/<str:item_id>/upload", "post"): Entry(
            SV + "/items/{pi}/upload", DEVELOPERS, {"file": PNG}, send="multipart"
        ),
        (SEEME_V + "/items/<str:item_id>/download", "get"): Entry(SV + "/items/{i}/download", MEMBERS),
    }
)

# Routes anyone may use, and why.
PUBLIC = {
    "api/v1/register": "the SeeMe SDK's sign-up, throttled",
    "api/v1/login": "the SeeMe SDK's log-in, throttled",
    "api/v1/<path:unknown>": "the SeeMe API's JSON 404 for any path it does not have",
    "": "a redirect to the project list (which needs a log-in)",
    "healthz": "the load balancer's check; details only for staff or a health token",
    "api/auth/register/": "sign-up, throttled",
    "api/auth/token/": "log-in for scripts, throttled",
    "api/schema/": "the OpenAPI schema",
    "api/docs/": "Swagger UI",
    "accounts/signup/": "sign-up, throttled",
    "accounts/login/": "log-in, throttled",
    "accounts/logout/": "log-out",
}
METHODS = ("get", "post", "put", "patch", "delete")


def view_methods(view) -> set[str] | None:
    """A class-based view's handlers; a function view's require_http_methods list; None when it declares none."""
    view_class = getattr(view, "view_class", None) or getattr(view, "cls", None)
    if view_class is not None:
        return {m for m in METHODS if hasattr(view_class, m)}
    function = view
    while function is not None:
        for cell in function.__closure__ or ():
            contents = cell.cell_contents
            if (
                isinstance(contents, (list, tuple))
                and contents
                and all(m in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"} for m in contents)
            ):
                return {m.lower() for m in contents} - {"head"}
        function = getattr(function, "__wrapped__", None)
    return None


def routes() -> dict[str, set[str] | None]:
    """Every route of the URL configuration (admin's aside) and the methods its view answers."""
    found: dict[str, set[str] | None] = {}

    def walk(resolver, prefix: str) -> None:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                if str(pattern.pattern) != "admin/":
                    walk(pattern, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                found[prefix + str(pattern.pattern).lstrip("^")] = view_methods(pattern.callback)

    walk(get_resolver(), "")
    return found


ROUTES = routes()
CASES = sorted(
    (route, method) for route, methods in ROUTES.items() if route not in PUBLIC for method in methods or {"?"}
)


@pytest.fixture
def world(django_capture_on_commit_callbacks, settings):
    """A project holding every kind of thing a route acts on, and a caller for each part a person can play."""
    owner = UserFactory(username="owner")
    members = {role: UserFactory(username=role.lower()) for role in ROLES[1:]}
    project = make_project(owner=owner, name="Birds", **members)
    make_project(owner=owner, name="other")
    target = UserFactory(username="target")  # the member that member-management requests act on
    membership_grant(project=project, email=target.email, role=Role.objects.get(name="Viewer"))
    invitee = UserFactory(username="invitee", email="invitee@example.com")
    UserFactory(username="newcomer", email="newcomer@example.com")
    invitation = invitation_create(
        project=project, email=invitee.email, role=Role.objects.get(name="Viewer"), invited_by=owner
    )
    from projects.models import Label
    from projects.uploads import images_upload

    label = Label.objects.create(project=project, name="gull")
    image = images_upload(
        project=project, user=owner, files=[SimpleUploadedFile("a.png", image_bytes())], labels=[]
    ).stored[0]
    reds = upload(project, owner, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(4)], ["red"])
    upload(project, owner, [(f"blue{i}.png", colour_png((30, 30, 220), 10 + i)) for i in range(4)], ["blue"])
    history.history_record(image_ids=[reds[0].pk], user=owner, reason="replace")
    entry = ReplacedDocument.objects.get(image=reds[0])
    # A finished export (its file to download) and a queued one (the job that cancel requests act on).
    finished = transfers.transfer_start(project=project, user=owner, direction="export", format_key="csv")
    job_run(finished.pk)
    queued = transfers.transfer_start(project=project, user=owner, direction="export", format_key="coco")
    with django_capture_on_commit_callbacks(execute=True):
        trained = training.training_job_start(
            project=project, user=owner, task="classification", name="m", parameters=TINY
        )
    waiting = training.training_job_start(project=project, user=owner, task="classification", name="q", parameters=TINY)
    search = searches.pair_search_begin(
        project=project, user=owner, parameters={"limit": 2, "threshold": 0.5, "labels": [], "op": "or"}
    )
    model = ModelVersion.objects.get(job=trained)
    # A suggestion on the image, for accepting and clearing.
    suggestion = Prediction.objects.create(
        model_version=model, checkpoint="best", image=image, kind="box", label=label, geometry=BOX, score=0.9
    )
    users = {"Owner": owner, **members, "stranger": UserFactory(username="stranger"), "invitee": invitee}
    settings.SIGHTLINE_SEEME_TRAINING_PARAMETERS = {"classification": TINY}  # a SeeMe training request's
    # The project as the one version of a SeeMe dataset, with a split holding the image and an item waiting for its.
    from projects.models import PendingItem, SeemeDataset, Split
    from projects.uploads import image_id_reserve

    seeme_dataset = SeemeDataset.objects.create(owner=owner, name="Birds")
    seeme_dataset.logo.save("birds.png", ContentFile(image_bytes(color=(1, 2, 3))))
    Project.objects.filter(pk=project.pk).update(seeme_dataset=seeme_dataset, seeme_version="v1")
    split = Split.objects.create(project=project, name="train")
    split.images.add(image)
    pending = PendingItem.objects.create(id=image_id_reserve(), project=project, name="later", extension="png")
    # A SeeMe model made through the SDK, kept on the same project, with an empty second version; an inference.
    from training.models import Inference, SeemeModel, SeemeVersion
    from training.services.seeme import _id_reserve

    seeme_model = SeemeModel.objects.create(id=_id_reserve(), project=project, name="Birds model", created_by=owner)
    SeemeVersion.objects.create(id=_id_reserve(), seeme_model=seeme_model, number=1, name="1")
    empty = SeemeVersion.objects.create(id=_id_reserve(), seeme_model=seeme_model, number=2, name="2")
    inference = Inference.objects.create(
        model_version=model, user=owner, name="a.png", prediction=label.name, confidence=0.9, inference_ms=5, total_ms=6
    )
    ids = {
        "sd": seeme_dataset.pk,
        "sp": split.pk,
        "pi": pending.pk,
        "sm": seeme_model.pk,
        "sv": empty.pk,
        "inf": inference.pk,
        "p": project.pk,
        "l": label.pk,
        "i": image.pk,
        "rev": image.annotation_revision,
        "red": reds[1].pk,
        "t": target.pk,
        "inv": invitation.pk,
        "h": entry.pk,
        "h_image": reds[0].pk,
        "j": queued.pk,
        "x": finished.pk,
        "s": search.pk,
        "tj": waiting.pk,
        "m": model.pk,
        "pr": suggestion.pk,
        "d": trained.dataset_version_id,
        "bundle": loadable(model),  # Load Existing Model's upload
        "labeler_role": Role.objects.get(name="Labeler").pk,
    }
    # Clients are made before any call: an API client's token is a row of its own.
    api_clients = {who: client_for(user) for who, user in users.items()} | {"anonymous": APIClient()}
    seeme_clients = {"anonymous": APIClient()}
    for who, user in users.items():
        seeme_clients[who] = APIClient()
        seeme_clients[who].credentials(HTTP_AUTHORIZATION=f"{user.username}:{user.auth_token.key}")
    page_clients = {"anonymous": Client()}
    for who, user in users.items():
        page_clients[who] = Client()
        page_clients[who].force_login(user)
    return {"ids": ids, "api": api_clients, "page": page_clients, "seeme": seeme_clients}


def snapshot() -> dict[str, list]:
    """Every row of every table of Sightline's apps, users and tokens: all that a denied request could change."""
    tables = {}
    labels = ("projects", "annotations", "training", "similarity", "jobs", "accounts", "auth", "authtoken")
    for model in apps.get_models():
        if model._meta.app_label not in labels or model._meta.proxy or model._meta.db_table == "auth_permission":
            continue
        names = [f.attname for f in model._meta.concrete_fields]
        rows = model.objects.order_by("pk").values_list(*names)
        tables[model._meta.label] = [tuple(v.tolist() if hasattr(v, "tolist") else v for v in row) for row in rows]
    return tables


def _fill(value, ids):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]  # an id in a JSON body is a number
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, tuple):
        return tuple(_fill(v, ids) for v in value)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _file(name: str, content: str | bytes) -> SimpleUploadedFile:
    if isinstance(content, bytes):
        return SimpleUploadedFile(name, content)
    data = image_bytes(color=(9, 9, 9)) if content == "png" else content.encode()
    return SimpleUploadedFile(name if "." in name else f"{name}.{'png' if content == 'png' else 'csv'}", data)


def _call(entry: Entry, method: str, world, who: str):
    ids = world["ids"]
    url, body = _fill(entry.url, ids), _fill(entry.body, ids)
    if url.startswith("/api/"):
        client = world["seeme" if url.startswith("/api/v1/") else "api"][who]
        if entry.send == "image":
            return client.post(url, image_bytes(color=(220, 30, 30)), content_type="image/png")
        if entry.send == "multipart":
            form = {k: _file(*v) if isinstance(v, tuple) else v for k, v in body.items()}
            return getattr(client, method)(url, form, format="multipart")
        return getattr(client, method)(url, body, format="json")
    client = world["page"][who]
    form = {k: _file(*v) if isinstance(v, tuple) else v for k, v in (body or {}).items()}
    return getattr(client, method)(url, form)


def _attempt(entry: Entry, method: str, world, who: str):
    """One call in a savepoint that is then rolled back: the answer, and the tables before and after."""
    with transaction.atomic():
        before = snapshot()
        response = _call(entry, method, world, who)
        after = snapshot()
        transaction.set_rollback(True)
    return response, before, after


def _refusal(entry: Entry, who: str, api: bool) -> int:
    if who == "anonymous":
        return 401 if api else 302
    if who in ("stranger", "invitee") or entry.members_see_404:
        return 404
    return 403


@pytest.mark.parametrize(("route", "method"), CASES, ids=[f"{m.upper()} /{r}" for r, m in CASES])
def test_permission_matrix(world, route, method):
    assert method != "?", f"/{route}: its view declares no methods (require_safe, require_http_methods)"
    entry = MATRIX.get((route, method))
    assert entry is not None, f"{method.upper()} /{route} has no entry in MATRIX: who may use it?"
    api = entry.url.startswith("/api/")
    for who in WHO:
        response, before, after = _attempt(entry, method, world, who)
        code = response.status_code
        if who in entry.allowed:
            expected = entry.codes or ({200} if method == "get" else {200, 201, 202, 204} if api else {302})
            assert code in expected, (who, code, response.content[:300])
            if method != "get" and not entry.computes:
                assert after != before, (who, "an allowed request changed nothing")
        else:
            assert code == _refusal(entry, who, api), (who, code, response.content[:300])
            if code == 302:
                assert response.url.startswith("/accounts/login/"), who
            assert after == before, (who, "a denied request changed the database")


def test_every_matrix_entry_is_a_route_and_method_of_the_url_configuration():
    assert sorted(key for key in MATRIX if key not in set(CASES)) == []


def test_public_routes_exist():
    assert sorted(route for route in PUBLIC if route not in ROUTES) == []
