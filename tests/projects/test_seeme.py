"""The real SeeMe.ai SDK (seeme==0.13.7) against a live Sightline at /api/v1/: what a script does there is what
the web app shows, and the reverse."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from annotations.models import Annotation, Classification
from jobs.models import Job
from projects.models import Image, Label, PendingItem, Project, SeemeDataset, Split
from tests.factories import builtin_roles_seed
from tests.training.conftest import colour_png
from training.bundles import BUNDLE_KIND
from training.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def roles(transactional_db):
    builtin_roles_seed()


def _client(live_server, username: str):
    from seeme import Client

    client = Client(backend=f"{live_server.url}/api/v1")
    registered = client.register(username, f"{username}@example.com", PASSWORD, "Sam", "Smith")
    assert (registered["username"], registered["firstname"], "message" in registered) == (username, "Sam", False)
    client.login(username, PASSWORD)
    return client


def test_register_login_applications_and_logout(live_server):
    from rest_framework.authtoken.models import Token
    from seeme import Client

    client = Client(backend=f"{live_server.url}/api/v1/")
    client.register("sam", "sam@example.com", PASSWORD, "Sam", "Smith")
    with pytest.raises(ValueError, match="username: A user with that username already exists."):
        client.register("sam", "other@example.com", PASSWORD, "Sam", "Smith")
    with pytest.raises(requests.HTTPError) as refused:
        client.login("sam", "wrong")
    assert refused.value.response.status_code == 401
    login = client.login("sam", PASSWORD)
    assert login["apikey"] == Token.objects.get(user__username="sam").key  # the same key the REST API takes
    assert client.headers == {"Authorization": f"sam:{login['apikey']}"}
    assert sorted(app["application"] for app in client.applications) == ["image_classification", "object_detection"]
    application = client.get_application_id("pytorch", "sightline", torch.__version__, "0.1.0", "object_detection")
    assert application == "object_detection"
    assert client.get_datasets() == []
    client.logout()  # the SDK then sends "Authorization: :"
    with pytest.raises(requests.HTTPError) as refused:
        client.get_datasets()
    assert refused.value.response.status_code == 401
    # Another user's name with this key is no key at all.
    forged = requests.get(f"{live_server.url}/api/v1/datasets", headers={"Authorization": f"admin:{login['apikey']}"})
    assert (forged.status_code, forged.json()) == (401, {"message": "Log in: send Authorization: <username>:<apikey>."})


def test_a_classification_dataset_made_by_the_sdk_is_a_project_of_the_web_app(live_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the SDK saves a logo in the working folder
    client = _client(live_server, "sam")
    dataset = client.create_dataset(
        {"name": "Gulls", "description": "harbour birds", "multi_label": False, "default_splits": True}
    )
    [version] = dataset["versions"]
    d, v = dataset["id"], version["id"]
    assert isinstance(d, str) and isinstance(v, str)
    splits = {split["name"]: split for split in version["splits"]}
    assert sorted(splits) == ["test", "train", "valid"]
    gull = client.create_dataset_label(d, v, {"name": "gull", "color": "#ff0000"})
    tern = client.create_dataset_label(d, v, {"name": "tern", "color": "#0000ff"})
    assert (gull["index"], tern["index"], gull["color"]) == (0, 1, "#ff0000")

    # 20 real images: half labelled inline when the item is made, half by PUTting the whole item after.
    files = {}
    for n in range(20):
        colour = (220, 40, 40) if n % 2 == 0 else (40, 40, 220)
        name = f"bird{n:02d}.png"
        (tmp_path / name).write_bytes(colour_png(colour, n))
        files[name] = (tmp_path / name).read_bytes()
        split = splits["valid"] if n % 5 == 0 else splits["train"]
        label = gull if n % 2 == 0 else tern
        inline = [{"label_id": label["id"], "coordinates": ""}] if n < 10 else []
        item = client.create_dataset_item(
            d, v, {"name": f"bird{n:02d}", "extension": ".png", "splits": [split], "annotations": inline}
        )
        assert (item["has_image"], item["annotations"][0]["label_id"] if inline else None) == (
            False,
            label["id"] if inline else None,
        )
        stored = client.upload_dataset_item_image(d, v, item["id"], str(tmp_path), name)
        assert (stored["id"], stored["has_image"], stored["extension"]) == (item["id"], True, "png")
        if n >= 10:
            fetched = client.get_dataset_item(d, v, item["id"])
            fetched["annotations"].append({"label_id": label["id"], "coordinates": ""})
            updated = client.update_dataset_item(d, v, fetched)
            assert [a["label_id"] for a in updated["annotations"]] == [label["id"]]

    # The web app sees one project with the images, labels and validation set the script made.
    project = Project.objects.get(pk=int(v))
    assert (project.name, project.seeme_dataset.name, project.owner.username) == ("Gulls (v1)", "Gulls", "sam")
    assert Image.objects.filter(project=project).count() == 20 and not PendingItem.objects.exists()
    assert sorted(Image.objects.filter(project=project, is_validation=True).values_list("name", flat=True)) == [
        "bird00.png",
        "bird05.png",
        "bird10.png",
        "bird15.png",
    ]
    assert Classification.objects.filter(image__project=project, label__name="gull").count() == 10
    assert set(Split.objects.get(project=project, name="train").images.values_list("name", flat=True)) == {
        f"bird{n:02d}.png" for n in range(20) if n % 5
    }

    # Paging (pageCount from 0) and every filter.
    page = client.get_dataset_items(d, v, params={"pageSize": 6, "pageCount": 1})
    assert [item["name"] for item in page] == [f"bird{n:02d}" for n in range(6, 12)]
    last = client.get_dataset_items(d, v, params={"pageSize": 6, "pageCount": 3})
    assert [item["name"] for item in last] == ["bird18", "bird19"]
    by_label = client.get_dataset_items(d, v, params={"pageSize": 50, "labelId": tern["id"]})
    assert [item["name"] for item in by_label] == [f"bird{n:02d}" for n in range(1, 20, 2)]
    by_split = client.get_dataset_items(d, v, params={"pageSize": 50, "splitId": splits["valid"]["id"]})
    assert [item["name"] for item in by_split] == ["bird00", "bird05", "bird10", "bird15"]
    assert client.get_dataset_items(d, v, params={"pageSize": 50, "onlyUnlabelled": True}) == []
    # An image the web app uploads is an item too, unlabelled.
    web = _web_image(project)
    unlabelled = client.get_dataset_items(d, v, params={"pageSize": 50, "onlyUnlabelled": True})
    assert [(item["id"], item["name"], item["annotations"]) for item in unlabelled] == [(str(web.pk), "web", [])]

    # Download, byte for byte, and the thumbnail.
    first = page[0]
    target = tmp_path / "back.png"
    client.download_dataset_item_image(d, v, first["id"], str(target))
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(files["bird06.png"]).hexdigest()
    client.download_dataset_item_image(d, v, first["id"], str(tmp_path / "thumb.webp"), thumbnail=True)
    assert (tmp_path / "thumb.webp").read_bytes()[8:12] == b"WEBP"

    # A logo, read back byte for byte; a file that is no image is refused.
    (tmp_path / "logo.jpg").write_bytes(files["bird07.png"])  # the SDK names the type by the suffix only
    with pytest.raises(requests.HTTPError) as refused:
        (tmp_path / "fake.png").write_bytes(b"not an image")
        client.upload_dataset_logo(d, folder=str(tmp_path), filename="fake.png")
    assert refused.value.response.status_code == 400
    assert client.get_dataset(d)["has_logo"] is False
    with_logo = client.upload_dataset_logo(d, folder=str(tmp_path), filename="logo.jpg")
    assert (with_logo["has_logo"], with_logo["logo"]) == (True, f"dataset-{d}.png")  # named by what it is
    client.get_dataset_logo(with_logo)
    assert Path(with_logo["logo"]).read_bytes() == files["bird07.png"]

    # Splits and labels edited; an item deleted through its split.
    renamed = client.update_dataset_split(d, v, {**splits["test"], "name": "holdout"})
    assert renamed["name"] == "holdout"
    client.delete_dataset_item(d, v, splits["train"]["id"], page[1])
    assert not Image.objects.filter(pk=int(page[1]["id"])).exists()
    recoloured = client.update_dataset_label(d, v, {**gull, "color": "#00ff00"})
    assert Label.objects.get(pk=int(gull["id"])).color == "#00ff00" and recoloured["color"] == "#00ff00"

    # Deleting everything: a label (its image labels go with it), a second version, then the dataset with its
    # versions, their images and files, and its logo.
    from django.core.files.storage import default_storage

    assert client.delete_dataset_label(d, v, tern)["id"] == tern["id"]
    assert not Label.objects.filter(pk=int(tern["id"])).exists()
    assert not Classification.objects.filter(image__project=project, label_id=int(tern["id"])).exists()
    second = client.create_dataset_version(d, {"name": "v2"})
    assert client.delete_dataset_version(d, second)["id"] == second["id"]
    assert not Project.objects.filter(pk=int(second["id"])).exists()
    stored = [
        name for image in Image.objects.filter(project=project) for name in (image.file.name, image.thumbnail.name)
    ]
    stored.append(SeemeDataset.objects.get(pk=int(d)).logo.name)
    assert all(default_storage.exists(name) for name in stored)
    assert client.delete_dataset(d)["id"] == d
    assert client.get_datasets() == [] and not Project.objects.filter(pk=int(v)).exists()
    assert not any(default_storage.exists(name) for name in stored)


def test_boxes_round_trip_between_the_sdk_and_the_labeler(live_server, tmp_path):
    """A box the SDK writes is a box annotation in the labeler's document; one drawn there reads back as SeeMe's
    "cx cy w h"; shapes SeeMe has no words for are kept through its PUT."""
    client = _client(live_server, "sam")
    dataset = client.create_dataset({"name": "Harbour"})
    d, v = dataset["id"], dataset["versions"][0]["id"]
    boat = client.create_dataset_label(d, v, {"name": "boat", "color": "#123456"})
    (tmp_path / "a.png").write_bytes(colour_png((90, 90, 90), 3, size=64))
    item = client.create_dataset_item(
        d,
        v,
        {"name": "a", "extension": "png", "annotations": [{"label_id": boat["id"], "coordinates": "0.5 0.5 0.25 0.5"}]},
    )
    item = client.upload_dataset_item_image(d, v, item["id"], str(tmp_path), "a.png")
    [box] = Annotation.objects.filter(image_id=int(item["id"]))
    assert (box.kind, box.label_id, box.geometry) == (
        "box",
        int(boat["id"]),
        {"x": 24.0, "y": 16.0, "width": 16.0, "height": 32.0},
    )
    # A polygon drawn in the web app stays through the SDK's PUT, which moves the box.
    image = Image.objects.get(pk=int(item["id"]))
    polygon = Annotation.objects.create(
        image=image,
        label_id=int(boat["id"]),
        kind="polygon",
        geometry={"parts": [{"outer": [[1, 1], [10, 1], [10, 10]], "holes": []}]},
    )
    fetched = client.get_dataset_item(d, v, item["id"])
    assert [a["coordinates"] for a in fetched["annotations"]] == ["0.500000 0.500000 0.250000 0.500000"]
    fetched["annotations"][0]["coordinates"] = "0.25 0.25 0.5 0.5"
    client.update_dataset_item(d, v, fetched)
    box.refresh_from_db()
    assert box.geometry == {"x": 0.0, "y": 0.0, "width": 32.0, "height": 32.0}  # the same row, moved
    assert Annotation.objects.filter(pk=polygon.pk).exists()
    # Bad input: a box of three numbers, and a label of another dataset, change nothing.
    for bad, message in (
        ({"label_id": boat["id"], "coordinates": "0.1 0.2 0.3"}, 'coordinates are "cx cy w h"'),
        ({"label_id": "999999", "coordinates": ""}, "is no label of this dataset version"),
    ):
        response = requests.put(
            f"{live_server.url}/api/v1/datasets/{d}/versions/{v}/items/{item['id']}",
            data=json.dumps({**fetched, "annotations": [bad]}),
            headers=client.headers,
        )
        assert response.status_code == 400 and message in response.json()["message"]
    box.refresh_from_db()
    assert box.geometry == {"x": 0.0, "y": 0.0, "width": 32.0, "height": 32.0}


def test_a_second_user_sees_none_of_the_first_users_datasets(live_server, tmp_path):
    sam, eve = _client(live_server, "sam"), _client(live_server, "eve")
    dataset = sam.create_dataset({"name": "Private", "default_splits": True})
    d, v = dataset["id"], dataset["versions"][0]["id"]
    label = sam.create_dataset_label(d, v, {"name": "x"})
    split = dataset["versions"][0]["splits"][0]
    item = sam.create_dataset_item(d, v, {"name": "i", "extension": "png"})
    assert eve.get_datasets() == []
    calls = [
        lambda: eve.get_dataset(d),
        lambda: eve.update_dataset({**dataset, "name": "Mine"}),
        lambda: eve.delete_dataset(d),
        lambda: eve.get_dataset_versions(d),
        lambda: eve.create_dataset_version(d, {"name": "v2"}),
        lambda: eve.get_dataset_labels(d, v),
        lambda: eve.update_dataset_label(d, v, {**label, "name": "y"}),
        lambda: eve.get_dataset_items(d, v),
        lambda: eve.get_dataset_item(d, v, item["id"]),
        lambda: eve.update_dataset_item(d, v, item),
        lambda: eve.delete_dataset_item(d, v, split["id"], item),
        lambda: eve.get_dataset_split(d, v, split["id"]),
    ]
    for call in calls:
        with pytest.raises(requests.HTTPError) as refused:
            call()
        assert refused.value.response.status_code == 404
    # A version of another dataset named under this one's id: 404 as well.
    other = eve.create_dataset({"name": "Eve's"})
    with pytest.raises(requests.HTTPError) as refused:
        eve.get_dataset_version(other["id"], v)
    assert refused.value.response.status_code == 404
    assert SeemeDataset.objects.get(pk=int(d)).name == "Private" and Label.objects.get(pk=int(label["id"])).name == "x"
    assert PendingItem.objects.filter(pk=int(item["id"])).exists()


def test_bad_input_is_a_clear_4xx_and_changes_nothing(live_server, tmp_path):
    client = _client(live_server, "sam")
    dataset = client.create_dataset({"name": "Checks", "default_splits": True})
    d, v = dataset["id"], dataset["versions"][0]["id"]
    base = f"{live_server.url}/api/v1/datasets/{d}/versions/{v}"
    splits = {split["name"]: split for split in dataset["versions"][0]["splits"]}
    item = client.create_dataset_item(d, v, {"name": "x", "extension": "png"})
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    cases = [
        ("post", f"{live_server.url}/api/v1/datasets", "not json", 400, "The request body is not JSON."),
        ("post", f"{live_server.url}/api/v1/datasets", "[1, 2]", 400, "The request body must be a JSON object."),
        ("post", f"{live_server.url}/api/v1/datasets", "{}", 400, "name: Give the dataset a name."),
        ("get", f"{live_server.url}/api/v1/datasets/{'9' * 30}", None, 404, "Not found."),
        ("get", f"{live_server.url}/api/v1/datasets/١٢", None, 404, "Not found."),
        ("get", f"{base}/items?pageSize=many", None, 400, "pageSize and pageCount are numbers."),
        ("post", f"{base}/labels", json.dumps({"name": ""}), 400, "name:"),
        ("post", f"{base}/splits", json.dumps({"name": "train"}), 400, "name: A split named 'train' exists already."),
        ("post", f"{base}/splits", json.dumps({"name": "_no_split"}), 400, "name: _no_split is the export's folder"),
        (
            "put",
            f"{base}/splits/{splits['test']['id']}",
            json.dumps({"name": ".._no_split"}),
            400,
            "name: _no_split is",
        ),
        ("post", f"{base}/items", json.dumps({"splits": [{"id": "x"}]}), 400, "splits: 'x' is no split id."),
        ("post", f"{base}/items", json.dumps({"annotations": "all"}), 400, "annotations: A list of annotations."),
        ("patch", f"{live_server.url}/api/v1/datasets", "{}", 405, "PATCH is not allowed here."),
    ]
    before = (SeemeDataset.objects.count(), Label.objects.count(), Split.objects.count(), PendingItem.objects.count())
    for method, url, body, status, message in cases:
        response = getattr(requests, method)(url, data=body, headers=client.headers)
        assert response.status_code == status, (url, response.content[:200])
        assert message in response.json()["message"], (url, response.json())
    # A corrupt image is refused by name, and the item still waits for a real one.
    with pytest.raises(requests.HTTPError) as refused:
        client.upload_dataset_item_image(d, v, item["id"], str(tmp_path), "bad.png")
    assert refused.value.response.status_code == 400
    assert refused.value.response.json()["message"].startswith("file: ")
    after = (SeemeDataset.objects.count(), Label.objects.count(), Split.objects.count(), PendingItem.objects.count())
    assert after == before and not Image.objects.exists()


def _web_image(project: Project) -> Image:
    """An image uploaded in the web app, as web.png: in no split, with no label."""
    from projects.uploads import images_upload

    files = [SimpleUploadedFile("web.png", colour_png((0, 200, 0), 99))]
    [web] = images_upload(project=project, user=project.owner, files=files, labels=[]).stored
    return web


# Where the classification export puts _made's images.
MADE_FOLDERS = [
    "train/gull/b0.png",
    "train/gull/b2.png",
    "train/tern/b1.png",
    "train/tern/b3.png",
    "valid/gull/b4.png",
    "valid/tern/b5.png",
]


def _made(client, tmp_path, name: str, boxes: bool) -> tuple[str, str, dict]:
    """A dataset of 6 images in train (4) and valid (2): labelled gull or tern, by image label or by a box."""
    dataset = client.create_dataset({"name": name, "default_splits": True})
    d, v = dataset["id"], dataset["versions"][0]["id"]
    splits = {split["name"]: split for split in dataset["versions"][0]["splits"]}
    labels = [
        client.create_dataset_label(d, v, {"name": n, "color": c})
        for n, c in (("gull", "#ff0000"), ("tern", "#0000ff"))
    ]
    for n in range(6):
        label = labels[n % 2]
        coordinates = f"0.{n + 2} 0.5 0.2 0.25" if boxes else ""
        item = client.create_dataset_item(
            d,
            v,
            {
                "name": f"b{n}",
                "extension": "png",
                "splits": [splits["valid" if n >= 4 else "train"]],
                "annotations": [{"label_id": label["id"], "coordinates": coordinates}],
            },
        )
        (tmp_path / f"b{n}.png").write_bytes(colour_png((30 * n, 90, 90), 40 + n, size=64))
        client.upload_dataset_item_image(d, v, item["id"], str(tmp_path), f"b{n}.png")
    return d, v, splits


def test_a_classification_version_exports_as_folders_and_imports_back(live_server, tmp_path):
    client = _client(live_server, "sam")
    d, v, splits = _made(client, tmp_path, "Folders", boxes=False)
    out = tmp_path / "out"
    client.download_dataset(d, v, extract_to_dir=str(out))
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert files == MADE_FOLDERS
    assert (out / "train/gull/b0.png").read_bytes() == (tmp_path / "b0.png").read_bytes()
    only = tmp_path / "only"
    client.download_dataset(d, v, split_id=splits["valid"]["id"], extract_to_dir=str(only))
    assert sorted(str(p.relative_to(only)) for p in only.rglob("*.png")) == ["valid/gull/b4.png", "valid/tern/b5.png"]
    # The export, imported into a new dataset: the same images, labels and splits, matched by name.
    import shutil

    shutil.make_archive(str(tmp_path / "again"), "zip", out)
    copy = client.create_dataset({"name": "Copy"})
    cd, cv = copy["id"], copy["versions"][0]["id"]
    answer = client.upload_dataset_version(cd, cv, folder=str(tmp_path), filename="again.zip")
    assert answer["imported"] == {"images": 6, "known": 0, "splits": ["train", "valid"]}
    project = Project.objects.get(pk=int(cv))
    assert sorted(Label.objects.filter(project=project).values_list("name", flat=True)) == ["gull", "tern"]
    assert sorted(Image.objects.filter(project=project, is_validation=True).values_list("name", flat=True)) == [
        "b4.png",
        "b5.png",
    ]
    assert sorted(Classification.objects.filter(image__project=project).values_list("image__name", "label__name")) == [
        ("b0.png", "gull"),
        ("b1.png", "tern"),
        ("b2.png", "gull"),
        ("b3.png", "tern"),
        ("b4.png", "gull"),
        ("b5.png", "tern"),
    ]
    # Imported again, it changes nothing: each file is an image the version has.
    before = sorted(Classification.objects.filter(image__project=project).values_list("image_id", "label_id"))
    answer = client.upload_dataset_version(cd, cv, folder=str(tmp_path), filename="again.zip")
    assert answer["imported"] == {"images": 0, "known": 6, "splits": ["train", "valid"]}
    assert Image.objects.filter(project=project).count() == 6
    assert sorted(Classification.objects.filter(image__project=project).values_list("image_id", "label_id")) == before
    # One image in two folders is one image, with both folders' splits and labels.
    with zipfile.ZipFile(tmp_path / "twice.zip", "w") as twice:
        twice.writestr("train/gull/new.png", colour_png((5, 6, 7), 70))
        twice.writestr("test/tern/same.png", colour_png((5, 6, 7), 70))
    answer = client.upload_dataset_version(cd, cv, folder=str(tmp_path), filename="twice.zip")
    assert answer["imported"] == {"images": 1, "known": 1, "splits": ["test", "train"]}
    new = Image.objects.get(project=project, name="new.png")
    assert sorted(new.splits.values_list("name", flat=True)) == ["test", "train"]
    assert sorted(new.classifications.values_list("label__name", flat=True)) == ["gull", "tern"]
    # A photo that EXIF turns is stored upright, so its export's bytes are not the ones uploaded: it is still known.
    turned = PILImage.new("RGB", (40, 20), (200, 30, 30))
    exif = turned.getexif()
    exif[0x0112] = 6  # turned 90 degrees
    buffer = io.BytesIO()
    turned.save(buffer, "PNG", exif=exif.tobytes())
    with zipfile.ZipFile(tmp_path / "turned.zip", "w") as archive:
        archive.writestr("train/tern/turned.png", buffer.getvalue())
    answer = client.upload_dataset_version(cd, cv, folder=str(tmp_path), filename="turned.zip")
    assert answer["imported"] == {"images": 1, "known": 0, "splits": ["train"]}
    assert Image.objects.values_list("width", "height").get(project=project, name="turned.png") == (20, 40)
    client.download_dataset(cd, cv, extract_to_dir=str(tmp_path / "whole"))
    assert (tmp_path / "whole/train/tern/turned.png").read_bytes() != buffer.getvalue()
    shutil.make_archive(str(tmp_path / "whole"), "zip", tmp_path / "whole")
    answer = client.upload_dataset_version(cd, cv, folder=str(tmp_path), filename="whole.zip")
    assert answer["imported"] == {"images": 0, "known": 8, "splits": ["train", "valid"]}
    assert Image.objects.filter(project=project).count() == 8
    # A ZIP with a path out of its folder is refused whole.
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as evil:
        evil.writestr("train/gull/ok.png", colour_png((1, 2, 3), 7))
        evil.writestr("../escape.png", colour_png((1, 2, 4), 8))
    with pytest.raises(requests.HTTPError) as refused:
        client.upload_dataset_version(cd, cv, folder=str(tmp_path), filename="evil.zip")
    assert refused.value.response.status_code == 400
    assert Image.objects.filter(project=project).count() == 8


def test_a_detection_version_exports_as_yolo_that_the_sdk_imports_back(live_server, tmp_path):
    client = _client(live_server, "sam")
    d, v, _ = _made(client, tmp_path, "Boxes", boxes=True)
    out = tmp_path / "yolo"
    client.download_dataset(d, v, extract_to_dir=str(out))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", f"{v}.names", "train.txt", "valid.txt", "test.txt"]
        + [f"b{n}.{e}" for n in range(6) for e in ("png", "txt")]
    )
    assert (out / "train.txt").read_text() == "b0.png\nb1.png\nb2.png\nb3.png\n"
    assert (out / f"{v}.names").read_text() == "gull\ntern\n"
    assert json.loads((out / "config.json").read_text()) == {"colors": {"gull": "#ff0000", "tern": "#0000ff"}}
    assert (out / "b3.txt").read_text() == "1 0.500000 0.500000 0.200000 0.250000\n"
    # The SDK's own YOLO import reads it back into a new dataset, box for box.
    imported = client.import_yolo_dataset(
        dataset_name="Boxes again", split_names=["train", "valid"], folder=str(out), names_filename=f"{v}.names"
    )
    iv = imported["versions"][0]["id"]
    again = client.get_dataset_items(imported["id"], iv, params={"pageSize": 50})
    original = client.get_dataset_items(d, v, params={"pageSize": 50})

    def boxes(items):
        labels = dict(Label.objects.values_list("id", "name"))
        return sorted(
            (item["name"], labels[int(a["label_id"])], a["coordinates"]) for item in items for a in item["annotations"]
        )

    assert boxes(again) == boxes(original) and len(boxes(again)) == 6


def test_what_a_review_found_stays_fixed(live_server, tmp_path):
    """Each a defect a review of the first version found."""
    import io
    import zipfile

    from projects.models import Membership, Role
    from tests.factories import UserFactory

    client = _client(live_server, "sam")
    d, v, splits = _made(client, tmp_path, "Checked", boxes=True)
    base = f"{live_server.url}/api/v1/datasets/{d}/versions/{v}"
    project = Project.objects.get(pk=int(v))
    items = {item["name"]: item for item in client.get_dataset_items(d, v, params={"pageSize": 50})}

    # A PUT of the item as it was read keeps every box's row whole: attributes, occlusion, its prediction source.
    box = Annotation.objects.get(image_id=int(items["b0"]["id"]))
    Annotation.objects.filter(pk=box.pk).update(
        occluded=True, attributes={"note": "x"}, source="prediction", score=0.75
    )
    before = Annotation.objects.filter(pk=box.pk).values().get()
    fetched = client.get_dataset_item(d, v, items["b0"]["id"])
    fetched["splits"] = [splits["train"], splits["test"]]
    client.update_dataset_item(d, v, fetched)
    after = Annotation.objects.filter(pk=box.pk).values().get()
    assert {k: after[k] for k in ("geometry", "occluded", "attributes", "source", "score")} == {
        k: before[k] for k in ("geometry", "occluded", "attributes", "source", "score")
    }
    # null annotations or splits change nothing.
    client.update_dataset_item(d, v, {**fetched, "annotations": None, "splits": None})
    assert Annotation.objects.filter(pk=box.pk).exists()
    assert set(Split.objects.get(pk=int(splits["test"]["id"])).images.values_list("pk", flat=True)) == {box.image_id}

    # A pending item whose split was deleted: the version still lists, and the item has no split.
    pending = client.create_dataset_item(d, v, {"name": "later", "extension": "png", "splits": [splits["test"]]})
    client.delete_dataset_split(d, v, splits["test"])
    listed = {item["name"]: item for item in client.get_dataset_items(d, v, params={"pageSize": 50})}
    assert listed["later"]["splits"] == [] and listed["later"]["id"] == pending["id"]

    # The valid split keeps its name, and no other split takes it.
    response = requests.put(
        f"{base}/splits/{splits['train']['id']}", json.dumps({"name": "valid"}), headers=client.headers
    )
    assert response.status_code == 400 and "keeps its name" in response.json()["message"]

    # An item is deleted through a split it is in, not any split.
    response = requests.delete(
        f"{base}/splits/{splits['valid']['id']}/items/{items['b0']['id']}", headers=client.headers
    )
    assert response.status_code == 404 and Image.objects.filter(pk=int(items["b0"]["id"])).exists()

    # The export takes an image once (valid first), with flat names unique by stem and none a split list's.
    Image.objects.filter(pk=int(items["b1"]["id"])).update(name="train.png", is_validation=True)
    Image.objects.filter(pk=int(items["b2"]["id"])).update(name="b3.jpg")
    Image.objects.filter(pk=int(items["b5"]["id"])).update(name="../birds/b5.png")
    out = tmp_path / "export"
    client.download_dataset(d, v, extract_to_dir=str(out))
    renamed_b1, renamed_b2 = f"{items['b1']['id']}-train.png", f"{items['b2']['id']}-b3.jpg"
    assert (out / "valid.txt").read_text().splitlines() == [renamed_b1, "b4.png", "_birds_b5.png"]
    assert (out / "train.txt").read_text().splitlines() == ["b0.png", renamed_b2, f"{items['b3']['id']}-b3.png"]
    assert (out / f"{items['b3']['id']}-b3.txt").exists() and (out / f"{Path(renamed_b2).stem}.txt").exists()

    # A ZIP whose member is damaged is a 400, and nothing stays.
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("train/gull/z.png", colour_png((1, 1, 1), 77))
    damaged = bytearray(good.getvalue())
    at = damaged.index(b"IHDR")
    damaged[at + 20] ^= 0xFF  # the member's bytes no longer match its CRC
    (tmp_path / "damaged.zip").write_bytes(bytes(damaged))
    count = Image.objects.filter(project=project).count()
    with pytest.raises(requests.HTTPError) as refused:
        client.upload_dataset_version(d, v, folder=str(tmp_path), filename="damaged.zip")
    assert refused.value.response.status_code == 400
    assert Image.objects.filter(project=project).count() == count

    # Boxes on a new item need the right to annotate; uploading alone does not give it.
    uploader_role = Role.objects.create(name="Uploader", project=project)
    uploader_role.permissions.set(Permission.objects.filter(codename__in=["view_project", "upload_project"]))
    uma = UserFactory(username="uma")
    from projects.services import membership_set

    membership_set(project=project, user=uma, role=uploader_role)
    from seeme import Client

    as_uma = Client(backend=f"{live_server.url}/api/v1/")
    as_uma.login("uma", PASSWORD)
    label = client.get_dataset_labels(d, v)[0]
    with pytest.raises(requests.HTTPError) as refused:
        as_uma.create_dataset_item(d, v, {"name": "u", "annotations": [{"label_id": label["id"], "coordinates": ""}]})
    assert refused.value.response.status_code == 403
    assert as_uma.create_dataset_item(d, v, {"name": "u", "extension": "png"})["name"] == "u"
    assert Membership.objects.filter(user=uma).count() == 1


def test_what_a_newcomer_found_stays_fixed(live_server, tmp_path):
    """Each a defect found by running the SeeMe docs' own examples against a fresh clone."""
    client = _client(live_server, "sam")
    d, v, splits = _made(client, tmp_path, "Shore", boxes=False)
    project = Project.objects.get(pk=int(v))
    # An image uploaded in the web app is in no split: the export keeps it, in _no_split/, and its import too.
    web = _web_image(project)
    out = tmp_path / "out"
    client.download_dataset(d, v, extract_to_dir=str(out))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["_no_split/web.png", *MADE_FOLDERS]
    again = client.create_dataset({"name": "Shore again", "default_splits": False})
    av = again["versions"][0]["id"]
    archive = tmp_path / "up" / "dataset.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(out.rglob("*.png")):
            zipped.write(path, str(path.relative_to(out)))
    client.upload_dataset_version(again["id"], av, folder=str(archive.parent), filename="dataset.zip")
    imported = Image.objects.get(project_id=int(av), name="web.png")
    assert (imported.is_validation, list(imported.splits.all())) == (False, [])
    assert sorted(Split.objects.filter(project_id=int(av)).values_list("name", flat=True)) == ["train", "valid"]
    # ...and an item in no split is deleted through any split of its version.
    items = {item["name"]: item for item in client.get_dataset_items(d, v, params={"pageSize": 50})}
    assert client.delete_dataset_item(d, v, splits["test"]["id"], items["web"])["id"] == str(web.pk)
    assert not Image.objects.filter(pk=web.pk).exists()
    with pytest.raises(requests.HTTPError) as refused:  # one in a split is deleted through that split only
        client.delete_dataset_item(d, v, splits["test"]["id"], items["b0"])
    assert (refused.value.response.status_code, refused.value.response.json()) == (
        404,
        {"message": "No such item in this split."},
    )

    # A PUT keeps the item's new name and description; the image keeps its extension.
    item = client.get_dataset_item(d, v, items["b0"]["id"])
    item["name"], item["description"] = "first gull", "A better description"
    client.update_dataset_item(d, v, item)
    read = client.get_dataset_item(d, v, items["b0"]["id"])
    assert (read["name"], read["description"], read["extension"]) == ("first gull", "A better description", "png")
    assert Image.objects.get(pk=int(item["id"])).name == "first gull.png"
    # An item's description outlives the upload of its image.
    pending = client.create_dataset_item(d, v, {"name": "later", "description": "taken at dawn", "extension": "jpg"})
    (tmp_path / "later.png").write_bytes(colour_png((9, 9, 200), 7))
    client.upload_dataset_item_image(d, v, pending["id"], str(tmp_path), "later.png")
    assert client.get_dataset_item(d, v, pending["id"])["description"] == "taken at dawn"
    # Served as what the bytes are (a PNG, though the item said jpg), and the thumbnail as WebP.
    download = f"{live_server.url}/api/v1/datasets/{d}/versions/{v}/items/{pending['id']}/download"
    for url, kind in ((download, "image/png"), (f"{download}?thumbnail=true", "image/webp")):
        served = requests.get(url, headers=client.headers)
        assert (served.status_code, served.headers["Content-Type"]) == (200, kind)
    assert requests.get(download, headers=client.headers).content == (tmp_path / "later.png").read_bytes()

    # A label keeps its description; a colour is #rrggbb however a script writes it, and a bad one says so.
    birds = client.create_dataset_label(d, v, {"name": "Birds", "description": "Adding birds", "color": "#F00"})
    assert (birds["description"], birds["color"]) == ("Adding birds", "#ff0000")
    birds["color"], birds["description"] = "00ff00", "Changed"
    assert (client.update_dataset_label(d, v, birds)["color"], Label.objects.get(pk=int(birds["id"])).description) == (
        "#00ff00",
        "Changed",
    )
    with pytest.raises(requests.HTTPError) as refused:
        client.create_dataset_label(d, v, {"name": "Red", "color": "red"})
    assert refused.value.response.json() == {"message": "color: 'red' is no colour: write it as #rrggbb, like #ff0000."}
    assert not Label.objects.filter(project=project, name="Red").exists()

    # Renaming the dataset or its version renames the project the web app shows.
    dataset = client.get_dataset(d)
    dataset["name"] = "Coast"
    client.update_dataset(dataset)
    version = client.get_dataset_version(d, v)
    version["name"] = "final"
    client.update_dataset_version(d, version)
    assert Project.objects.get(pk=int(v)).name == "Coast (final)"
    # ...but only the projects the caller may change, and not a name given in the web app.
    from projects.models import Role
    from projects.services import membership_grant, project_update

    v2 = client.create_dataset_version(d, {"name": "v2"})["id"]
    v3 = client.create_dataset_version(d, {"name": "v3"})["id"]
    project_update(project=Project.objects.get(pk=int(v3)), name="Named in the web app")
    eve = _client(live_server, "eve")
    membership_grant(
        project=Project.objects.get(pk=int(v2)), email="eve@example.com", role=Role.objects.get(name="Admin")
    )
    dataset = eve.get_dataset(d)
    dataset["name"] = "Dunes"
    eve.update_dataset(dataset)
    assert [Project.objects.get(pk=int(pk)).name for pk in (v, v2, v3)] == [
        "Coast (final)",  # eve may not see it
        "Dunes (v2)",
        "Named in the web app",
    ]
    dataset = client.get_dataset(d)
    dataset["description"] = "Only the description"  # the SDK PUTs the whole body back: the names stay
    client.update_dataset(dataset)
    assert Project.objects.get(pk=int(v)).name == "Coast (final)"

    with pytest.raises(requests.HTTPError) as refused:
        client.get_dataset_items(d, v, params={"labelId": "abc"})
    assert refused.value.response.json() == {"message": "labelId is a label's id: a string of digits."}

    # A training request on a version whose every image is in the test split says why it cannot train.
    held = client.create_dataset({"name": "Held out", "default_splits": True})
    hv = held["versions"][0]
    [test_split] = [split for split in hv["splits"] if split["name"] == "test"]
    gull = client.create_dataset_label(held["id"], hv["id"], {"name": "gull"})
    kept = client.create_dataset_item(
        held["id"],
        hv["id"],
        {"name": "t", "splits": [test_split], "annotations": [{"label_id": gull["id"], "coordinates": ""}]},
    )
    client.upload_dataset_item_image(held["id"], hv["id"], kept["id"], str(tmp_path), "b0.png")
    with pytest.raises(requests.HTTPError) as refused:
        client.create_training_request(client.get_dataset_version(held["id"], hv["id"]))
    assert refused.value.response.json() == {
        "message": "Every image is in the test split, which training holds out: put some in train."
    }

    # Any path the SeeMe API lacks is its kind of 404: a JSON message.
    missing = requests.get(f"{live_server.url}/api/v1/models/1/download/", headers=client.headers)
    assert (missing.status_code, missing.json()) == (
        404,
        {"message": "The SeeMe API has no GET /api/v1/models/1/download/."},
    )


