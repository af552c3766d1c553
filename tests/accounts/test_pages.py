import pytest
from rest_framework.authtoken.models import Token

from accounts.models import User
from tests.factories import make_project

pytestmark = pytest.mark.django_db


def test_signup_page_creates_the_user_and_logs_them_in(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "grace",
            "email": "grace@example.com",
            "password1": "an-old-tree-42",
            "password2": "an-old-tree-42",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/projects/"
    assert User.objects.get(username="grace").email == "grace@example.com"
    assert client.get("/projects/").status_code == 200


def test_signup_page_shows_errors_and_creates_nothing(client):
    response = client.post(
        "/accounts/signup/", {"username": "grace", "email": "grace@example.com", "password1": "abc", "password2": "abd"}
    )
    assert response.status_code == 200
    assert "The two passwords differ." in response.content.decode()
    response = client.post(
        "/accounts/signup/", {"username": "grace", "email": "grace@example.com", "password1": "abc", "password2": "abc"}
    )
    assert "This password is too short." in response.content.decode()
    assert User.objects.count() == 0


def test_login_and_logout(client, user):
    response = client.post("/accounts/login/", {"username": user.username, "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert client.get("/projects/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/projects/")["Location"] == "/accounts/login/?next=/projects/"


def test_profile_shows_the_token_and_project_ids_and_regenerates_the_token(client, user):
    project = make_project(owner=user, name="Gulls")
    client.force_login(user)
    page = client.get("/accounts/profile/").content.decode()
    assert "You have no token yet." in page
    assert f"<code>{project.id}</code>" in page
    client.post("/accounts/profile/token/")
    first = Token.objects.get(user=user).key
    assert first in client.get("/accounts/profile/").content.decode()
    client.post("/accounts/profile/token/")
    second = Token.objects.get(user=user).key
    assert second != first
    assert second in client.get("/accounts/profile/").content.decode()
