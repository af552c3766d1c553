"""Real worker processes for tests: a job run in a process of its own (to kill it mid-run), and qcluster.

They reach the test's database and media folder through the environment, so a test that uses them
needs `transactional_db`: the worker sees only what the test committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = settings.BASE_DIR


def worker_env(**extra: str) -> dict:
    db = connection.settings_dict
    url = f"postgresql://{quote(db['USER'] or '')}@{quote(str(db['HOST'] or ''), safe='')}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="config.settings.test",
        SIGHTLINE_TEST_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def wait_for(condition, timeout: float = 60, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"Gave up waiting for {what} after {timeout} s.")


# Runs one job for real, in a process of its own, and hangs in its first progress report: the
# test kills it there, mid-run, as an out-of-memory kill or a lost machine would.
HANGING_JOB = """
import sys, time, django
django.setup()
from jobs import runner
report = runner.Context.progress
def progress(self, *args, **kwargs):
    report(self, *args, **kwargs, force=True)
    time.sleep(3600)
runner.Context.progress = progress
runner.job_run(int(sys.argv[1]))
"""


def job_process(job_id: int, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HANGING_JOB, str(job_id)], cwd=ROOT, env=worker_env(**env))


def qcluster(cluster: str | None, log, **env: str) -> subprocess.Popen:
    """`manage.py qcluster` for one cluster (None: the default one), in its own process group, logging to `log`."""
    extra = {"Q_CLUSTER_NAME": cluster} if cluster else {}
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=worker_env(**extra, LOG_LEVEL="INFO", **env),
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        process.kill()
    process.wait(timeout=30)
