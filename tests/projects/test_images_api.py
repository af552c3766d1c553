import hashlib
import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from annotations.models import Classification
from projects.models import Image, Label
from tests.conftest import client_for
from tests.factories import UserFactory, image_bytes, image_file, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(user):
    return make_project(owner=user)


def upload(api, project, files, **data):
    return api.post(f"/api/projects/{project.id}/images/", {"files": files, **data}, format="multipart")


def zip_of(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return SimpleUploadedFile("images.zip", buffer.getvalue())


def test_upload_many_files_with_classification_labels(api, project, media_root):
    red = image_bytes(color=(255, 0, 0))
    response = upload(
        api,
        project,
        [SimpleUploadedFile("red.png", red), image_file("blue.jpg", color=(0, 0, 255), width=80, height=60)],
        labels="gull, adult ,",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["rejected"] == []
    assert [(i["name"], i["width"], i["height"]) for i in body["stored"]] == [("red.png", 64, 48), ("blue.jpg", 80, 60)]
    assert body["stored"][0]["sha256"] == hashlib.sha256(red).hexdigest()
    assert body["stored"][0]["labels"] == ["gull", "adult"]
    assert body["stored"][0]["default_label"] == "gull"
    assert sorted(Label.objects.filter(project=project).values_list("name", flat=True)) == ["adult", "gull"]
    stored = Image.objects.get(name="red.png")
    assert stored.file.read() == red
    assert stored.uploaded_by.username == project.owner.username
    with PILImage.open(stored.thumbnail) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (64, 48))


def test_zip_folder_names_become_labels(api, project):
    archive = zip_of(
        {
            "dataset/gull/a.png": image_bytes(color=(1, 2, 3)),
            "dataset/tern/b.png": image_bytes(color=(4, 5, 6)),
            "c.png": image_bytes(color=(7, 8, 9)),
            "__MACOSX/dataset/gull/._a.png": b"junk",
            "dataset/notes.txt": b"not an image",
        }
    )
    response = upload(api, project, [archive], labels="survey")
    assert response.status_code == 201
    labels = {i["name"]: i["labels"] for i in response.json()["stored"]}
    assert labels == {
        "dataset/gull/a.png": ["survey", "gull"],
        "dataset/tern/b.png": ["survey", "tern"],
        "c.png": ["survey"],
    }
    assert response.json()["rejected"] == [
        {"name": "images.zip/dataset/notes.txt", "reason": "This is not an image file Sightline can read."}
    ]


def test_exif_orientation_is_applied(api, project):
    pixels = PILImage.new("RGB", (60, 20), (10, 200, 10))
    exif = pixels.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = io.BytesIO()
    pixels.save(out, "JPEG", exif=exif.tobytes())
    response = upload(api, project, [SimpleUploadedFile("phone.jpg", out.getvalue())])
    stored = response.json()["stored"][0]
    assert (stored["width"], stored["height"]) == (20, 60)
    assert stored["sha256"] == hashlib.sha256(out.getvalue()).hexdigest()
    with PILImage.open(Image.objects.get().file) as upright:
        assert upright.size == (20, 60)
        assert upright.getexif().get(0x0112, 1) == 1


def test_a_duplicate_is_refused_in_the_same_batch_and_later(api, project):
    data = image_bytes()
    first = upload(api, project, [SimpleUploadedFile("a.png", data), SimpleUploadedFile("b.png", data)])
    assert [i["name"] for i in first.json()["stored"]] == ["a.png"]
    assert first.json()["rejected"] == [
        {"name": "b.png", "reason": "The same image is already in this project (duplicate)."}
    ]
    again = upload(api, project, [SimpleUploadedFile("c.png", data)])
    assert again.status_code == 400
    assert again.json()["rejected"][0]["reason"] == "The same image is already in this project (duplicate)."
    assert Image.objects.count() == 1


def test_the_same_bytes_may_live_in_two_projects(api, project, user):
    other = make_project(owner=user, name="Other")
    data = image_bytes()
    for p in (project, other):
        assert upload(api, p, [SimpleUploadedFile("a.png", data)]).status_code == 201


def _truncated() -> bytes:
    data = image_bytes(width=300, height=300, fmt="JPEG")
    return data[: len(data) // 2]


def _bomb_png() -> bytes:
    # A 1-bit 20000x20000 PNG: a few kilobytes on disk, 400 million pixels decoded.
    out = io.BytesIO()
    PILImage.new("1", (20000, 20000)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.png", b"this is text, not pixels", "This is not an image file Sightline can read."),
        ("empty.png", b"", "The file is empty."),
        (
            "half.jpg",
            _truncated(),
            "The image is damaged or truncated (image file is truncated (6 bytes not processed)).",
        ),
        ("bomb.png", _bomb_png(), "The image has more than 120,000,000 pixels (a decompression bomb?)."),
    ],
)
def test_bad_files_are_refused_by_name_and_the_rest_are_stored(api, project, media_root, name, data, reason):
    response = upload(api, project, [SimpleUploadedFile(name, data), image_file("good.png")])
    assert response.status_code == 201
    assert [i["name"] for i in response.json()["stored"]] == ["good.png"]
    assert response.json()["rejected"] == [{"name": name, "reason": reason}]
    assert list(Image.objects.values_list("name", flat=True)) == ["good.png"]
    assert sorted(p.name for p in (media_root / "images").rglob("*") if p.is_file()) == [
        Image.objects.get().file.name.rsplit("/", 1)[-1]
    ]


def test_a_file_over_the_size_limit_is_refused(api, project, settings):
    settings.SIGHTLINE_MAX_UPLOAD_BYTES = 1000
    response = upload(api, project, [image_file("big.png", width=400, height=400, color=(1, 2, 3))])
    assert response.status_code == 400
    [rejected] = response.json()["rejected"]
    assert rejected["name"] == "big.png"
    assert rejected["reason"].endswith("bytes; the limit is 1,000.")
    assert Image.objects.count() == 0


def test_the_pixel_limit_is_configurable(api, project, settings):
    settings.SIGHTLINE_MAX_IMAGE_PIXELS = 64 * 48 - 1
    response = upload(api, project, [image_file("a.png", width=64, height=48)])
    assert response.json()["rejected"][0]["reason"] == (
        "The image is 64x48 = 3,072 pixels, more than the limit of 3,071 (a decompression bomb?)."
    )


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        (
            {"ok.png": image_bytes(), "../evil.png": image_bytes(color=(9, 9, 9))},
            "The archive holds a path leading outside it (../evil.png); refusing it.",
        ),
        ({"/etc/evil.png": image_bytes()}, "The archive holds an absolute path (/etc/evil.png); refusing it."),
        (
            {"a\\..\\..\\evil.png": image_bytes()},
            "The archive holds a path leading outside it (a\\..\\..\\evil.png); refusing it.",
        ),
    ],
)
def test_unsafe_zip_paths_refuse_the_whole_archive(api, project, entries, reason):
    response = upload(api, project, [zip_of(entries), image_file("good.png")])
    assert [i["name"] for i in response.json()["stored"]] == ["good.png"]
    assert response.json()["rejected"] == [{"name": "images.zip", "reason": reason}]
    assert Image.objects.count() == 1


