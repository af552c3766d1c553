"""Export and import through the API: every format into a second project, bad files, background jobs."""

import io
import json
import zipfile

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.geometry import encode_mask
from annotations.models import Annotation, Classification, TransferJob
from projects.models import Image, Label, Role
from projects.services import membership_grant
from projects.uploads import images_upload
from tests.conftest import client_for
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = pytest.mark.django_db

FILES = [("a.png", (200, 10, 10)), ("b.png", (10, 200, 10))]


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def make(user, name):
    project = make_project(owner=user, name=name)
    files = [SimpleUploadedFile(n, image_bytes(width=64, height=48, color=c)) for n, c in FILES]
    images = {i.name: i for i in images_upload(project=project, user=user, files=files, labels=[]).stored}
    return project, images


@pytest.fixture
def source(user, api):
    project, images = make(user, "Source")
    gull = Label.objects.create(project=project, name="gull", color="#123456", keypoint_template=["beak"])
    tern = Label.objects.create(project=project, name="tern")
    mask = np.zeros((48, 64), dtype=bool)
    mask[20:30, 5:15] = True
    api.put(
        f"/api/images/{images['a.png'].id}/annotations/",
        {
            "revision": 0,
            "classifications": [{"label": tern.id}],
            "shapes": [
                {
                    "label": gull.id,
                    "kind": "box",
                    "geometry": {"x": 2, "y": 3, "width": 20, "height": 10},
                    "keypoints": [{"name": "beak", "x": 5, "y": 6, "visible": True}],
                    "occluded": True,
                },
                {
                    "label": tern.id,
                    "kind": "polygon",
                    "geometry": {"parts": [{"outer": [[30, 5], [60, 5], [45, 40]], "holes": []}]},
                },
                {"label": tern.id, "kind": "mask", "geometry": {"rle": encode_mask(mask)}},
                {"label": gull.id, "kind": "polyline", "geometry": {"points": [[1, 1], [10, 10]]}},
            ],
        },
        format="json",
    )
    api.put(
        f"/api/images/{images['b.png'].id}/annotations/",
        {"revision": 0, "classifications": [{"label": gull.id}, {"label": tern.id, "default": True}]},
        format="json",
    )
    return project


def export(api, project, key):
    response = api.get(f"/api/projects/{project.id}/export/", {"format": key})
    assert response.status_code == 200, response.getvalue()
    return response


def import_(api, project, key, content, **extra):
    upload = SimpleUploadedFile(f"upload.{key}", content)
    return api.post(f"/api/projects/{project.id}/import/", {"format": key, "file": upload, **extra}, format="multipart")


def document(api, image):
    doc = api.get(f"/api/images/{image.id}/annotations/").json()
    shapes = sorted(
        (
            Label.objects.get(pk=s["label"]).name,
            s["kind"],
            json.dumps(s["geometry"], sort_keys=True),
            s["occluded"],
            json.dumps(s["keypoints"]),
        )
        for s in doc["shapes"]
    )
    return [c["name"] for c in doc["classifications"]], shapes


@pytest.mark.parametrize(
    ("key", "kinds", "classifications", "fields"),
    [
        ("json", {"box", "polygon", "mask", "polyline"}, True, 5),
        ("coco", {"box", "polygon", "mask"}, False, 5),
        ("csv", set(), True, 5),
        ("yolo", {"box"}, False, 3),  # label, kind, geometry
        ("yolo-seg", {"polygon"}, False, 3),
        ("voc", {"box"}, False, 4),  # and occluded
        ("classification-zip", set(), True, 5),
    ],
)
def test_export_then_import_into_a_second_project(api, user, source, key, kinds, classifications, fields):
    target, images = make(user, "Target")
    exported = export(api, source, key)
    response = import_(api, target, key, exported.getvalue())
    assert response.status_code == 200, response.json()
    source_images = {i.name: i for i in source.images.all()}
    for name in ("a.png", "b.png"):
        want_classes, want_shapes = document(api, source_images[name])
        got_classes, got_shapes = document(api, images[name])
        assert got_classes == (want_classes if classifications else [])
        assert [s[:fields] for s in got_shapes] == [s[:fields] for s in want_shapes if s[1] in kinds]
    summary = json.loads(exported["X-Sightline-Summary"])
    assert summary["images"] == 2


