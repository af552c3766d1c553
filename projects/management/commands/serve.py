"""`manage.py serve`: migrate, seed the demo once, then run and supervise the web server and a worker until
Ctrl-C. `make run` serves with gunicorn (threads, a bounded connection pool), as production does;
`make dev` (`serve --dev`) with runserver and its autoreload."""

from __future__ import annotations

import os
import signal
import sys
import time
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_q.tasks import async_task

from annotations.smart import smart_backend
from config import embedded_db
from jobs.supervision import Child, Supervisor
from jobs.tasks import HEARTBEAT_TASK
from projects import demo


class Command(BaseCommand):
    help = "Run Sightline: database, migrations, demo data, web server and one background worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-demo", action="store_true", help="Do not create the demo user and project.")
        parser.add_argument("--dev", action="store_true", help="Serve with runserver, reloading on code changes.")

    def handle(self, *args, host: str, port: int, no_demo: bool, dev: bool, **options):
        # A shell starts background jobs with SIGINT ignored; take both signals explicitly, from the
        # start: whenever the first one comes, what was started so far (the database too) is stopped.
        _state.update(stopping=False, hurry=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: the terminal was closed
            signal.signal(signum, _interrupt)
        supervisor = Supervisor(log=self.stderr.write, hurry=lambda: _state["hurry"])
        try:
            self._prepare(no_demo=no_demo)
            for child in children(host=host, port=port, dev=dev):
                supervisor.start(child)
            healthy = _healthy_wait(host=host, port=port)
            self._announce(host=host, port=port, no_demo=no_demo, dev=dev, healthy=healthy)
            supervisor.watch(stopping=lambda: _state["stopping"])
        except KeyboardInterrupt:
            self.stdout.write("\nStopping Sightline...")
        finally:
            _state["stopping"] = True
            supervisor.stop_all()
            self._stop_database()

    def _prepare(self, *, no_demo: bool) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database ready and migrated.")
        if not no_demo:
            _, project, created = demo.demo_seed()
            if created:
                self.stdout.write(f"Created the demo project with {project.images.count()} images.")
        backend = smart_backend()
        if backend.error:
            self.stderr.write(self.style.ERROR(f"Smart labeling: {backend.error} Using GrabCut until it is fixed."))
        else:
            self.stdout.write(f"Smart labeling: {backend.description}.")
        # A first heartbeat now, so /healthz is green as soon as the worker picks it up.
        async_task(HEARTBEAT_TASK)

    def _announce(self, *, host: str, port: int, no_demo: bool, dev: bool, healthy: bool) -> None:
        url = f"http://{'localhost' if host in {'127.0.0.1', '0.0.0.0'} else host}:{port}/"
        server = "runserver, reloading on changes" if dev else f"gunicorn, {web_processes()} x {web_threads()} threads"
        self.stdout.write(self.style.SUCCESS(f"\nSightline is running at {url} ({server})"))
        if not healthy:
            self.stderr.write(
                f"It is not healthy yet after {HEALTHY_WAIT_SECONDS} s: {url}healthz says what is missing."
            )
        if not no_demo:
            self.stdout.write(f"Demo login: {demo.DEMO_USERNAME} / {demo.DEMO_PASSWORD}")
        self.stdout.write(f"Health: {url}healthz   API docs: {url}api/docs/   Press Ctrl-C to stop.\n")

    def _stop_database(self) -> None:
        if "DATABASE_URL" in os.environ:
            return
        from django.db import connections

        connections.close_all()
        self.stdout.write(embedded_db.stop(settings.DATA_DIR))


HEALTHY_WAIT_SECONDS = 60


def _healthy_wait(*, host: str, port: int) -> bool:
    """Whether /healthz turned green (the web server answers, the worker's first heartbeat landed) within
    HEALTHY_WAIT_SECONDS, so that the banner is not printed while /healthz still says unhealthy. Ctrl-C ends the
    wait as it ends everything (_interrupt)."""
    address = "127.0.0.1" if host in {"0.0.0.0", "localhost"} else host
    deadline = time.monotonic() + HEALTHY_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{address}:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:  # not listening yet, or 503 while the worker has not beaten
            pass
        time.sleep(0.5)
    return False


def web_processes() -> int:
    return int(os.environ.get("SIGHTLINE_WEB_PROCESSES", "2"))


def web_threads() -> int:
    return int(os.environ.get("SIGHTLINE_WEB_THREADS", "4"))


def children(*, host: str, port: int, dev: bool) -> list[Child]:
    """The web server and the worker, each with its own environment."""
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    if dev:
        web = Child("web server", [*manage, "runserver", f"{host}:{port}"], {"SIGHTLINE_PROCESS_ROLE": "web"})
    else:
        web = Child(
            "web server",
            [
                *(sys.executable, "-m", "gunicorn", "config.wsgi:application"),
                *("--bind", f"{host}:{port}", "--worker-class", "gthread"),
                *("--workers", str(web_processes()), "--threads", str(web_threads())),
                # Keep-alive sockets wait in gunicorn's event loop, not in a thread, and hold no connection.
                *("--keep-alive", "5", "--timeout", "120", "--graceful-timeout", "10"),
                *("--chdir", str(settings.BASE_DIR)),
            ],
            {
                "SIGHTLINE_PROCESS_ROLE": "web",
                # One pooled connection per thread: a process never holds more than it can use.
                "SIGHTLINE_DB_POOL_SIZE": os.environ.get("SIGHTLINE_DB_POOL_SIZE", str(web_threads())),
                "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.base"),
            },
        )
    return [web, Child("worker", [*manage, "qcluster"], {"SIGHTLINE_PROCESS_ROLE": "worker"})]


_state = {"stopping": False, "hurry": False}


def _interrupt(signum, frame) -> None:
    """The first signal stops Sightline; one that comes while it stops only makes it hurry."""
    if _state["stopping"]:
        _state["hurry"] = True
        return
    _state["stopping"] = True
    raise KeyboardInterrupt
