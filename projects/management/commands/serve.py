"""`manage.py serve`: migrate, seed the demo once, run the web server and a worker until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_q.tasks import async_task

from annotations.smart import smart_backend
from config import embedded_db
from jobs.tasks import HEARTBEAT_TASK
from projects import demo


class Command(BaseCommand):
    help = "Run Sightline: database, migrations, demo data, web server and one background worker."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--no-demo", action="store_true", help="Do not create the demo user and project.")

    def handle(self, *args, host: str, port: int, no_demo: bool, **options):
        # A shell starts background jobs with SIGINT ignored; take both signals explicitly, from the
        # start: whenever the first one comes, what was started so far (the database too) is stopped.
        _state.update(stopping=False, hurry=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: the terminal was closed
            signal.signal(signum, _interrupt)
        children: list[subprocess.Popen] = []
        try:
            self._start(children, host=host, port=port, no_demo=no_demo)
            self._wait(children)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping Sightline...")
        finally:
            self._stop(children)

    def _start(self, children: list[subprocess.Popen], *, host: str, port: int, no_demo: bool) -> None:
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

        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        # Each child leads its own process group: Ctrl-C reaches only this process, which stops them
        # in order (worker, then web, then the database), and a group is killed with its own children.
        for command in (["runserver", f"{host}:{port}", "--noreload"], ["qcluster"]):
            children.append(subprocess.Popen([*manage, *command], start_new_session=True))
        url = f"http://{'localhost' if host in {'127.0.0.1', '0.0.0.0'} else host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nSightline is running at {url}"))
        if not no_demo:
            self.stdout.write(f"Demo login: {demo.DEMO_USERNAME} / {demo.DEMO_PASSWORD}")
        self.stdout.write(f"Health: {url}healthz   API docs: {url}api/docs/   Press Ctrl-C to stop.\n")

    def _wait(self, children: list[subprocess.Popen]) -> None:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        self.stderr.write("A Sightline process exited; stopping the others.")

    def _stop(self, children: list[subprocess.Popen]) -> None:
        """Stop everything this command started, whatever signals arrive meanwhile.

        A second Ctrl-C no longer interrupts the clean-up: it only cuts the waiting short, so the
        children are killed at once and the database is still stopped.
        """
        _state["stopping"] = True
        for child in children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while any(child.poll() is None for child in children) and time.monotonic() < deadline and not _state["hurry"]:
            time.sleep(0.1)
        for child in children:
            _signal_group(child, signal.SIGKILL)  # the group too: qcluster's workers must not outlive it
            child.wait()
        if "DATABASE_URL" not in os.environ:
            from django.db import connections

            connections.close_all()
            if embedded_db.stop(settings.DATA_DIR):
                self.stdout.write("Embedded PostgreSQL stopped.")
            else:
                self.stdout.write("Embedded PostgreSQL left running: another process started it.")


_state = {"stopping": False, "hurry": False}


def _interrupt(signum, frame) -> None:
    """The first signal stops Sightline; one that comes while it stops only makes it hurry."""
    if _state["stopping"]:
        _state["hurry"] = True
        return
    _state["stopping"] = True
    raise KeyboardInterrupt


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except OSError:
        pass  # the group has gone already (ESRCH; EPERM on some systems once its leader is gone)
