"""Production settings refuse a missing or weak SECRET_KEY and pass `manage.py check --deploy`."""

import os
import subprocess
import sys

from django.conf import settings

GOOD_KEY = "k3Jd9-x_QmZp7rT2vY8bN4cL6wE1sA0hGfUoIiPaSdFgHjKlZxCvBnM_qWeRtY"


def run_check(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production", **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_production_refuses_to_start_without_a_secret_key():
    result = run_check({"ALLOWED_HOSTS": "sightline.example.com"})
    assert result.returncode != 0
    assert "Set SECRET_KEY to a random string of at least 50 characters" in result.stderr


def test_production_refuses_the_development_key():
    result = run_check({"SECRET_KEY": "django-insecure-" + "x" * 60, "ALLOWED_HOSTS": "sightline.example.com"})
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_check_deploy_passes_with_a_real_key_and_hosts():
    result = run_check({"SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "sightline.example.com"})
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
