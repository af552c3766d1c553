"""The real engines a team's deployment uses, started for a test on 127.0.0.1: Redis, and moto's S3 server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start: {process.stderr.read().decode() if process.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within 30 s.")


@pytest.fixture
def redis_url():
    """A throw-away Debian redis-server (`make test` installs it), nothing saved to disk."""
    binary = shutil.which("redis-server")
    assert binary, (
        "These tests need Debian's redis-server: run `make test`, which installs it, or apt-get install redis-server."
    )
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_port(port, server, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def s3_endpoint():
    """moto's S3-compatible server on 127.0.0.1, with one bucket; yields its settings."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_port(port, server, "moto's S3 server")
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        client.create_bucket(Bucket="sightline-test")
        yield {"endpoint": endpoint, "bucket": "sightline-test", "client": client}
    finally:
        server.kill()
        server.wait()