TINY_TRAINING = {
    "classification": {"epochs": 1, "batch_size": 8, "fine_tune": "head", "patience": 0},
    "detection": {"epochs": 1, "model_size": "small", "image_size": 224, "batch_size": 4, "patience_minutes": 0},
}


@pytest.mark.parametrize("boxes", [False, True], ids=["classification", "detection"])
def test_a_training_request_trains_a_model_the_sdk_and_the_models_page_see(
    live_server, tmp_path, settings, monkeypatch, boxes
):
    """POST trainingrequests runs a Sightline training job (tiny parameters here, the server's setting); the list
    the SDK polls carries its status and the model it made, which the SDK lists with its labels."""
    settings.SIGHTLINE_SEEME_TRAINING_PARAMETERS = TINY_TRAINING
    settings.SIGHTLINE_DETECTOR_ONNX = boxes  # the detector's ONNX file is one of its downloads
    monkeypatch.chdir(tmp_path)  # the SDK saves downloads in the working folder
    client = _client(live_server, "sam")
    d, v, splits = _made(client, tmp_path, "Trained", boxes=boxes)
    # An image of the test split only is held out of training; one in test and train trains.
    for n, named in ((6, ["test"]), (7, ["test", "train"])):
        coordinates = "0.5 0.5 0.2 0.25" if boxes else ""
        gull = client.get_dataset_labels(d, v)[0]
        item = client.create_dataset_item(
            d,
            v,
            {
                "name": f"b{n}",
                "extension": "png",
                "splits": [splits[name] for name in named],
                "annotations": [{"label_id": gull["id"], "coordinates": coordinates}],
            },
        )
        (tmp_path / f"b{n}.png").write_bytes(colour_png((200, 30 * n, 90), 40 + n, size=64))
        client.upload_dataset_item_image(d, v, item["id"], str(tmp_path), f"b{n}.png")
    version = client.get_dataset_version(d, v)
    started = client.create_training_request(version)  # in tests the job runs inside this request
    [polled] = client.get_training_requests()
    assert (polled["id"], polled["dataset_id"], polled["dataset_version_id"]) == (started["id"], d, v)
    assert (polled["status"], polled["error"], polled["finished"]) == ("finished", "", True)
    assert polled["application_id"] == ("object_detection" if boxes else "image_classification")
    model = ModelVersion.objects.get(pk=int(polled["model_id"]))
    assert (model.project_id, model.task, model.labels) == (
        int(v),
        "detection" if boxes else "classification",
        ["gull", "tern"],
    )
    # While the files it asked for are still being built, the request reads as running, so a script that waits
    # for it to finish can download them at once.
    building = Job.objects.create(
        kind=BUNDLE_KIND, project_id=int(v), status="running", payload={"model_id": model.pk, "checkpoint": "best"}
    )
    assert [(r["status"], r["finished"]) for r in client.get_training_requests()] == [("running", False)]
    one = requests.get(f"{live_server.url}/api/v1/trainingrequests/{started['id']}", headers=client.headers)
    assert (one.json()["status"], one.json()["finished"]) == ("running", False)
    app, other = ("object_detection", "image_classification") if boxes else ("image_classification", "object_detection")
    assert [r["id"] for r in client.get_training_requests(app, started=True, finished=False)] == [started["id"]]
    assert client.get_training_requests(app, started=True, finished=True) == []
    Job.objects.filter(pk=building.pk).update(status="finished")
    assert [(r["status"], r["finished"]) for r in client.get_training_requests()] == [("finished", True)]
    # The SDK's filters: the application, and whether a request has started and finished.
    assert [r["id"] for r in client.get_training_requests(app, started=True, finished=True)] == [started["id"]]
    assert [r["id"] for r in client.get_training_requests(app)] == [started["id"]]
    assert client.get_training_requests(app, started=False) == []
    assert client.get_training_requests(app, started=True, finished=False) == []
    assert client.get_training_requests(other) == []
    with pytest.raises(requests.HTTPError) as refused:
        client.get_training_requests(app, started="maybe")
    assert refused.value.response.json()["message"] == "started is true or false."
    assert model.dataset_version.split_method == "user"  # the valid split is the validation set
    trained_on = model.dataset_version.items.values_list("image_name", flat=True)
    assert sorted(trained_on) == ["b0.png", "b1.png", "b2.png", "b3.png", "b4.png", "b5.png", "b7.png"]
    assert sorted(model.dataset_version.items.filter(split="valid").values_list("image_name", flat=True)) == [
        "b4.png",
        "b5.png",
    ]
    listed = client.get_models()
    assert [m["id"] for m in listed] == [polled["model_id"]]
    assert listed[0]["active_version_id"] == polled["model_id"] and listed[0]["classes"] == "gull\ntern"
    assert listed[0]["has_ml_model"] is False  # SeeMe's flag for a Core ML file, which Sightline does not make
    [only] = client.get_model_versions(polled["model_id"])
    assert (only["model_id"], only["id"]) == (polled["model_id"], polled["model_id"])
    client.download_active_model(listed[0], asset_type="labels")
    assert Path(f"{polled['model_id']}.txt").read_text() == "gull\ntern\n"
    # Another user sees neither the request nor the model.
    eve = _client(live_server, "eve")
    assert eve.get_training_requests() == [] and eve.get_models() == []
    with pytest.raises(requests.HTTPError) as refused:
        eve.get_model(polled["model_id"])
    assert refused.value.response.status_code == 404
    _inferences_and_files(live_server, tmp_path, client, eve, listed[0], boxes)


