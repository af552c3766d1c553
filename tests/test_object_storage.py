"""Sightline on S3-compatible object storage (moto's server on 127.0.0.1): an upload, a thumbnail, an export
download and a SAM cache entry each make the round trip, and browsers get presigned URLs after the permission check."""

import io
import urllib.request
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from annotations import smart
from jobs.models import Job
from jobs.runner import job_run
from projects.models import Image
from tests.conftest import client_for
from tests.engines import s3_endpoint  # noqa: F401 (a fixture)
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def s3(s3_endpoint, settings):  # noqa: F811
    """The default storage is the bucket, exactly as SIGHTLINE_S3_BUCKET makes it in settings/base.py."""
    from config.settings.base import s3_storage

    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket=s3_endpoint["bucket"],
            endpoint_url=s3_endpoint["endpoint"],
            region="us-east-1",
            access_key="test",
            secret_key="test",
            expire=300,
        ),
    }
    settings.SIGHTLINE_PRESIGNED_SECONDS = 300
    return s3_endpoint


def keys(s3) -> set[str]:
    listed = s3["client"].list_objects_v2(Bucket=s3["bucket"]).get("Contents", [])
    return {entry["Key"] for entry in listed}


def follow(s3, response) -> bytes:
    """A browser following the redirect: to the bucket, signed, short-lived."""
    assert response.status_code == 302
    url = response["Location"]
    assert url.startswith(f"{s3['endpoint']}/{s3['bucket']}/")
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Expires"] == ["300"] and "X-Amz-Signature" in query
    assert response["Cache-Control"] == "private, max-age=150"
    with urllib.request.urlopen(url, timeout=10) as fetched:
        return fetched.read()


def test_an_upload_and_its_thumbnail_live_in_the_bucket_and_reach_browsers_by_presigned_urls(s3, api, user):
    project = make_project(owner=user)
    png = image_bytes(width=640, height=480)
    response = api.post(
        f"/api/projects/{project.id}/images/", {"files": [SimpleUploadedFile("red.png", png)]}, format="multipart"
    )
    assert response.status_code == 201, response.content
    image = Image.objects.get()
    assert keys(s3) == {image.file.name, image.thumbnail.name}
    original = follow(s3, api.get(f"/api/images/{image.id}/file/"))
    assert PILImage.open(io.BytesIO(original)).size == (640, 480)
    thumbnail = PILImage.open(io.BytesIO(follow(s3, api.get(f"/api/images/{image.id}/thumbnail/"))))
    assert (thumbnail.format, max(thumbnail.size)) == ("WEBP", 256)
    # The permission check comes first: a stranger gets no URL at all.
    refused = client_for(UserFactory()).get(f"/api/images/{image.id}/file/")
    assert (refused.status_code, refused.has_header("Location")) == (404, False)


def test_a_background_export_is_written_to_the_bucket_and_downloaded_from_it(s3, api, user):
    project = make_project(owner=user)
    api.post(
        f"/api/projects/{project.id}/images/",
        {"files": [SimpleUploadedFile("red.png", image_bytes())]},
        format="multipart",
    )
    started = api.post(f"/api/projects/{project.id}/export/", {"format": "coco"}, format="json")
    assert started.status_code == 202
    assert job_run(started.json()["id"]) == "finished"
    body = api.get(f"/api/transfers/{started.json()['id']}/").json()
    downloaded = follow(s3, api.get(body["download_url"]))
    import json

    coco = json.loads(downloaded)
    assert [i["file_name"] for i in coco["images"]] == ["red.png"]
    assert any(key.startswith(f"transfers/{project.id}/export-coco-") for key in keys(s3))


def test_a_sam_embedding_is_cached_in_the_bucket_for_every_host(s3, api, user, settings, tmp_path):
    from tests.annotations.sam_tiny import tiny_checkpoint
    from tests.annotations.smart_scenes import scene

    settings.SIGHTLINE_SAM_CHECKPOINT = str(tiny_checkpoint(tmp_path / "sam_tiny.pth"))
    project = make_project(owner=user)
    s = scene("ellipse", 1)
    out = io.BytesIO()
    PILImage.fromarray(s.rgb).save(out, "PNG")
    api.post(
        f"/api/projects/{project.id}/images/",
        {"files": [SimpleUploadedFile("e.png", out.getvalue())]},
        format="multipart",
    )
    image = Image.objects.get()
    payload = {"box": s.box, "foreground": s.foreground, "background": s.background}
    try:
        waiting = api.post(f"/api/images/{image.id}/smart/", payload, format="json")
        assert waiting.status_code == 202
        assert job_run(waiting.json()["job"]) == "finished"
        cached = [key for key in keys(s3) if key.startswith("cache/sam/")]
        assert [key.rsplit("/", 1)[1] for key in cached] == [f"{image.sha256}.npy"]
        stored = np.load(io.BytesIO(s3["client"].get_object(Bucket=s3["bucket"], Key=cached[0])["Body"].read()))
        assert stored.shape == (32, 16, 16)
        smart._embeddings.items.clear()  # another web host: only the bucket is shared
        answer = api.post(f"/api/images/{image.id}/smart/", payload, format="json")
        assert (answer.status_code, answer.json()["embedding_cached"]) == (200, True)
        assert smart.sam_cache_trim(limit_bytes=0) == 1
        assert not [key for key in keys(s3) if key.startswith("cache/sam/")]
        assert Job.objects.filter(kind="sam-embeddings").count() == 1
    finally:
        smart._engine.cache_clear()
        smart._embeddings.items.clear()
