"""Writes behind the SeeMe.ai SDK's dataset API: datasets (groups of projects), their versions (projects), splits,
items (images, or pending items until their image arrives) and annotations, through Sightline's own services."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.models import User
from annotations.services.documents import StaleRevision, classifications_read, document_save, shapes_read
from projects import services as projects
from projects.models import Image, Label, PendingItem, Project, SeemeDataset, Split
from projects.permissions import project_permissions
from projects.uploads import image_files_delete, image_id_reserve, images_store

DEFAULT_SPLITS = ("train", "valid", "test")
NO_SPLIT = "_no_split"  # the classification export's folder for the images in no split, both ways: no split's name


# --- datasets and versions ------------------------------------------------------------------


@transaction.atomic
def dataset_create(*, user: User, data: dict) -> SeemeDataset:
    """A dataset and its first version (a project the user owns), with train, valid and test splits when
    `default_splits`."""
    dataset = SeemeDataset(owner=user)
    _dataset_fields(dataset, data)
    dataset.default_splits = bool(data.get("default_splits", False))
    dataset.full_clean()
    dataset.save()
    version = version_create(dataset=dataset, user=user, data={"name": "v1"})
    if dataset.default_splits:
        for name in DEFAULT_SPLITS:
            split_create(project=version, data={"name": name})
    return dataset


def _dataset_fields(dataset: SeemeDataset, data: dict) -> None:
    """The fields a script may set; read-only and unknown ones are ignored, as the SDK PUTs back what it read."""
    for name in ("name", "description", "notes", "content_type"):
        if isinstance(data.get(name), str):
            setattr(dataset, name, data[name].strip() if name == "name" else data[name])
    if isinstance(data.get("multi_label"), bool):
        dataset.multi_label = data["multi_label"]
    if not dataset.name:
        raise ValidationError({"name": "Give the dataset a name."})


def logo_save(*, row, data: bytes, extension: str, stem: str):
    """A picture for a dataset or a model (`row`'s `logo`; checked by the caller), replacing the one before, which
    is deleted once the new one is committed."""
    from django.core.files.base import ContentFile

    old = row.logo.name
    storage = row.logo.storage
    row.logo.save(f"{stem}.{extension}", ContentFile(data), save=False)
    try:
        row.save(update_fields=["logo", "updated_at"])
    except BaseException:
        storage.delete(row.logo.name)
        raise
    if old and old != row.logo.name:
        transaction.on_commit(lambda: storage.delete(old))
    return row


@transaction.atomic
def dataset_update(*, dataset: SeemeDataset, data: dict, renamable: Iterable[Project] = ()) -> SeemeDataset:
    """A renamed dataset renames those of its versions' projects in `renamable` (the caller's to change) that still
    have the name it gave them, so the web app shows the new name and keeps a name given there."""
    before = dataset.name
    _dataset_fields(dataset, data)
    dataset.full_clean()
    dataset.save()
    if dataset.name != before:
        for project in renamable:
            _project_rename(project, was=_project_name(before, project.seeme_version))
    return dataset


def _project_name(dataset_name: str, version_name: str) -> str:
    """A version's project is named "dataset (version)"."""
    return f"{dataset_name} ({version_name})"[:200]


def _project_rename(project: Project, *, was: str) -> None:
    if project.name == was:
        projects.project_update(project=project, name=_project_name(project.seeme_dataset.name, project.seeme_version))


@transaction.atomic
def dataset_delete(*, dataset: SeemeDataset, user: User) -> None:
    """The dataset and every version's project: only with the right to delete each of them."""
    versions = list(dataset.versions.all())
    for project in versions:
        if "delete_project" not in project_permissions(user, project):
            raise PermissionDenied(f"Your role in {project.name} does not allow deleting it.")
    for project in versions:
        projects.project_delete(project=project)
    dataset.delete()


@transaction.atomic
def version_create(*, dataset: SeemeDataset, user: User, data: dict) -> Project:
    """A new, empty version: a project of its own, owned by whoever made it."""
    number = dataset.versions.count() + 1
    name = str(data.get("name") or f"v{number}").strip()[:100]
    project = projects.project_create(
        owner=user, name=_project_name(dataset.name, name), description=str(data.get("description") or "")
    )
    project.seeme_dataset, project.seeme_version = dataset, name
    project.save(update_fields=["seeme_dataset", "seeme_version", "updated_at"])
    return project


def version_delete(*, project: Project) -> None:
    """The version's project and all in it."""
    projects.project_delete(project=project)


