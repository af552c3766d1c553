"""The SeeMe.ai SDK's dataset API: datasets, versions, labels, splits, items and their images. Each handler checks
access through projects.permissions, calls projects/seeme/services.py, and answers SeeMe's JSON (ids as strings)."""

from __future__ import annotations

import io

from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse
from PIL import Image as Picture
from PIL import UnidentifiedImageError

from annotations.services.documents import classifications_read, shapes_read
from projects.files import stored_bytes
from projects.models import Image, Label, PendingItem, Project, SeemeDataset, Split
from projects.permissions import access_project, projects_for_user
from projects.seeme import services, transfers
from projects.seeme.protocol import Refused, body_json, query_flag, string_id

MAX_PAGE_SIZE = 1000
MAX_IMAGE_BYTES = 50 * 1024 * 1024


def _at(value) -> str:
    return value.isoformat() if value else None


# --- access ---------------------------------------------------------------------------------


def _dataset(user, dataset_id) -> SeemeDataset:
    """A dataset one of whose versions the user may see; any other is a 404, as a missing one is."""
    visible = projects_for_user(user).filter(seeme_dataset_id=string_id(dataset_id))
    dataset = SeemeDataset.objects.filter(pk=string_id(dataset_id), versions__in=visible).distinct().first()
    if dataset is None:
        raise Http404("No such dataset.")
    return dataset


def version_access(user, dataset_id, version_id, perm: str = "view_project") -> Project:
    """A version (project) of this dataset that the user may see, and act on with `perm` (403 otherwise)."""
    found = Project.objects.filter(pk=string_id(version_id), seeme_dataset_id=string_id(dataset_id)).first()
    if found is None:
        raise Http404("No such dataset version.")
    try:
        return access_project(user, found.pk, perm)
    except Http404:
        raise Http404("No such dataset version.") from None


def _label(project: Project, label_id) -> Label:
    label = Label.objects.filter(project=project, pk=string_id(label_id)).first()
    if label is None:
        raise Http404("No such label.")
    return label


def _split(project: Project, split_id) -> Split:
    split = Split.objects.filter(project=project, pk=string_id(split_id)).first()
    if split is None:
        raise Http404("No such split.")
    return split


def _item(project: Project, item_id) -> Image | PendingItem:
    pk = string_id(item_id)
    found = (
        Image.objects.filter(project=project, pk=pk).first()
        or PendingItem.objects.filter(project=project, pk=pk).first()
    )
    if found is None:
        raise Http404("No such item.")
    return found


# --- what SeeMe answers ---------------------------------------------------------------------


def label_body(label: Label, index: int) -> dict:
    return {
        "id": str(label.pk),
        "created_at": _at(label.created_at),
        "updated_at": _at(label.created_at),
        "name": label.name,
        "description": label.description,
        "color": label.color,
        "index": index,
        "version_id": str(label.project_id),
    }


def split_body(split: Split) -> dict:
    return {
        "id": str(split.pk),
        "created_at": _at(split.created_at),
        "updated_at": _at(split.updated_at),
        "name": split.name,
        "description": split.description,
        "version_id": str(split.project_id),
    }


def _labels(project: Project) -> list[dict]:
    return [label_body(label, index) for index, label in enumerate(project.labels.order_by("id"))]


def version_body(project: Project) -> dict:
    splits = [split_body(split) for split in project.splits.all()]
    return {
        "id": str(project.pk),
        "created_at": _at(project.created_at),
        "updated_at": _at(project.updated_at),
        "deleted_at": None,
        "name": project.seeme_version,
        "description": project.description,
        "labels": _labels(project),
        "user_id": str(project.owner_id),
        "dataset_id": str(project.seeme_dataset_id),
        "splits": splits,
        "default_split": next((s["id"] for s in splits if s["name"] == "train"), ""),
    }


