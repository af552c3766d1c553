"""What `manage.py serve` runs, kept running: a child that dies is restarted (after 1 s, doubling up to 30 s
while it keeps dying), and a child is always stopped with its whole tree, so a dead qcluster leaves no
sentinel or worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
# A child that ran this long before it died is restarted at once, as if it had never crashed.
HEALTHY_SECONDS = 60.0
STOP_SECONDS = 15.0
MARKER = "SIGHTLINE_SUPERVISED"


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    marker: str = ""
    started_at: float = 0.0
    delay: float = FIRST_DELAY
    restart_at: float | None = None
    restart_count: int = 0


class Supervisor:
    def __init__(self, *, log: Callable[[str], None], hurry: Callable[[], bool] = lambda: False):
        self.children: list[Child] = []
        self.log = log
        self.hurry = hurry

    def start(self, child: Child) -> None:
        if child not in self.children:
            self.children.append(child)
        # The marker is in the environment of every process the child starts, however it starts them, so the
        # tree can be found even after its leader died and its group was left.
        child.marker = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, **child.env, MARKER: child.marker}
        # Each child leads its own process group: Ctrl-C reaches only `serve`, which stops them in order.
        child.process = subprocess.Popen(child.command, env=env, start_new_session=True)
        child.started_at = time.monotonic()
        child.restart_at = None

    def watch(self, *, stopping: Callable[[], bool]) -> None:
        """Restart children that die, until `stopping()` says to stop."""
        while not stopping():
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        self.log(f"Restarting the {child.name}.")
                        self.start(child)
                    continue
                code = child.process.poll()
                if code is None:
                    continue
                tree_kill(child)
                ran = now - child.started_at
                # The first restart waits FIRST_DELAY; each crash soon after a restart doubles the wait.
                crashed_again = ran < HEALTHY_SECONDS and child.restart_count > 0
                child.delay = min(child.delay * 2, MAX_DELAY) if crashed_again else FIRST_DELAY
                child.restart_count += 1
                child.restart_at = now + child.delay
                self.log(
                    f"The {child.name} exited (code {code}) after {ran:.0f} s; restarting it in {child.delay:.0f} s."
                )
            time.sleep(0.2)

    def stop_all(self) -> None:
        """SIGTERM every child's group, wait (a second signal cuts the wait short), then kill whatever is left."""
        running = [c for c in self.children if c.process is not None]
        for child in running:
            group_signal(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while any(c.process.poll() is None for c in running) and time.monotonic() < deadline and not self.hurry():
            time.sleep(0.1)
        for child in running:
            tree_kill(child)


def group_signal(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except OSError:
        pass  # the group has gone already (ESRCH; EPERM on some systems once its leader is gone)


def tree_kill(child: Child) -> None:
    """SIGKILL the child's process group and every process that carries its marker, and reap the child."""
    group_signal(child.process, signal.SIGKILL)
    for process in marked(child.marker):
        try:
            process.kill()
        except psutil.Error:
            pass
    child.process.wait()


def marked(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER) == marker:
                found.append(process)
        except psutil.Error:
            continue  # gone, a zombie, or another user's
    return found
