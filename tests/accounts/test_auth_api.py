import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User
from tests.factories import make_project

pytestmark = pytest.mark.django_db


def test_register_creates_a_user_and_returns_a_working_token():
    client = APIClient()
    response = client.post(
        "/api/auth/register/",
        {"username": "ada", "email": "ada@example.com", "password": "an-old-tree-42"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    user = User.objects.get(username="ada")
    assert body == {
        "id": user.id,
        "username": "ada",
        "email": "ada@example.com",
        "token": Token.objects.get(user=user).key,
    }
    assert user.check_password("an-old-tree-42")
    assert APIClient().get("/api/me/", HTTP_AUTHORIZATION=f"Token {body['token']}").json()["username"] == "ada"


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"username": "bob", "email": "bob@example.com", "password": "123"}, "password", "This password is too short."),
        (
            {"username": "bob", "email": "not-an-email", "password": "an-old-tree-42"},
            "email",
            "Enter a valid email address.",
        ),
        ({"username": "bob", "email": "bob@example.com"}, "password", "This field is required."),
        (
            {"username": "bob", "email": "b@example.com", "password": "an-old-tree-42", "admin": True},
            "admin",
            "Unknown field.",
        ),
    ],
)
def test_register_refuses_bad_input_and_creates_nothing(payload, field, message):
    response = APIClient().post("/api/auth/register/", payload, format="json")
    assert response.status_code == 400
    assert message in response.json()[field][0]
    assert User.objects.count() == 0


def test_register_refuses_a_taken_username_or_email(user):
    for payload, field in [
        ({"username": user.username.upper(), "email": "new@example.com"}, "username"),
        ({"username": "newname", "email": user.email.upper()}, "email"),
    ]:
        response = APIClient().post("/api/auth/register/", {**payload, "password": "an-old-tree-42"}, format="json")
        assert response.status_code == 400
        assert "already exists" in response.json()[field][0]
    assert User.objects.count() == 1


def test_register_can_be_turned_off(settings):
    settings.SIGHTLINE_ALLOW_REGISTRATION = False
    response = APIClient().post(
        "/api/auth/register/",
        {"username": "eve", "email": "eve@example.com", "password": "an-old-tree-42"},
        format="json",
    )
    assert response.status_code == 404
    assert User.objects.count() == 0


def test_token_for_username_and_password(user):
    response = APIClient().post(
        "/api/auth/token/", {"username": user.username, "password": "correct-horse-battery"}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}


def test_token_refuses_a_wrong_password(user):
    response = APIClient().post("/api/auth/token/", {"username": user.username, "password": "wrong"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Unable to log in with these credentials."]}
    assert Token.objects.count() == 0


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_AUTH_TOKEN"])
def test_both_token_headers_authenticate(user, header):
    key = (
        APIClient()
        .post("/api/auth/token/", {"username": user.username, "password": "correct-horse-battery"})
        .json()["token"]
    )
    value = f"Token {key}" if header == "HTTP_AUTHORIZATION" else key
    response = APIClient().get("/api/me/", **{header: value})
    assert response.status_code == 200
    assert response.json()["username"] == user.username


@pytest.mark.parametrize(("header", "value"), [("HTTP_AUTHORIZATION", "Token nope"), ("HTTP_X_AUTH_TOKEN", "nope")])
def test_a_wrong_token_is_401(header, value):
    response = APIClient().get("/api/me/", **{header: value})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_anonymous_api_calls_are_401():
    assert APIClient().get("/api/projects/").status_code == 401


def test_me_lists_the_ids_of_the_projects_the_user_can_see(user, api):
    own = make_project(owner=user, name="Mine")
    shared = make_project(name="Shared", Labeler=user)
    make_project(name="Not mine")
    assert api.get("/api/me/").json()["project_ids"] == sorted([own.id, shared.id])


def test_openapi_schema_and_swagger_ui_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/projects/{project_id}/images/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