def test_zip_limits(api, project, settings):
    settings.SIGHTLINE_ZIP_MAX_ENTRIES = 2
    many = zip_of({f"{i}.png": image_bytes(color=(i, i, i)) for i in range(3)})
    assert upload(api, project, [many]).json()["rejected"] == [
        {"name": "images.zip", "reason": "The archive has 3 entries; the limit is 2."}
    ]
    settings.SIGHTLINE_ZIP_MAX_ENTRIES = 100
    settings.SIGHTLINE_ZIP_MAX_UNPACKED_BYTES = 100
    big = zip_of({"a.png": image_bytes(width=100, height=100)})
    assert "the limit is 100." in upload(api, project, [big]).json()["rejected"][0]["reason"]
    settings.SIGHTLINE_ZIP_MAX_UNPACKED_BYTES = 10**9
    bomb = zip_of({"zeros.bmp": bytes(50 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED)
    reason = upload(api, project, [bomb]).json()["rejected"][0]["reason"]
    assert reason.startswith("zeros.bmp unpacks ")
    assert reason.endswith("times larger than it is packed (limit 100:1); this looks like a ZIP bomb.")
    corrupt = SimpleUploadedFile("broken.zip", b"PK\x03\x04 not really a zip")
    assert upload(api, project, [corrupt]).json()["rejected"] == [
        {"name": "broken.zip", "reason": "This is not a valid ZIP archive."}
    ]
    assert Image.objects.count() == 0


def test_upload_without_files_is_400(api, project):
    response = api.post(f"/api/projects/{project.id}/images/", {"labels": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json() == {"files": ["Send at least one file in the `files` field."]}
    assert Label.objects.count() == 0


def test_upload_with_an_unknown_field_is_400(api, project):
    response = upload(api, project, [image_file()], colour="red")
    assert response.status_code == 400
    assert response.json() == {"colour": ["Unknown field."]}
    assert Image.objects.count() == 0


def test_image_metadata_file_thumbnail_and_delete(api, project, media_root, django_capture_on_commit_callbacks):
    data = image_bytes(color=(5, 6, 7))
    stored = upload(api, project, [SimpleUploadedFile("x.png", data)], labels="gull").json()["stored"][0]
    meta = api.get(f"/api/images/{stored['id']}/").json()
    assert meta == stored
    file_response = api.get(f"/api/images/{stored['id']}/file/")
    assert b"".join(file_response.streaming_content) == data
    assert file_response["Content-Disposition"] == 'inline; filename="x.png"'
    thumb = api.get(f"/api/images/{stored['id']}/thumbnail/")
    assert thumb["Content-Type"] == "image/webp"
    files_before = [p for p in media_root.rglob("*") if p.is_file()]
    assert len(files_before) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/images/{stored['id']}/").status_code == 204
    assert Image.objects.count() == 0
    assert Classification.objects.count() == 0
    assert [p for p in media_root.rglob("*") if p.is_file()] == []


def test_image_list_pages(api, project):
    upload(api, project, [image_file(f"{i}.png", color=(i, 0, 0)) for i in range(5)])
    page = api.get(f"/api/projects/{project.id}/images/?page_size=2&page=2").json()
    assert page["count"] == 5
    assert [i["name"] for i in page["results"]] == ["2.png", "3.png"]


def test_images_of_a_hidden_project_are_404(api, project):
    stranger = UserFactory()
    image_id = upload(api, project, [image_file()]).json()["stored"][0]["id"]
    other = client_for(stranger)
    for url in [f"/api/images/{image_id}/", f"/api/images/{image_id}/file/", f"/api/images/{image_id}/thumbnail/"]:
        response = other.get(url)
        assert response.status_code == 404
        assert response.json() == {"detail": "No such image."}
    assert other.delete(f"/api/images/{image_id}/").status_code == 404
    assert upload(other, project, [image_file("x.png", color=(1, 1, 1))]).status_code == 404
    assert Image.objects.count() == 1


def test_a_bad_label_at_upload_is_400_and_creates_no_label_and_no_image(api, project):
    response = upload(api, project, [image_file()], labels="gull," + "x" * 101)
    assert response.status_code == 400
    assert response.json() == {"labels": ["Ensure this value has at most 100 characters (it has 101)."]}
    assert (Label.objects.count(), Image.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("name", "media_type"), [("x.html", "image/png"), ("x.svg", "image/png"), ("x.jpg", "image/png")]
)
def test_files_are_served_as_what_they_decoded_to_never_as_their_name_says(api, project, name, media_type):
    data = image_bytes() + b"<script>alert(1)</script>"
    image_id = upload(api, project, [SimpleUploadedFile(name, data)]).json()["stored"][0]["id"]
    response = api.get(f"/api/images/{image_id}/file/")
    assert response["Content-Type"] == media_type
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_zip_folder_that_cannot_be_a_label_refuses_its_images_only(api, project, media_root):
    long_folder = "f" * 101
    archive = zip_of({f"{long_folder}/a.png": image_bytes(color=(1, 1, 1)), "ok/b.png": image_bytes(color=(2, 2, 2))})
    response = upload(api, project, [image_file("first.png", color=(3, 3, 3)), archive])
    assert response.status_code == 201
    assert [i["name"] for i in response.json()["stored"]] == ["first.png", "ok/b.png"]
    assert response.json()["rejected"] == [
        {
            "name": f"images.zip/{long_folder}/a.png",
            "reason": f"Its folder name {long_folder[:40]!r} cannot be a label: "
            "Ensure this value has at most 100 characters (it has 101).",
        }
    ]
    assert sorted(Label.objects.values_list("name", flat=True)) == ["ok"]
    assert len([p for p in (media_root / "images").rglob("*") if p.is_file()]) == 2


def test_an_unexpected_failure_takes_back_its_batch_and_leaves_no_file_of_it(api, project, media_root, monkeypatch):
    from projects import uploads

    calls = []

    def failing_classifications_add(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise RuntimeError("the database went away")

    monkeypatch.setattr(uploads, "classifications_add", failing_classifications_add)
    with pytest.raises(RuntimeError, match="the database went away"):
        upload(api, project, [image_file("a.png", color=(1, 1, 1)), image_file("b.png", color=(2, 2, 2))])
    assert len(calls) == 2
    assert Image.objects.count() == 0
    assert [p for p in media_root.rglob("*") if p.is_file()] == []


def test_a_large_upload_commits_in_batches_and_a_failure_keeps_the_batches_before_it(
    api, project, media_root, monkeypatch
):
    from projects import uploads

    monkeypatch.setattr(uploads, "UPLOAD_BATCH", 2)
    real = uploads._store_upload

    def store(batch, upload_file, common):
        if upload_file.name == "e.png":
            raise RuntimeError("the disk filled up")
        real(batch, upload_file, common)

    monkeypatch.setattr(uploads, "_store_upload", store)
    files = [image_file(f"{n}.png", color=(10 * i, 1, 1)) for i, n in enumerate("abcdef")]
    with pytest.raises(RuntimeError, match="the disk filled up"):
        upload(api, project, files)
    # a-b and c-d committed in transactions of their own; the batch e-f is taken back whole.
    assert sorted(Image.objects.values_list("name", flat=True)) == ["a.png", "b.png", "c.png", "d.png"]
    assert len([p for p in media_root.rglob("*") if p.is_file()]) == 8  # a file and a thumbnail each


def test_a_zip_entry_over_the_size_limit_is_refused_by_name(api, project, settings):
    settings.SIGHTLINE_MAX_UPLOAD_BYTES = 2000
    big = image_bytes(width=300, height=300, color=(5, 5, 5), fmt="BMP")
    response = upload(api, project, [zip_of({"big.bmp": big, "small.png": image_bytes()})])
    assert [i["name"] for i in response.json()["stored"]] == ["small.png"]
    assert response.json()["rejected"] == [
        {"name": "images.zip/big.bmp", "reason": f"The file is {len(big):,} bytes; the limit is 2,000."}
    ]


def test_an_upload_without_a_multipart_body_is_400(api, project):
    response = api.post(f"/api/projects/{project.id}/images/")
    assert response.status_code == 400
    assert response.json() == {"files": ["Send at least one file in the `files` field."]}


def test_too_many_files_in_one_request_is_a_json_400(api, project, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    files = [image_file(f"{i}.png", color=(i, i, i)) for i in range(3)]
    response = upload(api, project, files)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The request is too large:")
    assert Image.objects.count() == 0


def test_repeated_label_fields_are_all_used(api, project):
    response = api.post(
        f"/api/projects/{project.id}/images/",
        {"files": [image_file()], "labels": ["gull", "adult"]},
        format="multipart",
    )
    assert response.json()["stored"][0]["labels"] == ["gull", "adult"]


def test_a_duplicate_is_refused_before_it_is_decoded(api, project, monkeypatch):
    from projects import uploads

    decoded = []
    real = uploads.decode_image
    monkeypatch.setattr(uploads, "decode_image", lambda data, **kw: decoded.append(len(data)) or real(data, **kw))
    same = image_bytes(width=300, height=200, color=(7, 8, 9))
    files = [SimpleUploadedFile(f"copy{i}.png", same) for i in range(20)]
    response = upload(api, project, files)
    assert [i["name"] for i in response.json()["stored"]] == ["copy0.png"]
    assert len(response.json()["rejected"]) == 19
    assert {r["reason"] for r in response.json()["rejected"]} == {uploads.DUPLICATE}
    assert decoded == [len(same)]  # nineteen copies cost a hash each, not a decode


def test_a_bomb_of_many_small_entries_is_refused_as_a_whole(api, project, monkeypatch):
    from projects import archives

    reads = []
    monkeypatch.setattr(archives, "_read", lambda archive, info: reads.append(info.filename) or b"")
    # Twenty entries of 1 MiB of zeros: each under the per-entry floor, 20 MiB from a few KB.
    bomb = zip_of({f"{i}.bmp": bytes(1024 * 1024) for i in range(20)}, compression=zipfile.ZIP_DEFLATED)
    rejected = upload(api, project, [bomb]).json()["rejected"]
    assert len(rejected) == 1 and rejected[0]["name"] == "images.zip"
    assert rejected[0]["reason"].startswith("The archive unpacks ")
    assert rejected[0]["reason"].endswith("times larger than it is packed (limit 100:1); this looks like a ZIP bomb.")
    assert reads == []  # refused from the directory, before any entry is unpacked
    assert Image.objects.count() == 0


def test_an_uploader_who_may_not_manage_labels_stores_images_without_new_labels_and_is_told(user):
    from django.contrib.auth.models import Permission

    from projects.models import Role
    from projects.services import membership_grant

    project = make_project(owner=user)
    existing = Label.objects.create(project=project, name="cat")
    uploader_role = Role.objects.create(name="Uploader")
    uploader_role.permissions.set(Permission.objects.filter(codename__in=["view_project", "upload_project"]))
    uploader = UserFactory()
    membership_grant(project=project, email=uploader.email, role=uploader_role)

    response = client_for(uploader).post(
        f"/api/projects/{project.id}/images/",
        {"files": [image_file("a.png")], "labels": "cat,dog,bird"},
        format="multipart",
    )
    assert response.status_code == 201
    body = response.json()
    assert [i["labels"] for i in body["stored"]] == [[existing.name]]
    assert body["labels_not_created"] == ["bird", "dog"]
    assert body["notice"] == (
        "The images were stored without the labels bird, dog: they do not exist in this project, and your role may "
        "not create labels. Ask someone who manages labels to add them."
    )
    assert sorted(Label.objects.filter(project=project).values_list("name", flat=True)) == ["cat"]


def test_a_zip_folder_that_repeats_a_typed_label_stores_the_image_with_it_once(api, user):
    project = make_project(owner=user)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("cat/a.png", image_bytes())
    upload = SimpleUploadedFile("pets.zip", archive.getvalue())
    response = api.post(f"/api/projects/{project.id}/images/", {"files": [upload], "labels": "cat"}, format="multipart")
    assert response.status_code == 201
    assert [i["labels"] for i in response.json()["stored"]] == [["cat"]]
    assert (response.json()["labels_not_created"], response.json()["notice"]) == ([], "")