def dataset_body(dataset: SeemeDataset, user) -> dict:
    visible = projects_for_user(user).filter(seeme_dataset=dataset).order_by("id")
    return {
        "id": str(dataset.pk),
        "created_at": _at(dataset.created_at),
        "updated_at": _at(dataset.updated_at),
        "deleted_at": None,
        "name": dataset.name,
        "description": dataset.description,
        "user_id": str(dataset.owner_id),
        "notes": dataset.notes,
        "versions": [version_body(project) for project in visible],
        "multi_label": dataset.multi_label,
        "default_splits": dataset.default_splits,
        "has_logo": bool(dataset.logo),
        "logo": logo_name(dataset, f"dataset-{dataset.pk}"),
        "content_type": dataset.content_type,
    }


def items_body(project: Project, rows: list[Image | PendingItem]) -> list[dict]:
    """SeeMe items for images (and pending items) of one version, read in bulk."""
    images = [row for row in rows if isinstance(row, Image)]
    ids = [image.pk for image in images]
    shapes, labels = shapes_read(image_ids=ids), classifications_read(image_ids=ids)
    splits = {split.pk: split for split in project.splits.all()}
    member: dict[int, set[int]] = {}
    for split_id, image_id in Split.images.through.objects.filter(split__project=project, image_id__in=ids).values_list(
        "split_id", "image_id"
    ):
        member.setdefault(image_id, set()).add(split_id)
    valid = next((pk for pk, split in splits.items() if split.name == Split.VALID), None)
    out = []
    for row in rows:
        if isinstance(row, PendingItem):
            annotations = [
                {"id": "", "label_id": str(a["label"]), "item_id": str(row.pk), "coordinates": a["coordinates"]}
                for a in row.annotations
            ]
            in_splits = [splits[i] for i in row.split_ids if i in splits]
            out.append(_item_body(row.pk, row.name, row.extension, row, in_splits, annotations))
            continue
        in_splits = set(member.get(row.pk, ()))
        if valid is not None and row.is_validation:
            in_splits.add(valid)
        annotations = [
            {
                "id": f"c{entry['label']}",  # an image label: one per label and image
                "label_id": str(entry["label"]),
                "item_id": str(row.pk),
                "coordinates": "",
            }
            for entry in labels.get(row.pk, [])
        ] + [
            {
                "id": str(shape["id"]),
                "label_id": str(shape["label"]),
                "item_id": str(row.pk),
                "coordinates": services.box_coordinates(shape["geometry"], row.width, row.height),
            }
            for shape in shapes.get(row.pk, [])
            if shape["kind"] == "box"
        ]
        stem, dot, extension = row.name.rpartition(".")
        out.append(
            _item_body(
                row.pk,
                stem if dot else row.name,
                extension if dot else "",
                row,
                [splits[i] for i in sorted(in_splits)],
                annotations,
            )
        )
    return out


def _item_body(pk: int, name: str, extension: str, row, splits: list[Split], annotations: list[dict]) -> dict:
    return {
        "id": str(pk),
        "created_at": _at(row.created_at),
        "updated_at": _at(getattr(row, "updated_at", row.created_at)),
        "name": name,
        "description": getattr(row, "description", ""),
        "user_id": str(getattr(row, "uploaded_by_id", None) or getattr(row, "created_by_id", "") or ""),
        "text": "",
        "splits": [split_body(split) for split in splits],
        "annotations": annotations,
        "extension": extension,
        "has_image": isinstance(row, Image),
    }


# --- datasets -------------------------------------------------------------------------------


def no_route(request, unknown: str):
    raise Http404(f"The SeeMe API has no {request.method} /api/v1/{unknown[:200]}.")


def datasets_list(request):
    visible = projects_for_user(request.user).filter(seeme_dataset__isnull=False)
    found = SeemeDataset.objects.filter(versions__in=visible).distinct().order_by("id")
    return [dataset_body(dataset, request.user) for dataset in found]