def test_a_multi_label_dataset_trains_a_multi_label_model(live_server, tmp_path, settings):
    settings.SIGHTLINE_SEEME_TRAINING_PARAMETERS = TINY_TRAINING
    client = _client(live_server, "sam")
    d, v, _ = _made(client, tmp_path, "Flocks", boxes=False)
    dataset = client.get_dataset(d)
    dataset["multi_label"] = True
    client.update_dataset(dataset)
    gull, tern = client.get_dataset_labels(d, v)
    [b0] = [item for item in client.get_dataset_items(d, v, params={"pageSize": 50}) if item["name"] == "b0"]
    b0["annotations"].append({"label_id": tern["id"], "coordinates": ""})  # b0 shows both birds
    client.update_dataset_item(d, v, b0)
    client.create_training_request(client.get_dataset_version(d, v))
    [polled] = client.get_training_requests()
    model = ModelVersion.objects.get(pk=int(polled["model_id"]))
    assert (polled["status"], model.multi_label, model.dataset_version.multi_label) == ("finished", True, True)
    assert model.dataset_version.items.get(image_name="b0.png").targets == [0, 1]  # gull and tern


def _rest_answer(live_server, client, model: ModelVersion, image: Path) -> list[dict]:
    """What Sightline's own predict API answers for the image, with the same key."""
    reply = requests.post(
        f"{live_server.url}/api/predict/{model.project_id}/{model.name}/",
        files={"file": (image.name, image.read_bytes(), "image/png")},
        headers={"Authorization": f"Token {client.apikey}"},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["predictions"]


def _expected(answer: list[dict], boxes: bool) -> tuple[str, float, list[dict]]:
    """SeeMe's prediction, confidence and items for a predict API answer (boxes relative, as "cx cy w h")."""
    if not boxes:
        return answer[0]["label"], answer[0]["score"], []
    items = [
        {
            "prediction": row["label"],
            "confidence": row["score"],
            "coordinates": " ".join(
                f"{v:.6f}"
                for v in (
                    (row["x"] + row["width"] / 2) / 64,
                    (row["y"] + row["height"] / 2) / 64,
                    row["width"] / 64,
                    row["height"] / 64,
                )
            ),
        }
        for row in answer
    ]
    if not items:
        return "", 0.0, []
    return items[0]["prediction"], items[0]["confidence"], items


def _inferences_and_files(live_server, tmp_path, client, eve, model: dict, boxes: bool) -> None:
    """Inferences with feedback, the model's files, and the pkl uploaded to a model made through the SDK, whose
    versions then predict what the trained model predicts."""
    from django.core.files.storage import default_storage
    from django.test import Client as Browser

    from training.models import Inference, SeemeModel, SeemeVersion

    trained = ModelVersion.objects.get(pk=int(model["id"]))
    image = tmp_path / "b5.png"
    kind = "object_detection" if boxes else "image_classification"
    inference = client.predict(model["id"], str(image), input_type=kind)
    prediction, confidence, items = _expected(_rest_answer(live_server, client, trained, image), boxes)
    assert (inference["prediction"], inference["confidence"], inference["model_id"]) == (
        prediction,
        confidence,
        model["id"],
    )
    assert [
        {k: i[k] for k in ("prediction", "confidence", "coordinates")} for i in inference["inference_items"]
    ] == items
    assert inference["inference_time"].endswith("ms") and float(inference["inference_time"][:-2]) > 0
    text = requests.post(
        f"{live_server.url}/api/v1/inferences/{model['id']}", json={"input_text": "a gull"}, headers=client.headers
    )
    assert (text.status_code, text.json()) == (
        400,
        {"message": "Send the image in the multipart field 'file': Sightline's models predict images, not text."},
    )
    assert (inference["name"], inference["extension"], inference["error_reported"]) == ("b5.png", "png", False)
    inference["error_reported"], inference["error"] = True, "it is a gull"
    inference["prediction"] = "changed"  # what the model answered is not the script's to change
    updated = client.update_inference(inference)
    assert (updated["error_reported"], updated["error"], updated["prediction"]) == (True, "it is a gull", prediction)
    stored = Inference.objects.get(pk=int(inference["id"]))
    assert (stored.model_version_id, stored.user.username, stored.error_reported) == (trained.pk, "sam", True)
    # The model's page counts it.
    browser = Browser()
    browser.force_login(stored.user)
    page = browser.get(f"/projects/{trained.project_id}/models/{trained.pk}/").content.decode()
    assert '<strong id="inference-count">1</strong> image predicted' in page
    assert '<strong id="inference-reported">1</strong> reported wrong' in page
    # Another user can neither predict with the model nor see or change its inferences.
    for call in (
        lambda: eve.predict(model["id"], str(image), input_type=kind),
        lambda: eve.update_inference(inference),
    ):
        with pytest.raises(requests.HTTPError) as refused:
            call()
        assert refused.value.response.status_code == 404
    assert Inference.objects.get(pk=stored.pk).error == "it is a gull"

    # Files: the labels, the bundle (built once training ended) as pkl, and a detector's ONNX graph.
    client.download_active_model(model, asset_type="pkl")
    bundle = Path(f"{model['active_version_id']}.pkl")
    meta = json.loads(zipfile.ZipFile(bundle).read(f"{model['name']}-best/model.json"))
    assert (meta["name"], meta["labels"]) == (model["name"], ["gull", "tern"])
    import onnxruntime

    client.download_active_model(model, asset_type="onnx")
    session = onnxruntime.InferenceSession(f"{model['id']}.onnx")
    if boxes:  # the detector's network, as its checkpoint carries it
        assert [i.name for i in session.get_inputs()] == ["x"]
    else:  # the classifier's bundle program: pixels in, probabilities out
        side = meta["image_size"]
        [scores] = session.run(None, {"pixels": np.zeros((1, side, side, 3), np.uint8)})
        assert scores.shape == (1, 2) and abs(float(scores.sum()) - 1) < 1e-5
    assert client.get_model(model["id"])["has_onnx_model"] is True

    # A model made through the SDK: created with one empty version, then the pkl uploaded to it.
    made = client.create_model({"name": "Birds", "description": "from the bundle", "application_id": kind})
    assert (made["can_inference"], made["has_ml_model"], made["active_version_id"] != "") == (False, False, True)
    with pytest.raises(requests.HTTPError) as refused:
        client.predict(made["id"], str(image), input_type=kind)
    assert refused.value.response.status_code == 409
    (tmp_path / "export.pkl").write_bytes(bundle.read_bytes())
    uploaded = client.upload_model(made["id"], folder=str(tmp_path), filename="export.pkl")
    assert (uploaded["can_inference"], uploaded["classes"], uploaded["kind"]) == (True, "gull\ntern", kind)
    first = uploaded["active_version_id"]
    assert first == made["active_version_id"]  # the empty version took the file
    again = client.predict(made["id"], str(image), input_type=kind)
    assert (again["prediction"], again["confidence"], again["model_id"], again["model_version_id"]) == (
        prediction,
        confidence,
        made["id"],
        first,
    )
    # Versions: a second one, renamed, given the same file, predicted with by name, then deleted.
    second = client.create_model_version(made["id"], {"name": "retrained", "application_id": kind})
    assert (second["version_number"], second["can_inference"]) == (2, False)
    second["name"] = "second"
    assert client.update_model_version(second)["name"] == "second"
    second = client.upload_model_version(second, folder=str(tmp_path), filename="export.pkl")
    assert second["can_inference"] is True and client.get_model(made["id"])["active_version_id"] == second["id"]
    with pytest.raises(requests.HTTPError) as refused:  # a version keeps its file
        client.upload_model_version(second, folder=str(tmp_path), filename="export.pkl")
    assert refused.value.response.status_code == 400
    if not boxes:  # the SDK predicts with a named version for classification only
        by_version = client.version_inference(second, str(image))
        assert (by_version["prediction"], by_version["model_version_id"]) == (prediction, second["id"])
    assert [v["version_number"] for v in client.get_model_versions(made["id"])] == [1, 2]
    # A file that is no bundle is a 400 that keeps nothing: no new version, no model, no label.
    (tmp_path / "junk.pkl").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(requests.HTTPError) as refused:
        client.upload_model(made["id"], folder=str(tmp_path), filename="junk.pkl")
    assert refused.value.response.status_code == 400
    assert "not a model bundle" in refused.value.response.json()["message"]
    assert [v["version_number"] for v in client.get_model_versions(made["id"])] == [1, 2]
    made_row = SeemeModel.objects.get(pk=int(made["id"]))
    assert sorted(made_row.project.model_versions.values_list("name", flat=True)) == ["Birds v1", "Birds v2"]
    assert made_row.project.labels.count() == 2  # the bundle's labels, made in the model's project
    # A logo, read back byte for byte.
    (tmp_path / "logo.png").write_bytes(colour_png((200, 10, 10), 9))
    with_logo = client.upload_logo(made["id"], folder=str(tmp_path), filename="logo.png")
    assert with_logo["has_logo"] is True
    client.get_logo(with_logo)
    assert Path(with_logo["logo"]).read_bytes() == (tmp_path / "logo.png").read_bytes()
    # Renamed; eve sees none of it.
    made = client.get_model(made["id"])
    made["name"] = "Shore birds"
    assert client.update_model(made)["name"] == "Shore birds"
    assert [m["id"] for m in eve.get_models()] == []
    for call in (lambda: eve.get_model(made["id"]), lambda: eve.delete_model(made["id"])):
        with pytest.raises(requests.HTTPError) as refused:
            call()
        assert refused.value.response.status_code == 404
    # Deleting: a version (the active one passes back to the first), then the model with its project.
    assert client.delete_model_version(made["id"], second["id"])["id"] == second["id"]
    assert client.get_model(made["id"])["active_version_id"] == first
    with pytest.raises(requests.HTTPError) as refused:  # the last version stays
        client.delete_model_version(made["id"], first)
    assert refused.value.response.status_code == 400
    project_id, logo = made_row.project_id, SeemeModel.objects.get(pk=made_row.pk).logo.name
    assert default_storage.exists(logo)
    assert client.delete_model(made["id"])["name"] == "Shore birds"
    assert not default_storage.exists(logo)
    assert not Project.objects.filter(pk=project_id).exists() and not SeemeVersion.objects.exists()
    assert [m["id"] for m in client.get_models()] == [model["id"]]
    # A training request that made a model stays while the model does; PUT changes nothing of it.
    [request] = client.get_training_requests()
    request["status"] = "queued"
    assert client.update_training_request(request)["status"] == "finished"
    with pytest.raises(requests.HTTPError) as refused:
        client.delete_training_request(request["id"])
    assert (refused.value.response.status_code, refused.value.response.json()["message"]) == (
        409,
        f"This request made model {model['id']}: delete the model, which takes it along.",
    )
    from django.core.files.storage import default_storage

    assert default_storage.listdir(f"bundles/{model['id']}")[1] != []  # built when training ended
    assert client.delete_model(model["id"])["id"] == model["id"]
    assert client.get_models() == [] and client.get_training_requests() == []
    assert default_storage.listdir(f"bundles/{model['id']}")[1] == []  # and deleted with the model