@pytest.mark.parametrize("key", ["png-masks", "bw-masks-zip"])
def test_bitmap_formats_bring_areas_back_as_masks(api, user, source, key):
    target, images = make(user, "Target")
    response = import_(api, target, key, export(api, source, key).getvalue())
    assert response.status_code == 200, response.json()
    kinds = sorted(Annotation.objects.filter(image=images["a.png"]).values_list("label__name", "kind"))
    assert kinds == [("gull", "mask"), ("tern", "mask"), ("tern", "mask")]
    assert response.json()["summary"]["shapes"] == 3


def test_the_export_summary_names_what_the_format_cannot_hold(api, source):
    summary = json.loads(export(api, source, "coco")["X-Sightline-Summary"])
    assert summary["shapes"] == 3
    assert summary["not_held"] == [
        {"reason": "image classification labels (COCO instances has none)", "count": 3},
        {"reason": "polyline objects (COCO instances has no polyline)", "count": 1},
    ]


def test_import_replace_mode_replaces_and_append_adds(api, user, source):
    exported = export(api, source, "json").getvalue()
    import_(api, source, "json", exported)
    assert Annotation.objects.filter(image__project=source).count() == 8
    import_(api, source, "json", exported, mode="replace")
    assert Annotation.objects.filter(image__project=source).count() == 4


@pytest.mark.parametrize(
    ("key", "content", "message"),
    [
        (
            "json",
            b"{not json",
            "Not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            "json",
            b'{"images": [{"name": "a.png", "shapes": [{"label": "x", "kind": "box"}]}]}',
            "images[0].shapes[0].geometry: missing or of the wrong type.",
        ),
        (
            "json",
            b'{"images": [{"name": "a.png", "shapes": [{"label": "x", "kind": "polygon", "geometry": '
            b'{"parts": [{"outer": [[0, 0], [1, 1]]}]}}]}]}',
            "image 'a.png' shape 0: polygon part 0 outer ring needs at least 3 points, got 2",
        ),
        ("csv", b"a.png,cat\n,dog\n", "Line 2: the first field must be the image's file name."),
        (
            "coco",
            b'{"images": [], "annotations": [{"image_id": 7}], "categories": []}',
            "annotations[0].image_id: 7 is not in 'images'.",
        ),
        ("yolo", b"PK\x03\x04 broken", "This is not a valid ZIP archive."),
        (
            "coco",
            b'{"images": [{"id": [1], "file_name": "a.png"}], "annotations": [], "categories": []}',
            "images[0].id: expected a number or a text id, got a list.",
        ),
        (
            "coco",
            b'{"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "x"}], '
            b'"annotations": [{"image_id": 1, "category_id": 1, "bbox": [null, 2, 3, 4]}]}',
            "annotations[0].bbox[0]: expected a number, got nothing.",
        ),
        (
            "coco",
            b'{"images": [{"id": 1, "file_name": "a.png", "width": "wide"}], "annotations": [], "categories": []}',
            "images[0].width: expected a number, got the text 'wide'.",
        ),
        (
            "coco",
            b'{"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "x"}], '
            b'"annotations": [{"image_id": 1, "category_id": 1, "segmentation": {"size": [4, 4], "counts": [1, 2]}}]}',
            "annotations[0].segmentation.counts: the runs cover 3 pixels, not 4 x 4.",
        ),
        (
            "json",
            b'{"images": [{"name": "a.png", "shapes": [{"label": "x", "kind": "box", "source": [1], '
            b'"score": "high", "geometry": {}}]}]}',
            "images[0].shapes[0].score: expected a number, got the text 'high'.",
        ),
        (
            "json",
            b'{"labels": [{"name": "x", "color": "red"}], "images": []}',
            "labels[0].color: expected a colour like #1f77b4, got the text 'red'.",
        ),
        ("json", b'{"images": [{"name": "a\\u0000.png"}]}', "images[0].name: contains a NUL character."),
        ("voc", zip_of({"labelmap.txt": b"\x80cat"}), "labelmap.txt: not UTF-8 text (byte 0)."),
        (
            "voc",
            zip_of(
                {
                    "a.xml": b"<annotation><object><name>x</name><bndbox><xmin>1</xmin><ymin>a</ymin></bndbox></object></annotation>"
                }
            ),
            "a.xml object 0: <bndbox> needs numeric xmin, ymin, xmax and ymax.",
        ),
        (
            "png-masks",
            zip_of({"objects.csv": b"image,color,label\na.png,on,x\n"}),
            "objects.csv line 2: expected a colour like #1f77b4, got the text 'on'.",
        ),
        (
            "classification-zip",
            zip_of({"default_labels.csv": b"file,default_label\n\x80\n"}),
            "default_labels.csv: not UTF-8 text (byte 19).",
        ),
        (
            "yolo",
            zip_of({"obj.names": b"cat\n", "labels/a.txt": b"0 0.5 nan 0.1 0.1\n"}),
            "labels/a.txt line 1: expected a class number and then numbers.",
        ),
    ],
)
def test_malformed_files_are_400_naming_the_place_and_import_nothing(api, user, key, content, message):
    project, _ = make(user, "Target")
    response = import_(api, project, key, content)
    assert response.status_code == 400
    assert message in " ".join(sum(response.json().values(), []))
    assert (Annotation.objects.count(), Classification.objects.count(), Label.objects.count()) == (0, 0, 0)


