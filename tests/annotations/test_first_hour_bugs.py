"""Bugs a new user hit (issue 13) that the server owns; each test failed before its fix."""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from annotations.models import Annotation, Classification, ReplacedDocument
from projects.models import Image, Label, Role
from projects.services import LABEL_COLORS, membership_grant
from projects.uploads import images_upload
from tests.conftest import client_for
from tests.factories import UserFactory, image_bytes, make_project

pytestmark = pytest.mark.django_db


def zip_of(entries: dict[str, bytes]) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return SimpleUploadedFile("photos.zip", buffer.getvalue())


# --- 6: a refused upload creates no labels ---------------------------------------------------


def test_a_zip_whose_every_file_is_refused_leaves_no_folder_label_and_no_typed_label(api, user):
    project = make_project(owner=user)
    archive = zip_of({"gull/a.png": b"not really a png", "tern/b.jpg": b"\xff\xd8 broken"})
    response = api.post(
        f"/api/projects/{project.id}/images/", {"files": [archive], "labels": "survey"}, format="multipart"
    )
    assert response.status_code == 400  # nothing was stored
    assert [r["name"] for r in response.json()["rejected"]] == ["photos.zip/gull/a.png", "photos.zip/tern/b.jpg"]
    assert list(Label.objects.filter(project=project).values_list("name", flat=True)) == []


def test_only_the_folders_of_stored_images_become_labels(api, user):
    project = make_project(owner=user)
    archive = zip_of({"gull/a.png": image_bytes(color=(1, 2, 3)), "tern/b.png": b"broken"})
    response = api.post(f"/api/projects/{project.id}/images/", {"files": [archive]}, format="multipart")
    assert [(i["name"], i["labels"]) for i in response.json()["stored"]] == [("gull/a.png", ["gull"])]
    assert list(Label.objects.filter(project=project).values_list("name", flat=True)) == ["gull"]


# --- 7: imported labels take the next palette colours (and hotkeys) --------------------------


def test_labels_created_by_an_import_take_the_next_palette_colours_and_free_hotkeys(api, user):
    project = make_project(owner=user)
    Label.objects.create(project=project, name="gull", color=LABEL_COLORS[0], hotkey=1)
    images_upload(project=project, user=user, files=[SimpleUploadedFile("a.png", image_bytes())], labels=[])
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
        "categories": [{"id": 1, "name": "tern"}, {"id": 2, "name": "heron"}, {"id": 3, "name": "crow"}],
        "annotations": [{"id": i, "image_id": 1, "category_id": i, "bbox": [1, 1, 5, 5]} for i in (1, 2, 3)],
    }
    upload = SimpleUploadedFile("coco.json", json.dumps(coco).encode())
    response = api.post(f"/api/projects/{project.id}/import/", {"format": "coco", "file": upload}, format="multipart")
    assert response.status_code == 200, response.content
    rows = list(Label.objects.filter(project=project).order_by("id").values_list("name", "color", "hotkey"))
    assert rows == [
        ("gull", LABEL_COLORS[0], 1),
        ("tern", LABEL_COLORS[1], 2),
        ("heron", LABEL_COLORS[2], 3),
        ("crow", LABEL_COLORS[3], 4),
    ]


# --- 2: replace needs its own permission, asks first, and keeps what it overwrote ------------


@pytest.fixture
def shared(user, api):
    """An owner's project with one labeled image, shared with a Labeler and an Admin."""
    labeler, admin = UserFactory(), UserFactory()
    project = make_project(owner=user, Labeler=labeler, Admin=admin)
    image = images_upload(
        project=project, user=user, files=[SimpleUploadedFile("a.png", image_bytes())], labels=[]
    ).stored[0]
    gull = Label.objects.create(project=project, name="gull")
    box = {"label": gull.id, "kind": "box", "geometry": {"x": 1, "y": 2, "width": 10, "height": 10}}
    api.put(
        f"/api/images/{image.id}/annotations/",
        {"revision": 0, "shapes": [box, box], "classifications": [{"label": gull.id}]},
        format="json",
    )
    return {"project": project, "image": image, "labeler": labeler, "admin": admin, "gull": gull}


