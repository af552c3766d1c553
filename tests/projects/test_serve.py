"""`manage.py serve` (what `make run` runs) stops everything it started, even when Ctrl-C comes twice."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from django.conf import settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid`, however deep (qcluster's workers are its grandchildren)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(SIGHTLINE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


def _serve(data_dir: Path, port: int | None = None, **env) -> subprocess.Popen:
    """`manage.py serve` on a data directory of its own, once its web server answers."""
    port = port or _free_port()
    serve = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "serve", "--no-demo", "--port", str(port)],
        env={**_env(data_dir), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:
        assert serve.poll() is None, serve.stdout.read()
        assert time.monotonic() < deadline, "serve did not answer within 120 s"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2) as response:
                if response.status == 200:
                    return serve
        except OSError:
            time.sleep(0.5)


def _stop(serve: subprocess.Popen) -> str:
    """Ctrl-C, as a person would, and everything serve printed."""
    if serve.poll() is None:
        serve.send_signal(signal.SIGINT)
    try:
        return serve.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        serve.kill()
        return serve.communicate()[0]


def _cleanup(serve: subprocess.Popen, data_dir: Path) -> None:
    if serve.poll() is None:
        _stop(serve)
    pid_file = data_dir / "pg" / "postmaster.pid"
    if pid_file.exists():  # a failed run must not leave its server behind
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
        time.sleep(1)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_a_second_ctrl_c_during_shutdown_still_stops_the_worker_the_web_server_and_postgres():
    data_dir = settings.BASE_DIR / ".data" / f"test-serve-{uuid.uuid4().hex[:8]}"
    serve = None
    try:
        port = _free_port()
        serve = _serve(data_dir, port)
        for line in serve.stdout:  # the banner comes once /healthz is green: the worker has beaten too
            if "Sightline is running at" in line:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert (response.status, json.loads(response.read())["status"]) == (200, "ok")
        started = _descendants(serve.pid)
        postmaster = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        assert _alive(postmaster)
        assert len(started) >= 4  # gunicorn's master and worker, qcluster and at least one of its workers

        serve.send_signal(signal.SIGINT)
        time.sleep(0.3)
        serve.send_signal(signal.SIGINT)  # the second Ctrl-C arrives while it is shutting down
        output, _ = serve.communicate(timeout=60)

        assert serve.returncode == 0, output
        assert "Embedded PostgreSQL stopped." in output
        assert [pid for pid in started if _alive(pid)] == []
        time.sleep(0.5)
        assert not _alive(postmaster)
        assert not (data_dir / "pg" / "postmaster.pid").exists()
    finally:
        if serve is not None:
            _cleanup(serve, data_dir)


def test_serve_stops_a_database_another_process_started_once_no_process_uses_it():
    data_dir = settings.BASE_DIR / ".data" / f"test-serve-{uuid.uuid4().hex[:8]}"
    starter = "from pathlib import Path; import sys; from config import embedded_db; embedded_db.database_settings(Path(sys.argv[1]))"
    subprocess.run(
        [sys.executable, "-c", starter, str(data_dir)], check=True, cwd=settings.BASE_DIR, env=_env(data_dir)
    )
    postmaster = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    serve = None
    try:
        serve = _serve(data_dir)  # attaches to the database the starter, now ended, left running
        assert "Embedded PostgreSQL stopped." in _stop(serve)
        time.sleep(0.5)
        assert not _alive(postmaster)
    finally:
        if serve is not None:
            _cleanup(serve, data_dir)


def test_a_database_another_process_uses_outlives_the_serve_that_started_it_and_the_last_serve_out_stops_it():
    """A second `make run` (or one started while the first was still stopping) keeps its database."""
    data_dir = settings.BASE_DIR / ".data" / f"test-serve-{uuid.uuid4().hex[:8]}"
    attach = (
        "from pathlib import Path; import sys; from config import embedded_db; "
        "embedded_db.database_settings(Path(sys.argv[1])); print('attached', flush=True); sys.stdin.read()"
    )
    first = user = second = None
    try:
        first = _serve(data_dir)  # starts the database
        postmaster = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        user = subprocess.Popen(
            [sys.executable, "-c", attach, str(data_dir)],
            cwd=settings.BASE_DIR,
            env=_env(data_dir),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert user.stdout.readline() == "attached\n"
        assert "Embedded PostgreSQL left running: 1 other process still uses it." in _stop(first)
        assert _alive(postmaster)
        user.communicate("", timeout=30)  # the other process ends; its claim on the database goes with it
        second = _serve(data_dir)  # re-attaches to the running database; the last serve out stops it
        assert "Embedded PostgreSQL stopped." in _stop(second)
        time.sleep(0.5)
        assert not _alive(postmaster)
    finally:
        if user is not None and user.poll() is None:
            user.kill()
        for serve in (first, second):
            if serve is not None:
                _cleanup(serve, data_dir)


def test_two_serves_stopped_together_leave_no_database_behind():
    data_dir = settings.BASE_DIR / ".data" / f"test-serve-{uuid.uuid4().hex[:8]}"
    serves = []
    try:
        serves = [_serve(data_dir), _serve(data_dir)]
        postmaster = int((data_dir / "pg" / "postmaster.pid").read_text().split()[0])
        for serve in serves:
            serve.send_signal(signal.SIGINT)  # closing the terminal both run in
        outputs = [serve.communicate(timeout=60)[0] for serve in serves]
        assert sum("Embedded PostgreSQL stopped." in output for output in outputs) == 1, outputs
        time.sleep(0.5)
        assert not _alive(postmaster)
    finally:
        for serve in serves:
            _cleanup(serve, data_dir)


def _web_backends(data_dir: Path) -> int:
    import psycopg

    fields = (data_dir / "pg" / "postmaster.pid").read_text().split("\n")
    with psycopg.connect(host=fields[4], port=fields[3], user="postgres", dbname="sightline") as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sightline web'"
        return conn.execute(query).fetchone()[0]


def _get(port: int, path: str, **headers) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_idle_keep_alive_clients_exhaust_nothing_and_connections_return_to_idle_level():
    from concurrent.futures import ThreadPoolExecutor

    data_dir = settings.BASE_DIR / ".data" / f"test-serve-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    serve = None
    idle: list[socket.socket] = []
    try:
        serve = _serve(
            data_dir, port, SIGHTLINE_WEB_PROCESSES="1", SIGHTLINE_WEB_THREADS="3", SIGHTLINE_DB_POOL_IDLE_SECONDS="2"
        )
        # 120 clients that each make a request which reads the database (a session cookie makes the page load
        # its session), then keep their connection open and say nothing more.
        for _ in range(120):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(
                f"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: sessionid=nosuchsession\r\n"
                "Connection: keep-alive\r\n\r\n".encode()
            )
            assert client.recv(12) == b"HTTP/1.1 200"
            idle.append(client)
        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = list(pool.map(lambda _: _get(port, "/accounts/login/", Cookie="sessionid=x"), range(240)))
        assert codes == [200] * 240
        assert _web_backends(data_dir) <= 3  # one process of three threads: never more than three connections

        time.sleep(7)  # past the pool's idle time, twice over
        assert _web_backends(data_dir) == 1  # the pool's one kept connection
        assert _get(port, "/accounts/login/", Cookie="sessionid=x") == 200
    finally:
        for client in idle:
            client.close()
        if serve is not None:
            _cleanup(serve, data_dir)


def _clusters(pid: int) -> list:
    """The live qcluster children of `serve`: the killed one stays a zombie until serve reaps it, and has no cmdline."""
    import psutil

    clusters = []
    for child in psutil.Process(pid).children():
        try:
            if "qcluster" in " ".join(child.cmdline()):
                clusters.append(child)
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return clusters


def test_a_killed_worker_is_restarted_with_its_orphans_stopped_and_the_web_server_stays_up():
    import psutil

    data_dir = settings.BASE_DIR / ".data" / f"test-serve-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    serve = None
    try:
        serve = _serve(data_dir, port)
        cluster = _clusters(serve.pid)[0]
        deadline = time.monotonic() + 60
        while len(cluster.children(recursive=True)) < 3 and time.monotonic() < deadline:  # sentinel and workers
            time.sleep(0.5)
        orphans = cluster.children(recursive=True)
        assert len(orphans) >= 2

        cluster.kill()
        restarted = None
        deadline = time.monotonic() + 30
        while restarted is None and time.monotonic() < deadline:
            assert _get(port, "/accounts/login/") == 200  # the web server never goes down
            time.sleep(0.2)
            restarted = next((p for p in _clusters(serve.pid) if p.pid != cluster.pid), None)
        assert restarted is not None, "no new qcluster within 30 s"
        assert [p.pid for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
        assert "The worker exited (code -9)" in _stop(serve)
    finally:
        if serve is not None:
            _cleanup(serve, data_dir)


def _api(port: int, method: str, path: str, token: str = "", body: dict | None = None) -> tuple[int, dict, dict]:
    import json

    headers = {"Content-Type": "application/json", **({"Authorization": f"Token {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def test_with_the_database_down_the_api_answers_json_503_with_retry_after_and_recovers_when_it_returns():
    data_dir = settings.BASE_DIR / ".data" / f"test-serve-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    serve = None
    try:
        serve = _serve(data_dir, port)
        credentials = {"username": "ada", "email": "ada@example.com", "password": "a-long-enough-password"}
        assert _api(port, "POST", "/api/auth/register/", body=credentials)[0] == 201
        login = {"username": "ada", "password": "a-long-enough-password"}
        token = _api(port, "POST", "/api/auth/token/", body=login)[2]["token"]
        assert _api(port, "GET", "/api/projects/", token)[0] == 200

        pid_file = data_dir / "pg" / "postmaster.pid"
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # PostgreSQL's fast shutdown
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_file.exists()

        code, headers, body = _api(port, "GET", "/api/projects/", token)
        assert (code, headers["Retry-After"], headers["Content-Type"]) == (503, "5", "application/json")
        assert body == {
            "detail": "Sightline is briefly unavailable (its database cannot be reached); try again in a few seconds."
        }

        starter = "from pathlib import Path; import sys; from config import embedded_db; embedded_db.database_settings(Path(sys.argv[1]))"
        subprocess.run(
            [sys.executable, "-c", starter, str(data_dir)], check=True, cwd=settings.BASE_DIR, env=_env(data_dir)
        )
        deadline = time.monotonic() + 30
        code = 0
        while code != 200 and time.monotonic() < deadline:
            code = _api(port, "GET", "/api/projects/", token)[0]
            time.sleep(0.2)
        assert code == 200  # the pool replaced its dead connections by itself: no restart of Sightline
        # Its Ctrl-C stops the server running now, which another process started after this one attached.
        restarted = int(pid_file.read_text().split()[0])
        assert "Embedded PostgreSQL stopped." in _stop(serve)
        time.sleep(0.5)
        assert not _alive(restarted) and not pid_file.exists()
    finally:
        if serve is not None:
            _cleanup(serve, data_dir)
