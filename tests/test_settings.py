"""Production settings refuse a missing or weak SECRET_KEY or a missing DATABASE_URL and pass
`manage.py check --deploy`; REDIS_URL and the S3 variables switch the broker, the cache and the storage."""

import os
import subprocess
import sys

from django.conf import settings

DATABASE_URL = "postgresql://sightline:secret@db.example.com:5432/sightline"  # never connected to by `check`
GOOD_KEY = "k3Jd9-x_QmZp7rT2vY8bN4cL6wE1sA0hGfUoIiPaSdFgHjKlZxCvBnM_qWeRtY"


def run_check(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.production", "DATABASE_URL": DATABASE_URL, **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


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


def test_production_refuses_to_start_without_a_database_url_and_starts_no_embedded_server(tmp_path):
    result = run_check(
        {
            "SECRET_KEY": GOOD_KEY,
            "ALLOWED_HOSTS": "sightline.example.com",
            "DATABASE_URL": "",
            "SIGHTLINE_DATA_DIR": str(tmp_path),
        }
    )
    assert result.returncode != 0
    assert "Set DATABASE_URL to your PostgreSQL (>= 15, with the vector extension)" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no database was created or started


def test_the_environment_switches_broker_cache_and_storage():
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.Q_CLUSTER.get('redis'), 'orm' in s.Q_CLUSTER, s.CACHES['default']['BACKEND'], "
        "s.STORAGES['default']['BACKEND'], s.STORAGES['default']['OPTIONS']['bucket_name'], "
        "s.STORAGES['default']['OPTIONS']['endpoint_url'], s.SIGHTLINE_ROUTE_BY_CLUSTER)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "REDIS_URL": "redis://cache:6379/2",
        "SIGHTLINE_S3_BUCKET": "images",
        "SIGHTLINE_S3_ENDPOINT_URL": "https://s3.example.com",
        "SIGHTLINE_ROUTE_BY_CLUSTER": "true",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.split() == [
        "redis://cache:6379/2",
        "False",
        "django.core.cache.backends.redis.RedisCache",
        "storages.backends.s3.S3Storage",
        "images",
        "https://s3.example.com",
        "True",
    ], result.stderr


def test_a_web_process_gives_torch_one_thread_and_a_worker_every_core():
    script = (
        "import config.wsgi, torch; from training.ml import runtime; "
        "print(torch.get_num_threads(), runtime.device_choose('cpu').type, torch.get_num_threads())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    env.pop("OMP_NUM_THREADS", None)
    web = subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert web.stdout.split() == ["1", "cpu", "1"], web.stderr
    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch; from training.ml import runtime; runtime.device_choose('cpu'); "
            "print(torch.get_num_threads(), runtime.cpu_count())",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    threads, cores = worker.stdout.split()
    assert threads == cores, worker.stderr
