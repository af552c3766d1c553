"""Projects with real labelled pixels for training tests: colours a tiny model tells apart in one or two epochs."""

import io
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage
from PIL import ImageDraw

from annotations.geometry import encode_mask
from projects.models import Label
from projects.uploads import images_upload
from tests.factories import make_project
from tests.training.scenes import ring_scene

# Fast settings for tests: the real default backbone and weights, only the classifier trains.
FAST = {"epochs": 3, "batch_size": 8, "learning_rate": 0.01, "fine_tune": "head", "patience": 0}


def colour_png(colour, seed: int, size: int = 32) -> bytes:
    """A flat colour with a little noise, so no two images share bytes."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.integers(-20, 20, (size, size, 3)), 0, 255)
    out = io.BytesIO()
    PILImage.fromarray(pixels.astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def shapes_png(kinds: set[str], seed: int, size: int = 64) -> bytes:
    """A grey scene holding a red disc, a green square and/or a blue bar, placed at random."""
    rng = np.random.default_rng(seed)
    image = PILImage.new("RGB", (size, size), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for kind in sorted(kinds):
        x, y = (int(v) for v in rng.integers(2, size - 22, 2))
        if kind == "disc":
            draw.ellipse([x, y, x + 18, y + 18], fill=(220, 30, 30))
        elif kind == "square":
            draw.rectangle([x, y, x + 16, y + 16], fill=(30, 200, 30))
        else:
            draw.rectangle([x, y, x + 20, y + 6], fill=(30, 30, 220))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def upload(project, user, files: list[tuple[str, bytes]], labels: list[str]):
    uploads = [SimpleUploadedFile(name, data) for name, data in files]
    return images_upload(project=project, user=user, files=uploads, labels=labels).stored


@pytest.fixture
def colours_project(user):
    """12 red and 12 blue images, labelled red and blue."""
    project = make_project(owner=user, name="Colours")
    upload(project, user, [(f"red{i}.png", colour_png((220, 30, 30), i)) for i in range(12)], ["red"])
    upload(project, user, [(f"blue{i}.png", colour_png((30, 30, 220), 100 + i)) for i in range(12)], ["blue"])
    return project


def bundle_extract(api, model_id: int, capture, folder: Path) -> Path:
    """Build a model's offline bundle through the API (its job runs when the request commits), download it, and
    unpack it into folder; the path of the bundle's own folder."""
    url = f"/api/models/{model_id}/bundle/"
    with capture(execute=True):
        assert api.post(url).status_code == 202
    response = api.get(url)
    assert response.status_code == 200, response.content
    with zipfile.ZipFile(io.BytesIO(response.getvalue())) as archive:
        archive.extractall(folder)
        [name] = {member.split("/")[0] for member in archive.namelist()}
    return folder / name


SIGHTLINE_PACKAGES = ("training", "annotations", "projects", "accounts", "similarity", "jobs", "config", "django")


def bundle_loaded(api, folder: Path, user, labels: list[str]) -> tuple:
    """Load Existing Model: the unpacked bundle zipped again and loaded into a new project with these labels (in
    this order); the project and the API's reply."""
    other = make_project(owner=user, name="Other rings")
    for name in labels:
        Label.objects.create(project=other, name=name)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in folder.iterdir():
            bundle.write(path, f"{folder.name}/{path.name}")
    form = {"file": SimpleUploadedFile("bundle.zip", archive.getvalue(), content_type="application/zip")}
    return other, api.post(f"/api/projects/{other.id}/models/", form, format="multipart")


def bundle_answer(folder: Path, path: str, data: bytes, serving: str) -> tuple[int, dict]:
    """Start the bundle's serve.py on a free port (its first line must contain `serving`), POST the image bytes
    to path, and return the status and the JSON reply."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Sightline is installed in this Python (editable): its packages and Django are made unimportable, so the
    # bundle is proved to need nothing but its own files and requirements.txt.
    launcher = "\n".join(
        [
            "import runpy, sys",
            f"sys.modules.update(dict.fromkeys({SIGHTLINE_PACKAGES!r}))",
            f"sys.path.insert(0, {str(folder)!r})",
            f"sys.argv = ['serve.py', '--port', '{port}']",
            f"runpy.run_path({str(folder / 'serve.py')!r}, run_name='__main__')",
        ]
    )
    server = subprocess.Popen(
        [sys.executable, "-c", launcher],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = server.stdout.readline()
        assert serving in first, first
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/octet-stream"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def scenes(api, user):
    """20 scenes of discs, squares and triangles, and one image labelled for classification only: a negative."""
    from projects.models import Label
    from tests.training.scenes import scene
    from tests.training.test_detection import annotate_scenes

    project = make_project(owner=user, name="Shapes")
    truth = annotate_scenes(api, project, user, range(20))
    empty = Label.objects.create(project=project, name="empty")
    png, _ = scene(99, objects=(0, 0))
    blank = images_upload(project=project, user=user, files=[SimpleUploadedFile("blank.png", png)], labels=[]).stored[0]
    document = {"revision": 0, "shapes": [], "classifications": [{"label": empty.id}]}
    assert api.put(f"/api/images/{blank.id}/annotations/", document, format="json").status_code == 200
    return project, truth, blank


def annotate_rings(api, project, user, seeds) -> None:
    """Upload a ring scene per seed and draw it through the API: the ring a polygon with a hole, the square a mask."""
    ring, _ = Label.objects.get_or_create(project=project, name="ring")
    square, _ = Label.objects.get_or_create(project=project, name="square")
    for seed in seeds:
        png, outer, inner, (x, y, side) = ring_scene(seed)
        mask = np.zeros((120, 160), bool)
        mask[y : y + side, x : x + side] = True
        shapes = [
            {"label": ring.id, "kind": "polygon", "geometry": {"parts": [{"outer": outer, "holes": [inner]}]}},
            {"label": square.id, "kind": "mask", "geometry": {"rle": encode_mask(mask)}},
        ]
        image = images_upload(project=project, user=user, files=[SimpleUploadedFile(f"r{seed}.png", png)], labels=[])
        saved = api.put(
            f"/api/images/{image.stored[0].id}/annotations/", {"revision": 0, "shapes": shapes}, format="json"
        )
        assert saved.status_code == 200, saved.content


@pytest.fixture
def rings(api, user):
    """12 scenes: each ring a polygon with a hole, each square a mask; and an image marked labeled with nothing."""
    project = make_project(owner=user, name="Rings")
    annotate_rings(api, project, user, range(12))
    png, *_ = ring_scene(99)
    blank = images_upload(project=project, user=user, files=[SimpleUploadedFile("blank.png", png)], labels=[]).stored[0]
    note = Label.objects.create(project=project, name="note")
    document = {"revision": 0, "shapes": [], "classifications": [{"label": note.id}]}
    assert api.put(f"/api/images/{blank.id}/annotations/", document, format="json").status_code == 200
    return project, blank