@transaction.atomic
def version_update(*, project: Project, data: dict) -> Project:
    if isinstance(data.get("name"), str) and data["name"].strip():
        was = _project_name(project.seeme_dataset.name, project.seeme_version)
        project.seeme_version = data["name"].strip()[:100]
        project.save(update_fields=["seeme_version", "updated_at"])
        _project_rename(project, was=was)
    if isinstance(data.get("description"), str):
        projects.project_update(project=project, description=data["description"])
    return project


# --- labels and splits ----------------------------------------------------------------------


def _color(data: dict) -> str | None:
    """A label's colour as scripts write it (`#ff0000`, `ff0000`, `#f00`), as `#ff0000`; None when not given."""
    value = data.get("color")
    if not isinstance(value, str) or not value.strip():
        return None
    digits = value.strip().removeprefix("#").lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    if len(digits) != 6 or any(c not in "0123456789abcdef" for c in digits):
        raise ValidationError({"color": f"{value!r} is no colour: write it as #rrggbb, like #ff0000."})
    return f"#{digits}"


def label_create(*, project: Project, data: dict) -> Label:
    description = data["description"] if isinstance(data.get("description"), str) else ""
    return projects.label_create(
        project=project, name=str(data.get("name") or ""), color=_color(data), description=description
    )


def label_update(*, label: Label, data: dict) -> Label:
    changes = {}
    for field in ("name", "description"):
        if isinstance(data.get(field), str):
            changes[field] = data[field]
    if _color(data):
        changes["color"] = _color(data)
    return projects.label_update(label=label, **changes)


def label_delete(*, label: Label) -> None:
    """A SeeMe delete has no confirmation step: the label goes with its annotations (their images' revisions move)."""
    projects.label_delete(label=label, confirm=True)


def split_create(*, project: Project, data: dict) -> Split:
    name = str(data.get("name") or "").strip()
    if not name:
        raise ValidationError({"name": "Give the split a name."})
    _split_name_free(name)
    if Split.objects.filter(project=project, name=name).exists():
        raise ValidationError({"name": f"A split named {name!r} exists already."})
    split = Split(project=project, name=name[:100], description=str(data.get("description") or "")[:300])
    split.full_clean()
    split.save()
    return split


def _split_name_free(name: str) -> None:
    if name.lstrip(".") == NO_SPLIT:
        raise ValidationError({"name": f"{NO_SPLIT} is the export's folder for the images in no split."})


def split_update(*, split: Split, data: dict) -> Split:
    if isinstance(data.get("name"), str) and data["name"].strip() and data["name"].strip() != split.name:
        name = data["name"].strip()[:100]
        if Split.VALID in (name, split.name):
            raise ValidationError(
                {"name": "The valid split is the validation set: it keeps its name, and no other split takes it."}
            )
        _split_name_free(name)
        if Split.objects.filter(project=split.project, name=name).exclude(pk=split.pk).exists():
            raise ValidationError({"name": f"A split named {name!r} exists already."})
        split.name = name
    if isinstance(data.get("description"), str):
        split.description = data["description"][:300]
    split.save()
    return split


@transaction.atomic
def split_delete(*, split: Split) -> None:
    """The split, not its images; deleting "valid" leaves every image out of the validation set."""
    if split.name == Split.VALID:
        Image.objects.filter(project=split.project, is_validation=True).update(is_validation=False)
    for item in PendingItem.objects.filter(project=split.project):
        if split.pk in item.split_ids:
            item.split_ids = [pk for pk in item.split_ids if pk != split.pk]
            item.save(update_fields=["split_ids", "updated_at"])
    split.delete()


# --- items ----------------------------------------------------------------------------------


