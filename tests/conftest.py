"""Shared fixtures: users with tokens, API clients, a media dir per test, tasks run inline."""

import pytest
from django_q.conf import Conf
from rest_framework.test import APIClient

from accounts.services import token_get_or_create
from tests.factories import UserFactory

# django-q2 reads its config at import time; run tasks inline in tests (DESIGN.md).
Conf.SYNC = True


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with no throttle counts (and nothing else cached) from the tests before it."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def user(db):
    return UserFactory()


def client_for(user) -> APIClient:
    """An API client that authenticates with the user's token, as a script would."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_get_or_create(user=user).key}")
    return client


@pytest.fixture
def api(user):
    return client_for(user)