def dataset_create(request):
    dataset = services.dataset_create(user=request.user, data=body_json(request))
    return dataset_body(dataset, request.user)


def _changeable(user, dataset: SeemeDataset) -> None:
    """A dataset is changed (renamed, given a logo) by whoever may change one of its versions."""
    if not projects_for_user(user, "change_project").filter(seeme_dataset=dataset).exists():
        raise Refused("Your role in this dataset does not allow changing it.", 403)


def dataset_get(request, dataset_id):
    return dataset_body(_dataset(request.user, dataset_id), request.user)


def dataset_update(request, dataset_id):
    dataset = _dataset(request.user, dataset_id)
    _changeable(request.user, dataset)
    renamable = projects_for_user(request.user, "change_project").filter(seeme_dataset=dataset)
    updated = services.dataset_update(dataset=dataset, data=body_json(request), renamable=renamable)
    return dataset_body(updated, request.user)


LOGO_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}


def logo_store(request, row, stem: str) -> None:
    """The logo in the multipart field `file` becomes `row`'s: a JPEG or a PNG, decoded under the same guards as every
    upload, and named by what it is, not by what it is called."""
    from projects.imaging import ImageRejected, open_guarded
    from training.predictions import upload_read

    upload = request.FILES.get("file")
    if upload is None:
        raise Refused("Send the logo in the multipart field 'file'.")
    data = upload_read(upload)
    try:
        with open_guarded(data, copies=1) as image:
            kind = image.format
    except ImageRejected as exc:
        raise Refused(f"The logo cannot be read: {exc}") from None
    if kind not in ("JPEG", "PNG"):
        raise Refused(f"A logo is a JPEG or a PNG; this is {kind or 'an unknown format'}.")
    services.logo_save(row=row, data=data, extension="jpg" if kind == "JPEG" else "png", stem=stem)


def logo_name(row, stem: str) -> str:
    """The file name the SDK saves a logo under (it reads it from the object's `logo`)."""
    return f"{stem}.{row.logo.name.rpartition('.')[2]}" if row.logo else ""


def logo_response(row) -> HttpResponse:
    if not row.logo:
        raise Http404("There is no logo.")
    kind = LOGO_TYPES.get(row.logo.name.rpartition(".")[2], "application/octet-stream")
    return HttpResponse(stored_bytes(row.logo.name), content_type=kind)


def dataset_logo_upload(request, dataset_id):
    """POST datasets/{d}/upload: the dataset's logo."""
    dataset = _dataset(request.user, dataset_id)
    _changeable(request.user, dataset)
    logo_store(request, dataset, f"dataset-{dataset.pk}")
    return dataset_body(dataset, request.user)


def dataset_logo(request, dataset_id):
    return logo_response(_dataset(request.user, dataset_id))


def dataset_delete(request, dataset_id):
    dataset = _dataset(request.user, dataset_id)
    body = dataset_body(dataset, request.user)
    services.dataset_delete(dataset=dataset, user=request.user)
    return body


# --- versions -------------------------------------------------------------------------------


def versions_list(request, dataset_id):
    dataset = _dataset(request.user, dataset_id)
    return [version_body(p) for p in projects_for_user(request.user).filter(seeme_dataset=dataset).order_by("id")]


def version_create(request, dataset_id):
    dataset = _dataset(request.user, dataset_id)
    changeable = projects_for_user(request.user, "change_project").filter(seeme_dataset=dataset)
    if not changeable.exists():
        raise Refused("Your role in this dataset does not allow adding versions.", 403)
    return version_body(services.version_create(dataset=dataset, user=request.user, data=body_json(request)))


def version_get(request, dataset_id, version_id):
    return version_body(version_access(request.user, dataset_id, version_id))


def version_update(request, dataset_id, version_id):
    project = version_access(request.user, dataset_id, version_id, "change_project")
    return version_body(services.version_update(project=project, data=body_json(request)))