def test_a_yolo_line_error_names_file_and_line(api, user):
    project, _ = make(user, "Target")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("obj.names", "gull\n")
        archive.writestr("labels/a.txt", "0 0.5 0.5 0.2 0.2\n0 0.5 oops 0.2 0.2\n")
    response = import_(api, project, "yolo", buffer.getvalue())
    assert response.json() == {"file": ["labels/a.txt line 2: expected a class number and then numbers."]}
    assert Annotation.objects.count() == 0


def test_images_not_in_the_project_are_reported_not_fatal(api, user):
    project, _ = make(user, "Target")
    response = import_(api, project, "csv", b"a.png,cat\nmissing.png,dog\n")
    assert response.json()["summary"]["skipped"] == ["missing.png: no image of this name in the project"]
    assert response.json()["summary"]["images"] == 1


def test_background_export_and_import_jobs(api, user, source, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/projects/{source.id}/export/", {"format": "coco"}, format="json")
    assert response.status_code == 202
    job = api.get(f"/api/transfers/{response.json()['id']}/").json()
    assert (job["status"], job["progress"], job["summary"]["shapes"]) == ("finished", 1.0, 3)
    content = b"".join(api.get(job["download_url"]).streaming_content)
    target, images = make(user, "Target")
    upload = SimpleUploadedFile("instances.json", content)
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(
            f"/api/projects/{target.id}/import/",
            {"format": "coco", "file": upload, "background": "true"},
            format="multipart",
        )
    assert started.status_code == 202
    finished = api.get(f"/api/transfers/{started.json()['id']}/").json()
    assert (finished["status"], finished["summary"]["shapes"], finished["download_url"]) == ("finished", 3, None)
    assert Annotation.objects.filter(image__project=target).count() == 3


def test_a_failed_background_import_says_why(api, user, django_capture_on_commit_callbacks):
    project, _ = make(user, "Target")
    upload = SimpleUploadedFile("x.csv", b",nameless\n")
    with django_capture_on_commit_callbacks(execute=True):
        started = api.post(
            f"/api/projects/{project.id}/import/",
            {"format": "csv", "file": upload, "background": "1"},
            format="multipart",
        ).json()
    job = TransferJob.objects.get(pk=started["id"])
    assert (job.status, job.error) == ("failed", "Line 1: the first field must be the image's file name.")


def test_permissions_for_transfers(user, source):
    labeler, stranger = UserFactory(), UserFactory()
    membership_grant(project=source, email=labeler.email, role=Role.objects.get(name="Labeler"))
    assert client_for(labeler).get(f"/api/projects/{source.id}/export/", {"format": "json"}).status_code == 403
    assert client_for(stranger).get(f"/api/projects/{source.id}/export/", {"format": "json"}).status_code == 404
    response = import_(client_for(labeler), source, "csv", b"a.png,brand-new-label\n")
    assert response.status_code == 400
    assert response.json() == {
        "file": ["Label 'brand-new-label' is not in this project, and your role may not create labels."]
    }
    assert import_(client_for(labeler), source, "csv", b"a.png,gull\n").status_code == 200
    assert Image.objects.filter(project=source).count() == 2


def test_the_transfer_page_starts_a_job_and_polls_it_to_the_download(
    client, user, source, django_capture_on_commit_callbacks
):
    client.force_login(user)
    page = client.get(f"/projects/{source.id}/transfer/").getvalue().decode()
    assert (
        'id="export-form"' in page
        and 'id="import-form"' in page
        and '<option value="bw-masks-zip">Black-and-white masks (ZIP)</option>' in page
    )
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(
            f"/projects/{source.id}/transfer/start/", {"format": "voc", "export": "1"}, HTTP_HX_REQUEST="true"
        )
    job = TransferJob.objects.get()
    assert f'id="job-{job.id}"' in started.getvalue().decode()
    polled = client.get(f"/projects/{source.id}/transfer/jobs/{job.id}/", HTTP_HX_REQUEST="true").getvalue().decode()
    assert f'href="/api/transfers/{job.id}/file/"' in polled
    assert "not held: 1 polygon objects (Pascal VOC holds boxes only)" in polled
    assert 'hx-trigger="every 1s"' not in polled  # finished: polling stops


def test_a_queued_job_is_polled_with_a_progress_bar(client, user, source):
    client.force_login(user)
    client.post(
        f"/projects/{source.id}/transfer/start/", {"format": "json", "export": "1"}
    )  # not committed: stays queued
    job = TransferJob.objects.get()
    partial = client.get(f"/projects/{source.id}/transfer/jobs/{job.id}/").getvalue().decode()
    assert 'hx-trigger="every 1s"' in partial and '<progress max="1" value="0.0">' in partial


def test_an_empty_project_exports_no_empty_file(api, user):
    project = make_project(owner=user, name="Empty")
    response = api.get(f"/api/projects/{project.id}/export/", {"format": "csv"})
    assert response.status_code == 400
    assert response.json() == {"format": ["The project has no images yet; there is nothing to export."]}


@pytest.mark.parametrize(
    ("key", "document_name", "image_path"),
    [
        ("coco", "instances.json", "images/a.png"),
        ("yolo", "data.yaml", "images/a.png"),
        ("yolo-seg", "data.yaml", "images/a.png"),
    ],
)
def test_include_images_exports_one_archive_that_a_new_project_imports_whole(
    api, user, source, key, document_name, image_path
):
    response = api.get(f"/api/projects/{source.id}/export/", {"format": key, "include_images": "true"})
    assert response.status_code == 200
    body = response.getvalue()  # streamed: read once
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert document_name in archive.namelist() and image_path in archive.namelist()
    original = Image.objects.get(project=source, name="a.png")
    assert archive.read(image_path) == original.file.read()
    target = make_project(owner=user, name="Fresh")  # no images at all
    imported = import_(api, target, key, body)
    assert imported.status_code == 200, imported.getvalue()
    assert sorted(Image.objects.filter(project=target).values_list("name", "width", "height")) == [
        ("a.png", 64, 48),
        ("b.png", 64, 48),
    ]
    ours, theirs = (Image.objects.get(project=p, name="a.png") for p in (source, target))
    kinds = {"coco": {"box", "polygon", "mask"}, "yolo": {"box"}, "yolo-seg": {"polygon"}}[key]
    fields = 5 if key == "coco" else 3  # YOLO holds no occlusion or keypoints
    assert [s[:fields] for s in document(api, theirs)[1]] == [
        s[:fields] for s in document(api, ours)[1] if s[1] in kinds
    ]


def test_include_images_is_refused_for_formats_that_cannot_hold_them(api, source):
    response = api.get(f"/api/projects/{source.id}/export/", {"format": "csv", "include_images": "true"})
    assert response.status_code == 400
    assert response.json() == {"format": ["CSV (image labels) exports cannot include the images; COCO and YOLO can."]}


def test_an_archive_with_images_needs_the_right_to_upload_and_stores_nothing_without_it(api, user, source):
    exported = api.get(f"/api/projects/{source.id}/export/", {"format": "coco", "include_images": "true"}).getvalue()
    owner = UserFactory()
    target = make_project(owner=owner, name="Theirs")
    labeler = UserFactory()
    membership_grant(project=target, email=labeler.email, role=Role.objects.get(name="Labeler"))
    Label.objects.create(project=target, name="gull")
    Label.objects.create(project=target, name="tern")
    response = import_(client_for(labeler), target, "coco", exported)
    assert response.status_code == 400
    assert response.json() == {
        "file": ["The archive brings images the project lacks, and your role may not upload images."]
    }
    assert (
        Image.objects.filter(project=target).count() == 0
        and Annotation.objects.filter(image__project=target).count() == 0
    )


def test_a_classification_zip_brings_its_images_into_an_empty_project(api, user, source):
    exported = api.get(f"/api/projects/{source.id}/export/", {"format": "classification-zip"}).getvalue()
    target = make_project(owner=user, name="Fresh")
    assert import_(api, target, "classification-zip", exported).status_code == 200
    rows = Classification.objects.filter(image__project=target).order_by("image__name", "label__name")
    assert list(rows.values_list("image__name", "label__name")) == [
        ("a.png", "tern"),
        ("b.png", "gull"),
        ("b.png", "tern"),
    ]


def test_an_archive_with_a_corrupt_image_imports_nothing_and_leaves_no_file(api, user, source, media_root):
    exported = api.get(f"/api/projects/{source.id}/export/", {"format": "coco", "include_images": "true"}).getvalue()
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    files["images/b.png"] = b"not an image at all"
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    target = make_project(owner=user, name="Fresh")
    before = sorted(p.name for p in media_root.rglob("*") if p.is_file())
    response = import_(api, target, "coco", broken.getvalue())
    assert response.status_code == 400
    assert response.json() == {
        "file": [
            "Images in the archive were refused, so nothing was imported: b.png: This is not an image file Sightline can read."
        ]
    }
    assert Image.objects.filter(project=target).count() == 0
    assert sorted(p.name for p in media_root.rglob("*") if p.is_file()) == before  # a.png's files went too


def test_a_background_import_with_a_very_long_file_name_is_queued_and_keeps_its_extension(api, user, media_root):
    from annotations.models import TransferJob

    project = make_project(owner=user)
    name = "a" * 250 + ".json"
    upload = SimpleUploadedFile(name, b'{"images": [], "annotations": [], "categories": []}')
    response = api.post(
        f"/api/projects/{project.id}/import/",
        {"format": "coco", "file": upload, "background": "true"},
        format="multipart",
    )
    assert response.status_code == 202, response.getvalue()
    job = TransferJob.objects.get()
    assert (len(job.filename), job.filename.endswith(".json")) == (100, True)
    assert job.file.name.endswith(".json") and job.file.storage.exists(job.file.name)
    assert [p.name for p in media_root.rglob("*") if p.is_file()] == [job.file.name.rsplit("/", 1)[-1]]


def test_an_imported_self_intersecting_polygon_is_made_valid(api, user):
    project, images = make(user, "Target")
    bowtie = {"parts": [{"outer": [[0, 0], [10, 10], [10, 0], [0, 6]], "holes": []}]}
    content = json.dumps(
        {"images": [{"name": "a.png", "shapes": [{"label": "cat", "kind": "polygon", "geometry": bowtie}]}]}
    ).encode()
    response = import_(api, project, "json", content)
    assert response.status_code == 200, response.json()
    shapes = Annotation.objects.filter(image=images["a.png"])
    assert [len(s.geometry["parts"]) for s in shapes] == [2]
