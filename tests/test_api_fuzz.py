"""schemathesis over every operation of the OpenAPI schema, in-process: as the owner of a populated project
(path ids aimed at its real objects half the time) and unauthenticated. Each response must be no server
error and must match the schema: its status code, its content type and its body. `make fuzz` runs many more
examples than `make test` does (EXAMPLES=n)."""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.core.serializers.json import DjangoJSONEncoder
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("EXAMPLES", "4"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _schema() -> dict:
    raw = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(raw, cls=DjangoJSONEncoder))  # lazy strings and the like become plain JSON


schema = schemathesis.openapi.from_dict(_schema())
schema.app = get_wsgi_application()
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    allow_x00=True,  # PostgreSQL refuses NUL characters: the API must refuse them first, with a 400
    with_security_parameters=False,  # authenticated or not is the test's choice, not a generated header
)
schema.config.phases.update(phases=["examples", "fuzzing"])


@pytest.fixture
def world(db):
    """The owner of a project with labels, images, shapes and a finished export; ids to aim path parameters at."""
    from annotations.services.transfers import transfer_start
    from projects.models import Label
    from projects.uploads import images_upload
    from tests.conftest import client_for
    from tests.factories import UserFactory, image_file, make_project

    owner = UserFactory()
    project = make_project(owner=owner, name="Fuzzed")
    label = Label.objects.create(project=project, name="cat", keypoint_template=["eye"])
    files = [image_file(f"{n}.png", color=(n * 40, 10, 10)) for n in range(3)]
    images = images_upload(project=project, user=owner, files=files, labels=["dog"]).stored
    api = client_for(owner)
    api.put(
        f"/api/images/{images[0].id}/annotations/",
        {
            "revision": 0,
            "shapes": [{"label": label.id, "kind": "box", "geometry": {"x": 1, "y": 1, "width": 9, "height": 9}}],
        },
        format="json",
    )
    job = transfer_start(project=project, user=owner, direction="export", format_key="coco")
    token = api._credentials["HTTP_AUTHORIZATION"]
    ids = {
        "project_id": project.id,
        "image_id": images[0].id,
        "label_id": label.id,
        "job_id": job.id,
        "user_id": owner.id,
        "entry_id": 1,
        "model_id": 1,
        "version_id": 1,
        "search_id": 1,
        "model_name": "model",
    }
    return {"token": token, "ids": ids}


@pytest.fixture
def served(world):
    """The world, served in-process. Django's handler closes the connection at each request's end, and the
    test's transaction lives on it: these receivers are disconnected as Django's own test client does (after
    the world is built, since the test client reconnects them after each of its requests)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield world
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.parametrize("authenticated", [True, False], ids=["owner", "anonymous"])
@schema.given(aim=st.booleans())
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_answers_as_its_schema_says(case, aim, authenticated, served):
    world = served
    if aim:
        for name in case.path_parameters or {}:
            if name in world["ids"]:
                case.path_parameters[name] = world["ids"][name]
    headers = {"Authorization": world["token"]} if authenticated else {}
    case.call_and_validate(headers=headers, checks=CHECKS)