def version_delete(request, dataset_id, version_id):
    project = version_access(request.user, dataset_id, version_id, "delete_project")
    body = version_body(project)
    services.version_delete(project=project)
    return body


# --- labels and splits ----------------------------------------------------------------------


def labels_list(request, dataset_id, version_id):
    return _labels(version_access(request.user, dataset_id, version_id))


def label_create(request, dataset_id, version_id):
    project = version_access(request.user, dataset_id, version_id, "manage_labels_project")
    return _label_answer(services.label_create(project=project, data=body_json(request)))


def _label_answer(label: Label) -> dict:
    return label_body(label, Label.objects.filter(project_id=label.project_id, id__lt=label.pk).count())


def label_get(request, dataset_id, version_id, label_id):
    return _label_answer(_label(version_access(request.user, dataset_id, version_id), label_id))


def label_update(request, dataset_id, version_id, label_id):
    project = version_access(request.user, dataset_id, version_id, "manage_labels_project")
    return _label_answer(services.label_update(label=_label(project, label_id), data=body_json(request)))


def label_delete(request, dataset_id, version_id, label_id):
    project = version_access(request.user, dataset_id, version_id, "manage_labels_project")
    label = _label(project, label_id)
    body = _label_answer(label)
    services.label_delete(label=label)
    return body


def splits_list(request, dataset_id, version_id):
    return [split_body(split) for split in version_access(request.user, dataset_id, version_id).splits.all()]


def split_create(request, dataset_id, version_id):
    project = version_access(request.user, dataset_id, version_id, "manage_labels_project")
    return split_body(services.split_create(project=project, data=body_json(request)))


def split_get(request, dataset_id, version_id, split_id):
    return split_body(_split(version_access(request.user, dataset_id, version_id), split_id))


def split_update(request, dataset_id, version_id, split_id):
    project = version_access(request.user, dataset_id, version_id, "manage_labels_project")
    return split_body(services.split_update(split=_split(project, split_id), data=body_json(request)))


def split_delete(request, dataset_id, version_id, split_id):
    project = version_access(request.user, dataset_id, version_id, "manage_labels_project")
    split = _split(project, split_id)
    body = split_body(split)
    services.split_delete(split=split)
    return body


# --- items ----------------------------------------------------------------------------------


def items_list(request, dataset_id, version_id):
    """A page of items, oldest first: `pageSize`, `pageCount` (the page, from 0), `onlyUnlabelled`, `labelId`,
    `splitId`."""
    project = version_access(request.user, dataset_id, version_id)
    query = request.GET
    try:
        size = min(MAX_PAGE_SIZE, max(1, int(query.get("pageSize") or 10)))
        page = max(0, int(query.get("pageCount") or 0))
    except ValueError:
        raise Refused("pageSize and pageCount are numbers.") from None
    images = Image.objects.filter(project=project)
    pending = list(PendingItem.objects.filter(project=project))
    if query_flag(request, "onlyUnlabelled"):
        images = images.filter(annotations__isnull=True, classifications__isnull=True)
        pending = [item for item in pending if not item.annotations]
    if query.get("labelId"):
        if not (query["labelId"].isascii() and query["labelId"].isdigit()):
            raise Refused("labelId is a label's id: a string of digits.")
        label = string_id(query["labelId"])
        images = images.filter(Q(annotations__label_id=label) | Q(classifications__label_id=label))
        pending = [item for item in pending if any(a["label"] == label for a in item.annotations)]
    if query.get("splitId"):
        split = _split(project, query["splitId"])
        images = images.filter(is_validation=True) if split.name == Split.VALID else images.filter(splits=split)
        pending = [item for item in pending if split.pk in item.split_ids]
    ids = sorted({*images.values_list("pk", flat=True), *(item.pk for item in pending)})
    chosen = ids[page * size : (page + 1) * size]
    rows = {image.pk: image for image in Image.objects.filter(pk__in=chosen)}
    rows.update({item.pk: item for item in pending if item.pk in chosen})
    return items_body(project, [rows[pk] for pk in chosen])