def _csv_import(client, project, mode, **extra):
    upload = SimpleUploadedFile("labels.csv", b"a.png,tern\n")
    data = {"format": "csv", "file": upload, "mode": mode, **extra}
    return client.post(f"/api/projects/{project.id}/import/", data, format="multipart")


def _state(project):
    return (
        list(Annotation.objects.filter(image__project=project).values_list("kind", "label__name")),
        list(Classification.objects.filter(image__project=project).values_list("label__name", flat=True)),
        list(Label.objects.filter(project=project).values_list("name", flat=True)),
        ReplacedDocument.objects.count(),
    )


def test_a_labeler_may_not_replace_by_import_or_bulk_save_and_nothing_changes(shared):
    project, labeler = shared["project"], client_for(shared["labeler"])
    Label.objects.create(project=project, name="tern")
    before = _state(project)
    response = _csv_import(labeler, project, "replace")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Your role in this project does not allow this: replace annotations in bulk (imports, scripts), other people's included."
    }
    bulk = {"mode": "replace", "images": [{"image": shared["image"].id, "revision": 1, "shapes": []}]}
    assert labeler.post(f"/api/projects/{project.id}/annotations/bulk/", bulk, format="json").status_code == 403
    preview = SimpleUploadedFile("labels.csv", b"a.png,tern\n")
    response = labeler.post(f"/api/projects/{project.id}/import/preview/", {"format": "csv", "file": preview})
    assert response.status_code == 403
    assert _state(project) == before
    assert _csv_import(labeler, project, "append").status_code == 200  # appending stays a Labeler's right


def test_a_stranger_gets_404_for_replace_and_its_preview(shared):
    stranger = client_for(UserFactory())
    assert _csv_import(stranger, shared["project"], "replace").status_code == 404
    preview = SimpleUploadedFile("labels.csv", b"a.png,tern\n")
    url = f"/api/projects/{shared['project'].id}/import/preview/"
    assert stranger.post(url, {"format": "csv", "file": preview}).status_code == 404


def test_the_preview_counts_what_a_replace_would_overwrite(shared):
    admin = client_for(shared["admin"])
    upload = SimpleUploadedFile("labels.csv", b"a.png,gull\nnot-here.png,gull\n")
    response = admin.post(f"/api/projects/{shared['project'].id}/import/preview/", {"format": "csv", "file": upload})
    assert response.status_code == 200
    assert response.json() == {"exact": True, "images": 1, "objects": 2, "classifications": 1}


def test_an_admin_replaces_and_the_replaced_annotations_are_restored_from_the_history(shared):
    project, image, admin = shared["project"], shared["image"], client_for(shared["admin"])
    Label.objects.create(project=project, name="tern")
    assert _csv_import(admin, project, "replace").status_code == 200
    assert _state(project)[:2] == ([], ["tern"])
    [entry] = admin.get(f"/api/images/{image.id}/history/").json()["history"]
    assert (entry["revision"], entry["reason"], entry["replaced_by"], entry["shapes"], entry["classifications"]) == (
        1,
        "import",
        shared["admin"].username,
        2,
        1,
    )
    labeler = client_for(shared["labeler"])
    restored = labeler.post(f"/api/images/{image.id}/history/{entry['id']}/restore/")
    assert restored.status_code == 200
    document = restored.json()
    assert [(s["kind"], s["geometry"]) for s in document["shapes"]] == [
        ("box", {"x": 1, "y": 2, "width": 10, "height": 10}),
    ] * 2
    assert [c["name"] for c in document["classifications"]] == ["gull"]
    assert document["revision"] == 3
    # What the import had put there is kept in turn.
    newest = admin.get(f"/api/images/{image.id}/history/").json()["history"][0]
    assert (newest["reason"], newest["revision"], newest["shapes"], newest["classifications"]) == ("restore", 2, 0, 1)