def _digits(value) -> int | None:
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _split_ids(project: Project, raw) -> list[int]:
    """The ids of the item's `splits` (SeeMe sends the split objects); each must be a split of this version."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError({"splits": "A list of splits."})
    ids = []
    for entry in raw:
        value = entry.get("id") if isinstance(entry, dict) else entry
        if _digits(value) is None:
            raise ValidationError({"splits": f"{value!r} is no split id."})
        ids.append(_digits(value))
    known = set(Split.objects.filter(project=project, pk__in=ids).values_list("pk", flat=True))
    if set(ids) - known:
        raise ValidationError({"splits": "A split of another dataset version, or none."})
    return sorted(set(ids))


def _splits_set(image: Image, split_ids: list[int]) -> None:
    splits = list(Split.objects.filter(project_id=image.project_id))
    for split in splits:
        inside = split.pk in split_ids
        if split.name == Split.VALID:
            if image.is_validation != inside:
                projects.images_set_validation(project=image.project, image_ids=[image.pk], is_validation=inside)
        elif inside:
            split.images.add(image)
        else:
            split.images.remove(image)


def _annotations_check(project: Project, raw) -> list[dict]:
    """SeeMe annotations: {label_id, coordinates} with coordinates "" (the image's label) or "cx cy w h" (a box,
    relative to the image's size)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError({"annotations": "A list of annotations."})
    labels = set(Label.objects.filter(project=project).values_list("pk", flat=True))
    out = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ValidationError({"annotations": f"annotation {index}: an object with label_id and coordinates."})
        label = _digits(entry.get("label_id", ""))
        if label not in labels:
            raise ValidationError(
                {
                    "annotations": f"annotation {index}: label {entry.get('label_id')!r} is no label "
                    "of this dataset version."
                }
            )
        coordinates = "" if entry.get("coordinates") is None else entry["coordinates"]
        if not isinstance(coordinates, str):
            raise ValidationError({"annotations": f"annotation {index}: coordinates are a string."})
        numbers = coordinates.split()
        if numbers:
            try:
                box = [float(n) for n in numbers]
            except ValueError:
                box = []
            if len(box) != 4 or not all(0 <= v <= 1 for v in box) or box[2] < 1e-6 or box[3] < 1e-6:
                raise ValidationError(
                    {
                        "annotations": f'annotation {index}: coordinates are "cx cy w h", four '
                        "numbers from 0 to 1, relative to the image."
                    }
                )
        normal = " ".join(f"{v:.6f}" for v in box) if numbers else ""
        out.append({"id": _digits(entry.get("id") or ""), "label": label, "coordinates": normal})
    return out


@transaction.atomic
def item_create(*, project: Project, user: User, data: dict) -> PendingItem:
    """An item with no image yet: its annotations and splits wait for it (item_image_store)."""
    item = PendingItem(id=image_id_reserve(), project=project, created_by=user)
    _pending_fields(item, data)
    item.split_ids = _split_ids(project, data.get("splits"))
    item.annotations = _annotations_check(project, data.get("annotations"))
    item.save()
    return item


def _pending_fields(item: PendingItem, data: dict) -> None:
    if isinstance(data.get("name"), str):
        item.name = data["name"].strip()[:200]
    if isinstance(data.get("extension"), str):
        item.extension = data["extension"].strip().lstrip(".").lower()[:10]
    if isinstance(data.get("description"), str):
        item.description = data["description"]


def pending_update(*, item: PendingItem, data: dict) -> PendingItem:
    _pending_fields(item, data)
    if data.get("splits") is not None:
        item.split_ids = _split_ids(item.project, data["splits"])
    if data.get("annotations") is not None:
        item.annotations = _annotations_check(item.project, data["annotations"])
    item.save()
    return item


@transaction.atomic
def item_image_store(*, item: PendingItem, user: User, data: bytes, filename: str) -> Image:
    """The pending item's image arrives: it becomes an image with the item's id, then its annotations and splits
    are applied. Refused (nothing kept) if the bytes are no image or the version has them already."""
    item = PendingItem.objects.select_for_update().filter(pk=item.pk).first()
    if item is None:  # another upload of it won
        raise ValidationError({"file": "This item has its image already."})
    extension = item.extension or filename.rpartition(".")[2].lower()
    name = f"{item.name or item.pk}.{extension}" if extension else (item.name or str(item.pk))
    result = images_store(project=item.project, user=user, named=[(name, data)], pk=item.pk)
    if not result.stored:
        raise ValidationError({"file": result.rejected[0].reason})
    [image] = result.stored
    try:
        known = set(Split.objects.filter(project=item.project).values_list("pk", flat=True))
        _splits_set(image, [pk for pk in item.split_ids if pk in known])
        labels = set(Label.objects.filter(project=item.project).values_list("pk", flat=True))
        annotations = [a for a in item.annotations if a["label"] in labels]  # labels deleted meanwhile go with them
        if item.description:
            Image.objects.filter(pk=image.pk).update(description=item.description)
            image.description = item.description
        item.delete()
        if annotations:
            _annotations_save(image=image, user=user, annotations=annotations)
    except BaseException:
        image_files_delete(image)  # the transaction takes the rows back; the files are ours to take
        raise
    return image


def _image_fields(image: Image, data: dict) -> None:
    """An item's name (its file name's stem: the extension stays what the bytes are) and description."""
    changed = []
    name = data.get("name")
    if isinstance(name, str) and name.strip():
        _, dot, extension = image.name.rpartition(".")
        stem = name.strip()[: max(1, 250 - len(extension))]
        image.name = (f"{stem}.{extension}" if dot else stem)[:255]
        changed.append("name")
    if isinstance(data.get("description"), str):
        image.description = data["description"]
        changed.append("description")
    if changed:
        image.save(update_fields=changed)


@transaction.atomic
def image_update(*, image: Image, user: User, data: dict) -> Image:
    """PUT of a whole item: its splits and its annotations are the new truth (a field left out or null changes
    nothing). Its boxes and image labels are replaced; a box it names by id keeps its row, and all but the label
    and the geometry it was given; other shapes (polygons, masks, points: not SeeMe's) are kept."""
    project = image.project
    annotations = None if data.get("annotations") is None else _annotations_check(project, data["annotations"])
    _image_fields(image, data)
    if data.get("splits") is not None:
        _splits_set(image, _split_ids(project, data["splits"]))
    if annotations is not None:
        _annotations_save(image=image, user=user, annotations=annotations)
    image.refresh_from_db()
    return image


def _annotations_save(*, image: Image, user: User, annotations: list[dict]) -> None:
    stored = shapes_read(image_ids=[image.pk]).get(image.pk, [])
    shapes = [shape for shape in stored if shape["kind"] != "box"]
    boxes = {shape["id"]: shape for shape in stored if shape["kind"] == "box"}
    default = next(
        (c["label"] for c in classifications_read(image_ids=[image.pk]).get(image.pk, []) if c["default"]), None
    )
    labels = []
    for entry in annotations:
        if not entry["coordinates"]:
            labels.append({"label": entry["label"], "default": entry["label"] == default})
            continue
        known = boxes.get(entry["id"])
        if known is not None and box_coordinates(known["geometry"], image.width, image.height) == entry["coordinates"]:
            shapes.append({**known, "label": entry["label"]})  # unmoved: its exact geometry and all it carries
            continue
        cx, cy, w, h = (float(v) for v in entry["coordinates"].split())
        x, y = max(0.0, (cx - w / 2) * image.width), max(0.0, (cy - h / 2) * image.height)
        geometry = {
            "x": x,
            "y": y,
            "width": min(w * image.width, image.width - x),
            "height": min(h * image.height, image.height - y),
        }
        shapes.append({**(known or {}), "label": entry["label"], "kind": "box", "geometry": geometry})
    if labels and not any(label["default"] for label in labels):
        labels[0]["default"] = True
    # SeeMe's PUT has no revision: it is the new truth at whatever revision is current (a labeler open on the image
    # then gets the web app's 409 and reloads). A save landing in between is retried on top of it.
    for attempt in range(3):
        current = Image.objects.values_list("annotation_revision", flat=True).get(pk=image.pk)
        try:
            document_save(image=image, user=user, revision=current, classifications=labels, shapes=shapes)
            return
        except StaleRevision:
            if attempt == 2:
                raise ValidationError({"annotations": "The item changed while saving; send it again."}) from None


def item_in_split(*, item: Image | PendingItem, split: Split) -> bool:
    if isinstance(item, PendingItem):
        return split.pk in item.split_ids
    if split.name == Split.VALID:
        return item.is_validation
    return split.images.filter(pk=item.pk).exists()


def item_in_no_split(*, item: Image | PendingItem) -> bool:
    """An item in no split (an image uploaded in the web app, say) is deleted through any split of its version."""
    if isinstance(item, PendingItem):
        return not item.split_ids
    in_valid = item.is_validation and Split.objects.filter(project_id=item.project_id, name=Split.VALID).exists()
    return not in_valid and not item.splits.exists()


def item_delete(*, project: Project, image_id: int) -> None:
    if PendingItem.objects.filter(project=project, pk=image_id).delete()[0]:
        return
    projects.images_delete(project=project, image_ids=[image_id])


def box_coordinates(geometry: dict, width: int, height: int) -> str:
    """A box (x, y, width, height in pixels) as SeeMe writes it: "cx cy w h", relative to an image of `width` x
    `height`, six decimals."""
    cx = (geometry["x"] + geometry["width"] / 2) / width
    cy = (geometry["y"] + geometry["height"] / 2) / height
    return " ".join(f"{v:.6f}" for v in (cx, cy, geometry["width"] / width, geometry["height"] / height))