def item_create(request, dataset_id, version_id):
    project = version_access(request.user, dataset_id, version_id, "upload_project")
    data = body_json(request)
    if data.get("annotations"):  # they are saved as the image's annotations when it arrives
        access_project(request.user, project.pk, "annotate_project")
    item = services.item_create(project=project, user=request.user, data=data)
    return items_body(project, [item])[0]


def item_get(request, dataset_id, version_id, item_id):
    project = version_access(request.user, dataset_id, version_id)
    return items_body(project, [_item(project, item_id)])[0]


def item_update(request, dataset_id, version_id, item_id):
    project = version_access(request.user, dataset_id, version_id, "annotate_project")
    item, data = _item(project, item_id), body_json(request)
    if isinstance(item, PendingItem):
        item = services.pending_update(item=item, data=data)
    else:
        item = services.image_update(image=item, user=request.user, data=data)
    return items_body(project, [item])[0]


def item_delete(request, dataset_id, version_id, split_id, item_id):
    project = version_access(request.user, dataset_id, version_id, "delete_images_project")
    split = _split(project, split_id)
    item = _item(project, item_id)
    if not (services.item_in_split(item=item, split=split) or services.item_in_no_split(item=item)):
        raise Http404("No such item in this split.")
    body = items_body(project, [item])[0]
    services.item_delete(project=project, image_id=item.pk)
    return body


def item_upload(request, dataset_id, version_id, item_id):
    project = version_access(request.user, dataset_id, version_id, "upload_project")
    item = _item(project, item_id)
    if isinstance(item, Image):
        raise Refused("This item has its image already.", 409)
    upload = request.FILES.get("file")
    if upload is None:
        raise Refused("Send the image in the multipart field 'file'.")
    if upload.size > MAX_IMAGE_BYTES:
        raise Refused(f"The image is over {MAX_IMAGE_BYTES // 1024 // 1024} MB.", 413)
    image = services.item_image_store(item=item, user=request.user, data=upload.read(), filename=upload.name or "")
    return items_body(project, [image])[0]


def item_download(request, dataset_id, version_id, item_id):
    project = version_access(request.user, dataset_id, version_id)
    item = _item(project, item_id)
    if isinstance(item, PendingItem):
        raise Http404("This item has no image yet.")
    field = item.thumbnail if query_flag(request, "thumbnail") else item.file
    data = stored_bytes(field.name)
    return HttpResponse(data, content_type=_content_type(data))


def _content_type(data: bytes) -> str:
    """What the bytes are (a PNG sent for an item named .jpg is served as a PNG), from their header alone."""
    try:
        with Picture.open(io.BytesIO(data)) as picture:
            return Picture.MIME.get(picture.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError):
        return "application/octet-stream"


# --- export and import ----------------------------------------------------------------------


def version_download(request, dataset_id, version_id, split_id=None):
    """The version (or one split) as the SDK's ZIP: folders per split and label, or YOLO when it has boxes."""
    project = version_access(request.user, dataset_id, version_id, "export_project")
    only = _split(project, split_id) if split_id is not None else None
    archive = transfers.version_export(project=project, only=only)
    return FileResponse(archive, as_attachment=True, filename=f"{version_id}.zip", content_type="application/zip")


def version_upload(request, dataset_id, version_id):
    """A ZIP of the classification layout into the version."""
    project = version_access(request.user, dataset_id, version_id, "upload_project")
    access_project(request.user, project.pk, "manage_labels_project")  # it makes the labels and splits it names
    access_project(request.user, project.pk, "annotate_project")  # and labels the images the version has
    upload = request.FILES.get("file")
    if upload is None:
        raise Refused("Send the ZIP in the multipart field 'file'.")
    done = transfers.version_import(project=project, user=request.user, fileobj=upload)
    return {**version_body(project), "imported": done}
