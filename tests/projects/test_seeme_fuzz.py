"""Every SeeMe route under /api/v1/ with bodies and query strings the SDK would never send: each answer is a 4xx
with a message or a success, never a 500. (Schemathesis covers the OpenAPI-described API; the SeeMe protocol has no
OpenAPI schema, so this is its fuzz test.)"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.services import token_get_or_create
from projects.models import Split
from projects.seeme import services
from projects.services import label_create
from projects.uploads import images_upload
from tests.factories import UserFactory, image_file
from training.models import Inference, ModelVersion
from training.services import seeme

pytestmark = pytest.mark.django_db

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "0.5 0.5 0.2 0.2", "1 2 3", "nan nan nan nan", "../x", "١٢", "9" * 40, "\u0000"]),
    st.sampled_from(["{label}", "{split}", "{image}", "{valid}", "{dataset}", "{version}", "{model_version}"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.sampled_from(
    [
        "dataset_id",
        "dataset_version_id",
        "name",
        "description",
        "notes",
        "multi_label",
        "default_splits",
        "color",
        "splits",
        "annotations",
        "extension",
        "label_id",
        "coordinates",
        "id",
        "content_type",
        "text",
        "active_version_id",
        "application_id",
        "error_reported",
        "error",
        "hidden",
    ]
)
BODIES = st.one_of(
    st.dictionaries(KEYS, VALUES, max_size=5),
    st.dictionaries(
        st.just("annotations"),
        st.lists(st.dictionaries(st.sampled_from(["label_id", "coordinates", "id"]), VALUES, max_size=3), max_size=3),
    ),
    VALUES,
)
QUERIES = st.dictionaries(
    st.sampled_from(
        ["pageSize", "pageCount", "onlyUnlabelled", "labelId", "splitId", "thumbnail"]
        + ["applicationId", "started", "finished"]
    ),
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(["{label}", "{split}", "{valid}", "-1", "99999999999999999999", "True", "false"]),
        st.sampled_from(["image_classification", "object_detection"]),
    ),
    max_size=4,
)


@pytest.fixture
def world(settings):
    from tests.projects.test_seeme import TINY_TRAINING

    settings.SIGHTLINE_SEEME_TRAINING_PARAMETERS = TINY_TRAINING  # should a fuzzed request ever start one
    user = UserFactory(username="sam")
    dataset = services.dataset_create(user=user, data={"name": "Fuzz", "default_splits": True})
    project = dataset.versions.get()
    label = label_create(project=project, name="gull")
    [image] = images_upload(project=project, user=user, files=[image_file()], labels=[]).stored
    pending = services.item_create(project=project, user=user, data={"name": "later", "extension": "png"})
    split = Split.objects.get(project=project, name="train")
    base = f"/api/v1/datasets/{dataset.pk}/versions/{project.pk}"
    made = seeme.model_create(user=user, data={"name": "Fuzzed"})
    # An inference needs a model; the row is enough here (nothing predicts with it).
    model = ModelVersion.objects.create(
        project=project,
        name="rows-only",
        task="classification",
        backbone="efficientnet_lite0",
        image_size=64,
        labels=["gull"],
        best_epoch=1,
        epochs_trained=1,
        best_checkpoint="none.pt",
        last_checkpoint="none.pt",
    )
    inference = Inference.objects.create(
        model_version=model, user=user, name="a.png", prediction="gull", confidence=0.5, inference_ms=1, total_ms=2
    )
    routes = [
        ("post", "/api/v1/register"),
        ("post", "/api/v1/login"),
        ("post", "/api/v1/datasets"),
        ("put", f"/api/v1/datasets/{dataset.pk}"),
        ("post", f"/api/v1/datasets/{dataset.pk}/versions"),
        ("put", base),
        ("post", f"{base}/labels"),
        ("put", f"{base}/labels/{label.pk}"),
        ("post", f"{base}/splits"),
        ("put", f"{base}/splits/{split.pk}"),
        ("post", f"{base}/items"),
        ("put", f"{base}/items/{image.pk}"),
        ("put", f"{base}/items/{pending.pk}"),
        ("get", f"{base}/items"),
        ("get", f"{base}/items/{image.pk}/download"),
        ("post", "/api/v1/trainingrequests"),
        ("post", "/api/v1/models"),
        ("put", f"/api/v1/models/{made.pk}"),
        ("post", f"/api/v1/models/{made.pk}/versions"),
        ("put", f"/api/v1/models/{made.pk}/versions/{made.active_version_id}"),
        ("put", f"/api/v1/inferences/{inference.pk}"),
    ]
    header = f"sam:{token_get_or_create(user=user).key}"
    valid = Split.objects.get(project=project, name="valid")
    ids = {
        "{label}": label.pk,
        "{split}": split.pk,
        "{image}": image.pk,
        "{valid}": valid.pk,
        "{dataset}": dataset.pk,
        "{version}": project.pk,
        "{model_version}": made.active_version_id,
    }
    return {"routes": routes, "header": header, "ids": ids}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES, query=QUERIES, choice=st.integers(min_value=0, max_value=20))
def test_no_seeme_input_gives_a_500(world, body, query, choice):
    method, url = world["routes"][choice]
    client = Client()
    if method == "get":
        query = {k: world["ids"].get(v, v) for k, v in query.items()}
        response = client.get(url, query, HTTP_AUTHORIZATION=world["header"])
    else:
        text = json.dumps(body)
        for placeholder, pk in world["ids"].items():
            text = text.replace(placeholder, str(pk))
        response = client.generic(method.upper(), url, text, content_type="", HTTP_AUTHORIZATION=world["header"])
    assert response.status_code < 500, (method, url, body, query, response.content[:300])
    if response.status_code >= 400:
        assert response.json()["message"], (method, url, body)
