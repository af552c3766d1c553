"""Brute-force limits: one count for the token API, registration and the HTML forms, per connecting address
(X-Forwarded-For only behind the configured proxies), shared across processes through Redis."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from tests.engines import redis_url  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_a_minute(settings, monkeypatch):
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "auth": "3/minute"}
    monkeypatch.setattr("accounts.throttles.AuthThrottle.THROTTLE_RATES", rates)


def token_attempt(client, **headers):
    return client.post("/api/auth/token/", {"username": "someone", "password": "guess"}, format="json", **headers)


def test_the_token_api_refuses_the_fourth_guess_and_a_forged_forwarded_for_does_not_help(three_a_minute):
    client = APIClient()
    codes = [token_attempt(client, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(5)]
    assert codes == [400, 400, 400, 429, 429]


def test_behind_one_proxy_the_forwarded_address_counts(three_a_minute, monkeypatch):
    monkeypatch.setattr(api_settings, "NUM_PROXIES", 1)
    client = APIClient()
    codes = [token_attempt(client, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]
    assert token_attempt(client, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 400


def test_the_html_login_shares_the_count_and_a_refused_attempt_checks_no_password(three_a_minute, client):
    get_user_model().objects.create_user("ada", password="right-password")
    wrong = [client.post("/accounts/login/", {"username": "ada", "password": "wrong"}).status_code for _ in range(3)]
    assert wrong == [200, 200, 200]  # the form again, with its error
    refused = client.post("/accounts/login/", {"username": "ada", "password": "right-password"})
    assert refused.status_code == 429
    assert "Too many attempts from your address. Try again in" in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session  # not logged in, even with the right password
    assert token_attempt(APIClient()).status_code == 429  # the API counts the same address


def test_sign_up_is_limited_too(three_a_minute, client):
    form = {"username": "x", "email": "not-an-email", "password1": "a", "password2": "b"}
    codes = [client.post("/accounts/signup/", form).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_with_redis_the_counts_are_shared_by_every_process(three_a_minute, settings, redis_url):  # noqa: F811
    import redis

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    caches["default"].clear()
    client = APIClient()
    assert [token_attempt(client).status_code for _ in range(3)] == [400, 400, 400]
    # What another web process sees: the same key, in the same Redis, holding three attempts.
    keys = [key for key in redis.Redis.from_url(redis_url).keys("*") if b"throttle_auth_127.0.0.1" in key]
    assert len(keys) == 1
    assert len(caches["default"].get("throttle_auth_127.0.0.1")) == 3
    assert token_attempt(client).status_code == 429
