"""Settings for the test suite: the same embedded PostgreSQL, faster hashing, files in a temp dir."""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A worker process a test starts (tests/workers.py) is given the test's media folder.
MEDIA_ROOT = Path(os.environ.get("SIGHTLINE_TEST_MEDIA_ROOT") or tempfile.mkdtemp(prefix="sightline-test-media-"))
SIGHTLINE_ALLOW_REGISTRATION = True
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}

# Live-server threads must not keep connections open past a test, or the test database cannot be dropped.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Tests that read /healthz's details send this token; an anonymous request gets only the status.
SIGHTLINE_HEALTH_TOKEN = "test-health-token"
# The ONNX export takes about a minute per detection job; the test that proves it (tests/training/test_detection.py,
# the bundle's) turns it on.
SIGHTLINE_DETECTOR_ONNX = False