def test_a_viewer_may_read_the_history_but_not_restore_it(shared):
    viewer = UserFactory()
    membership_grant(project=shared["project"], email=viewer.email, role=Role.objects.get(name="Viewer"))
    client = client_for(viewer)
    admin = client_for(shared["admin"])
    bulk = {"mode": "replace", "images": [{"image": shared["image"].id, "revision": 1, "shapes": []}]}
    assert admin.post(f"/api/projects/{shared['project'].id}/annotations/bulk/", bulk, format="json").status_code == 200
    [entry] = client.get(f"/api/images/{shared['image'].id}/history/").json()["history"]
    assert entry["reason"] == "bulk save"
    before = _state(shared["project"])
    assert client.post(f"/api/images/{shared['image'].id}/history/{entry['id']}/restore/").status_code == 403
    assert _state(shared["project"]) == before


def test_the_purge_command_forgets_old_history_only(shared):
    admin = client_for(shared["admin"])
    bulk = {"mode": "replace", "images": [{"image": shared["image"].id, "revision": 1, "shapes": []}]}
    admin.post(f"/api/projects/{shared['project'].id}/annotations/bulk/", bulk, format="json")
    old = ReplacedDocument.objects.get()
    ReplacedDocument.objects.filter(pk=old.pk).update(replaced_at=timezone.now() - timedelta(days=40))
    admin.post(
        f"/api/projects/{shared['project'].id}/annotations/bulk/",
        {"mode": "append", "images": [{"image": shared["image"].id, "shapes": []}]},
        format="json",
    )
    out = io.StringIO()
    call_command("annotations_history_purge", "--older-than", "30", stdout=out)
    assert out.getvalue() == "Purged 1 replaced document.\n"
    assert ReplacedDocument.objects.count() == 0


def test_the_import_page_offers_replace_only_to_roles_that_may_and_refuses_it_unconfirmed(client, shared):
    project = shared["project"]
    client.force_login(shared["labeler"])
    page = client.get(f"/projects/{project.id}/transfer/").content.decode()
    assert 'value="replace"' not in page and "Imports add to the annotations already there." in page
    client.force_login(shared["admin"])
    page = client.get(f"/projects/{project.id}/transfer/").content.decode()
    assert 'value="replace"' in page and 'name="confirmed"' in page
    upload = SimpleUploadedFile("labels.csv", b"a.png,gull\n")
    response = client.post(
        f"/projects/{project.id}/transfer/start/",
        {"format": "csv", "file": upload, "mode": "replace", "import": "1"},
        follow=True,
    )
    assert "Replacing annotations must be confirmed: nothing was imported." in response.content.decode()
    assert Annotation.objects.filter(image__project=project).count() == 2


# --- 10: no links a role cannot use ----------------------------------------------------------


def test_a_labeler_sees_no_export_download_link(client, user, shared, django_capture_on_commit_callbacks):
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/projects/{shared['project'].id}/transfer/start/", {"format": "csv", "export": "1"})
    client.force_login(shared["labeler"])
    page = client.get(f"/projects/{shared['project'].id}/transfer/").content.decode()
    assert "/file/" not in page and 'id="export-form"' not in page
    client.force_login(user)
    assert "/file/" in client.get(f"/projects/{shared['project'].id}/transfer/").content.decode()


# --- 8: Predict selected posts, and 9: the API docs work offline -----------------------------


def test_predict_selected_is_a_post_without_the_csrf_token_in_any_url(client, user):
    project = make_project(owner=user)
    images_upload(project=project, user=user, files=[SimpleUploadedFile("a.png", image_bytes())], labels=[])
    client.force_login(user)
    page = client.get(f"/projects/{project.id}/").content.decode()
    button = page[page.index('id="predict-selected"') - 200 : page.index('id="predict-selected"')]
    assert 'formmethod="get"' not in button and f'formaction="/projects/{project.id}/predict/"' in button


def test_the_api_docs_load_swagger_ui_from_this_server(client):
    page = client.get("/api/docs/").content.decode()
    assert "cdn.jsdelivr.net" not in page and "@latest" not in page
    script = client.get("/api/docs/?script=").content.decode()  # the split view: no inline script in the page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page + script
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200


def test_image_names_from_a_zip_keep_the_path_inside_it(api, user):
    project = make_project(owner=user)
    archive = zip_of({"2024/may/gull.png": image_bytes()})
    api.post(f"/api/projects/{project.id}/images/", {"files": [archive]}, format="multipart")
    assert list(Image.objects.filter(project=project).values_list("name", flat=True)) == ["2024/may/gull.png"]
