"""Hostile images stay cheap: each is refused (or decoded) under a memory and a time budget, measured as the
peak RSS of a fresh process, and concurrent decodes share one bounded budget."""

import io
import json
import os
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from projects.imaging import DecodeBudget, DecodeBusy, Limits, decode_image
from projects.models import Image
from tests.factories import make_project

MB = 1024 * 1024
LIMITS = Limits(max_pixels=120_000_000, max_decoded_bytes=200 * MB)


def png_header_only(width: int, height: int, *, color_type: int = 2) -> bytes:
    """A PNG that declares width x height pixels and carries almost no data: a few dozen bytes on the wire."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


MEASURE = """
import json, sys, time
from projects import imaging
from projects.imaging import DecodeBudget, ImageRejected, Limits, decode_image
imaging._budget = DecodeBudget(800 * 1024 * 1024, 30)  # what the settings give a web process
data = open(sys.argv[1], "rb").read()
def peak_kb():  # VmHWM starts anew at exec, unlike ru_maxrss, which a child inherits from pytest
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])
before = peak_kb()
started = time.perf_counter()
try:
    decoded = decode_image(data, limits=Limits(120_000_000, 200 * 1024 * 1024), thumbnail_size=256)
    outcome = f"{decoded.width}x{decoded.height}"
except ImageRejected as exc:
    outcome = str(exc)
seconds = time.perf_counter() - started
peak = peak_kb()
print(json.dumps({"outcome": outcome, "seconds": seconds, "grew_mb": (peak - before) / 1024}))
"""


def measure(tmp_path, data: bytes) -> dict:
    """Decode `data` in a fresh process: what it answered, how long it took, and how much its peak RSS grew."""
    path = tmp_path / "input"
    path.write_bytes(data)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}  # Pillow alone, no Django
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, cwd=settings.BASE_DIR, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_66_byte_png_declaring_60_million_pixels_is_refused_from_its_header(tmp_path):
    data = png_header_only(1, 60_000_000)
    assert len(data) == 66
    result = measure(tmp_path, data)
    assert result["outcome"] == ("The image is 1x60000000 (RGB), 229 MB once decoded, more than the limit of 200 MB.")
    assert result["grew_mb"] < 5
    assert result["seconds"] < 0.5


def test_more_pixels_than_the_limit_are_refused_from_the_header_whatever_the_mode(tmp_path):
    result = measure(tmp_path, png_header_only(15_000, 10_000, color_type=0))  # 150 megapixels, grey
    assert result["outcome"] == (
        "The image is 15000x10000 = 150,000,000 pixels, more than the limit of 120,000,000 (a decompression bomb?)."
    )
    assert result["grew_mb"] < 5


def test_a_25_megapixel_upload_holds_at_most_two_copies_of_its_pixels(tmp_path):
    rng = np.random.default_rng(3)
    tile = rng.integers(0, 255, (500, 500, 3), dtype=np.uint8)
    out = io.BytesIO()
    PILImage.fromarray(np.tile(tile, (10, 10, 1))).save(out, "JPEG", quality=80)  # 5000 x 5000
    result = measure(tmp_path, out.getvalue())
    one_copy = 5000 * 5000 * 4 / MB  # Pillow holds RGB in four bytes a pixel
    assert result["outcome"] == "5000x5000", result
    assert one_copy * 0.9 < result["grew_mb"] < one_copy * 2, result


def test_the_decode_budget_makes_a_decode_wait_for_room_then_gives_up():
    budget = DecodeBudget(capacity=100, wait_seconds=0.2)
    with budget.reserve(60):
        started = time.monotonic()
        with pytest.raises(DecodeBusy):
            with budget.reserve(60):
                pass
        assert 0.2 <= time.monotonic() - started < 1
        with budget.reserve(40):  # what fits runs at once
            assert budget.in_flight == 100
    assert budget.in_flight == 0

    order = []
    with budget.reserve(100):
        waiter = threading.Thread(target=lambda: budget.reserve(100).__enter__() or order.append("second"))
        waiter.start()
        time.sleep(0.05)
        order.append("first done")
    waiter.join(timeout=2)
    assert order == ["first done", "second"]


def test_one_image_larger_than_the_whole_budget_runs_alone():
    budget = DecodeBudget(capacity=100, wait_seconds=0.1)
    with budget.reserve(500):
        assert budget.in_flight == 100


@pytest.mark.django_db
def test_a_full_decode_budget_answers_503_with_retry_after_and_stores_nothing(api, user, monkeypatch):
    from projects import imaging

    project = make_project(owner=user)
    full = DecodeBudget(capacity=1, wait_seconds=0)
    monkeypatch.setattr(imaging, "_budget", full)
    api.raise_request_exception = False
    with full.reserve(1):
        upload = SimpleUploadedFile("a.png", decode_ready_png())
        response = api.post(f"/api/projects/{project.id}/images/", {"files": [upload]}, format="multipart")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"detail": "The server is busy decoding other large images; try again in a few seconds."}
    assert Image.objects.count() == 0


def decode_ready_png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (32, 32), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "member", "message"),
    [
        (
            "png-masks",
            "masks/a.png",
            "masks/a.png: The image is 15000x10000 = 150,000,000 pixels, more than the limit of 120,000,000 "
            "(a decompression bomb?).",
        ),
        ("bw-masks-zip", "bitmaps/a.png/cat/object_1.png", None),
    ],
)
def test_a_150_megapixel_mask_is_refused_before_it_is_decoded(api, user, key, member, message):
    project = make_project(owner=user)
    api.post(
        f"/api/projects/{project.id}/images/",
        {"files": [SimpleUploadedFile("a.png", decode_ready_png())]},
        format="multipart",
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, png_header_only(15_000, 10_000, color_type=0))
        zf.writestr("objects.csv", "image,color,label\na.png,#ffffff,cat\n")
    started = time.perf_counter()
    response = api.post(
        f"/api/projects/{project.id}/import/",
        {"format": key, "file": SimpleUploadedFile("masks.zip", archive.getvalue())},
        format="multipart",
    )
    assert time.perf_counter() - started < 2
    assert response.status_code == 400
    text = " ".join(sum(response.json().values(), []))
    assert text == (
        message
        or f"{member}: The image is 15000x10000 = 150,000,000 pixels, more than the limit of "
        "120,000,000 (a decompression bomb?)."
    )


@pytest.mark.django_db
def test_a_mask_of_another_size_than_its_image_is_refused_from_its_header(api, user):
    project = make_project(owner=user)
    api.post(
        f"/api/projects/{project.id}/images/",
        {"files": [SimpleUploadedFile("a.png", decode_ready_png())]},
        format="multipart",
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("masks/a.png", png_header_only(4000, 3000))
        zf.writestr("objects.csv", "image,color,label\na.png,#ffffff,cat\n")
    response = api.post(
        f"/api/projects/{project.id}/import/",
        {"format": "png-masks", "file": SimpleUploadedFile("masks.zip", archive.getvalue())},
        format="multipart",
    )
    assert response.status_code == 400
    assert " ".join(sum(response.json().values(), [])) == (
        "masks/a.png: It is 4000x3000, but it must be 32x32 (the size of its image)."
    )


def test_a_decoded_image_keeps_its_size(tmp_path):
    data = decode_ready_png()
    assert (decode_image(data, limits=LIMITS).width, decode_image(data, limits=LIMITS).height) == (32, 32)
