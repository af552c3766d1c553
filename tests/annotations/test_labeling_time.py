"""Labeling time is measured on the server from heartbeats and shown in spec 000's two tables."""

import datetime as dt

import pytest
from django.utils import timezone

from annotations.models import LabelingSession
from annotations.services import labeling_heartbeat
from projects.models import Role
from projects.services import membership_grant
from projects.uploads import images_upload
from tests.conftest import client_for
from tests.factories import UserFactory, image_file, make_project

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 20, 9, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def setup(user):
    project = make_project(owner=user, name="Birds")
    labeler = UserFactory(username="lab")
    membership_grant(project=project, email=labeler.email, role=Role.objects.get(name="Labeler"))
    image = images_upload(project=project, user=user, files=[image_file()], labels=[]).stored[0]
    return project, labeler, image


def test_heartbeats_count_active_time_and_stop_at_a_minute_of_silence(setup):
    _, labeler, image = setup
    assert labeling_heartbeat(image=image, user=labeler, now=at(0)) == 0
    assert labeling_heartbeat(image=image, user=labeler, now=at(15)) == 15
    assert labeling_heartbeat(image=image, user=labeler, now=at(45)) == 45
    assert labeling_heartbeat(image=image, user=labeler, now=at(45 + 300)) == 45  # away for 5 minutes
    assert labeling_heartbeat(image=image, user=labeler, now=at(345 + 60)) == 105  # exactly a minute still counts
    assert labeling_heartbeat(image=image, user=labeler, now=at(345 + 50)) == 105  # a late, older beat adds nothing
    session = LabelingSession.objects.get()
    assert (session.day, session.active_seconds) == (dt.date(2026, 11, 20), 105)


def test_the_heartbeat_api_needs_the_annotate_permission(setup):
    project, labeler, image = setup
    viewer = UserFactory()
    membership_grant(project=project, email=viewer.email, role=Role.objects.get(name="Viewer"))
    assert client_for(labeler).post(f"/api/images/{image.id}/heartbeat/").json() == {"active_seconds": 0.0}
    assert client_for(viewer).post(f"/api/images/{image.id}/heartbeat/").status_code == 403
    assert client_for(UserFactory()).post(f"/api/images/{image.id}/heartbeat/").status_code == 404
    assert LabelingSession.objects.count() == 1


def _sessions(project, image, owner, labeler):
    LabelingSession.objects.create(
        user=labeler,
        project=project,
        image=image,
        day=dt.date(2026, 11, 19),
        active_seconds=600,
        last_heartbeat_at=timezone.now(),
    )
    LabelingSession.objects.create(
        user=labeler,
        project=project,
        image=image,
        day=dt.date(2026, 11, 20),
        active_seconds=90.25,
        last_heartbeat_at=timezone.now(),
    )
    LabelingSession.objects.create(
        user=owner,
        project=project,
        image=image,
        day=dt.date(2026, 11, 20),
        active_seconds=30,
        last_heartbeat_at=timezone.now(),
    )


def test_owners_see_everyone_labelers_only_themselves(setup, user, api):
    project, labeler, image = setup
    _sessions(project, image, user, labeler)
    everyone = api.get("/api/labeling-time/").json()
    assert everyone["per_day"] == [
        {
            "day": "2026-11-20",
            "project": project.id,
            "project_name": "Birds",
            "user": labeler.id,
            "username": "lab",
            "seconds": 90.2,
        },
        {
            "day": "2026-11-20",
            "project": project.id,
            "project_name": "Birds",
            "user": user.id,
            "username": user.username,
            "seconds": 30.0,
        },
        {
            "day": "2026-11-19",
            "project": project.id,
            "project_name": "Birds",
            "user": labeler.id,
            "username": "lab",
            "seconds": 600.0,
        },
    ]
    assert [(r["username"], r["seconds"]) for r in everyone["totals"]] == [("lab", 690.2), (user.username, 30.0)]
    own = client_for(labeler).get("/api/labeling-time/").json()
    assert [(r["username"], r["seconds"]) for r in own["totals"]] == [("lab", 690.2)]
    filtered = api.get("/api/labeling-time/", {"start": "2026-11-20", "user": labeler.id}).json()
    assert [(r["day"], r["seconds"]) for r in filtered["per_day"]] == [("2026-11-20", 90.2)]
    assert client_for(UserFactory()).get("/api/labeling-time/").json() == {"per_day": [], "totals": []}


def test_csv_download_and_page(setup, user, api, client):
    project, labeler, image = setup
    _sessions(project, image, user, labeler)
    response = api.get("/api/labeling-time/", {"download": "totals"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.content.decode().splitlines() == [
        "project,project_name,user,username,seconds",
        f"{project.id},Birds,{labeler.id},lab,690.2",
        f"{project.id},Birds,{user.id},{user.username},30.0",
    ]
    client.force_login(user)
    page = client.get("/labeling-time/", {"project": project.id}).content.decode()
    assert "11 min 30 s" in page and "1 min 30 s" in page and "10 min 00 s" in page
    assert "download=per_day" in page
