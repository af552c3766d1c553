"""Every role, a stranger and an anonymous client against every training endpoint and page.

Reads are open to every member; training, cancelling, changing models and predicting need
train_project; downloads need export_project. Denied requests get 401/403/404 and change nothing.
"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import client_for
from tests.factories import UserFactory, make_project
from tests.training.conftest import colour_png, upload
from training import services
from training.models import DatasetVersion, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db

ROLES = ["Owner", "Admin", "Developer", "Labeler", "Viewer"]
WHO = [*ROLES, "stranger", "anonymous"]
TRAINERS = ["Owner", "Admin", "Developer"]
TINY = {"epochs": 1, "batch_size": 8, "fine_tune": "head", "patience": 0}


@pytest.fixture
def world(django_capture_on_commit_callbacks):
    owner = UserFactory(username="owner")
    members = {role: UserFactory(username=role.lower()) for role in ROLES[1:]}
    project = make_project(owner=owner, name="Colours", **members)
    upload(project, owner, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(4)], ["red"])
    upload(project, owner, [(f"blue{i}.png", colour_png((30, 30, 220), 10 + i)) for i in range(4)], ["blue"])
    with django_capture_on_commit_callbacks(execute=True):
        job = services.training_job_start(project=project, user=owner, task="classification", name="m", parameters=TINY)
    queued = services.training_job_start(project=project, user=owner, task="classification", name="q", parameters=TINY)
    users = {"Owner": owner, **members, "stranger": UserFactory(username="stranger"), "anonymous": None}
    model = ModelVersion.objects.get(job=job)
    return {"p": project.id, "j": queued.id, "m": model.id, "d": job.dataset_version_id, "users": users}


def snapshot():
    return (
        sorted(TrainingJob.objects.values_list("id", "status", "cancel_requested", "name")),
        sorted(ModelVersion.objects.values_list("id", "predict_with", "thresholds")),
        DatasetVersion.objects.count(),
    )


RED = colour_png((220, 30, 30), 99)
# Allowed requests whose right answer is not the usual: the bundle is not built until someone asks (409).
ALLOWED_CODES = {"bundle get": {409}}
# (name, method, url, body, allowed). Mutations are tried by every denied caller, then by one allowed one.
API = [
    ("dataset versions", "get", "/api/projects/{p}/dataset-versions/", None, ROLES),
    ("dataset version", "get", "/api/dataset-versions/{d}/", None, ROLES),
    ("jobs list", "get", "/api/projects/{p}/training-jobs/", None, ROLES),
    ("job start", "post", "/api/projects/{p}/training-jobs/", {"task": "classification", "parameters": TINY}, TRAINERS),
    ("job get", "get", "/api/training-jobs/{j}/", None, ROLES),
    ("job cancel", "post", "/api/training-jobs/{j}/cancel/", None, TRAINERS),
    ("models list", "get", "/api/projects/{p}/models/", None, ROLES),
    ("model get", "get", "/api/models/{m}/", None, ROLES),
    ("model patch", "patch", "/api/models/{m}/", {"predict_with": "last"}, TRAINERS),
    ("model delete", "delete", "/api/models/{m}/", None, TRAINERS),
    ("statistics", "get", "/api/models/{m}/statistics/", None, ROLES),
    ("predictions", "get", "/api/models/{m}/predictions/", None, ROLES),
    ("predictions zip", "get", "/api/models/{m}/predictions/download/", None, TRAINERS),
    ("bundle", "post", "/api/models/{m}/bundle/", None, TRAINERS),
    ("bundle get", "get", "/api/models/{m}/bundle/", None, TRAINERS),
    ("predict checkpoint", "predict", "/api/predict/{p}/m/best/", None, TRAINERS),
    ("predict", "predict", "/api/predict/{p}/m/", None, TRAINERS),
]
PAGES = [
    ("models page", "get", "/projects/{p}/models/", None, ROLES),
    ("train form", "post", "/projects/{p}/models/", {"kind": "single", "epochs": "1", "fine_tune": "head"}, TRAINERS),
    ("job page", "get", "/projects/{p}/training/{j}/", None, ROLES),
    ("job cancel page", "post", "/projects/{p}/training/{j}/cancel/", {}, TRAINERS),
    ("model page", "get", "/projects/{p}/models/{m}/", None, ROLES),
    ("predictions page", "get", "/projects/{p}/models/{m}/predictions/", None, ROLES),
    ("predict-with page", "post", "/projects/{p}/models/{m}/predict-with/", {"checkpoint": "last"}, TRAINERS),
    ("model delete page", "post", "/projects/{p}/models/{m}/delete/", {}, TRAINERS),
    ("predict page", "get", "/projects/{p}/predict/", None, TRAINERS),
    ("bundle state", "get", "/projects/{p}/models/{m}/bundle/", None, TRAINERS),
    ("bundle prepare", "post", "/projects/{p}/models/{m}/bundle/", {}, TRAINERS),
    ("thresholds page", "post", "/projects/{p}/models/{m}/thresholds/", {"thresholds": "0.5,0.5"}, TRAINERS),
]


def _call(world, who, method, url, body, api: bool):
    user = world["users"][who]
    url = url.format(**world)
    if api:
        client = APIClient() if user is None else client_for(user)
        if method == "predict":
            return client.post(url, RED, content_type="image/png")
        return getattr(client, method)(url, body, format="json")
    client = Client()
    if user is not None:
        client.force_login(user)
    return getattr(client, method)(url, body or {})


def _check(world, name, method, url, body, allowed, api, capture):
    for who in [w for w in WHO if w not in allowed]:
        before = snapshot()
        response = _call(world, who, method, url, body, api)
        # The one right code: a stranger learns nothing (404), a member is told what the role lacks (403).
        expected_denial = {"anonymous": 401 if api else 302, "stranger": 404}.get(who, 403)
        assert response.status_code == expected_denial, (name, who, response.status_code)
        if response.status_code == 302:
            assert response.url.startswith("/accounts/login/"), (name, who)
        assert snapshot() == before, (name, who)
    callers = allowed if method == "get" else allowed[-1:]  # a mutation is tried once, by the least trusted
    # A page's form that worked redirects; one that failed would render again with 200.
    expected = {200} if method == "get" else {200, 201, 202, 204} if api else {302}
    expected = ALLOWED_CODES.get(name, expected)
    for who in callers:
        with capture(execute=True):
            response = _call(world, who, method, url, body, api)
        assert response.status_code in expected, (name, who, response.status_code)


@pytest.mark.parametrize(("name", "method", "url", "body", "allowed"), API, ids=[row[0] for row in API])
def test_api(world, name, method, url, body, allowed, django_capture_on_commit_callbacks):
    _check(world, name, method, url, body, allowed, True, django_capture_on_commit_callbacks)


@pytest.mark.parametrize(("name", "method", "url", "body", "allowed"), PAGES, ids=[row[0] for row in PAGES])
def test_pages(world, name, method, url, body, allowed, django_capture_on_commit_callbacks):
    _check(world, name, method, url, body, allowed, False, django_capture_on_commit_callbacks)
