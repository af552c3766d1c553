"""Freezing what a training run learns from: a DatasetVersion of images, targets and splits.

Classification (spec 000): single-label models learn each image's default label; multi-label
models every label it has. With one label in use, images without labels become "background"
(spec 000, Training question 4); otherwise unlabeled images are left out. Detection learns boxes (a
polygon's or mask's bounding box); semantic and instance segmentation learn polygons and masks. For
all of them, an image marked labeled with no object is a negative. A detector with a segmentation head
(spec 004) learns boxes from rectangles and polygons and pixels from painted masks (_heads_targets).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from annotations.models import Annotation, Classification, ImageStatus
from projects.models import Image, Project
from training.ml.segmentation_metrics import MAX_LABELS
from training.models import SHAPE_TASKS, DatasetItem, DatasetVersion, Split, Task

BACKGROUND = "background"
BACKGROUND_COLOR = "#9e9e9e"


def stratified_validation(groups: list, percent: float, seed: int) -> set[int]:
    """Indices that go to validation: `percent` of each group, at least one of any group of two or more.

    A group of one stays in training, so every class the model learns has a training example.
    """
    by_group: dict = defaultdict(list)
    for index, group in enumerate(groups):
        by_group[group].append(index)
    chosen: set[int] = set()
    rng = random.Random(seed)
    for group in sorted(by_group, key=str):
        members = by_group[group]
        if len(members) < 2:
            continue
        rng.shuffle(members)
        take = min(len(members) - 1, max(1, round(len(members) * percent / 100)))
        chosen.update(members[:take])
    return chosen


def _classification_targets(
    project: Project, multi_label: bool, chosen: list[int] | None
) -> tuple[list[dict], dict[int, list[int]]]:
    """The label map and each image's target indices (the default label first), of the chosen images or all."""
    rows = (
        Classification.objects.filter(image__project=project, **_among(chosen))
        .order_by("image_id", "-is_default", "label__name")
        .values_list("image_id", "label_id", "label__name", "label__color")
    )
    per_image: dict[int, list[int]] = defaultdict(list)
    info: dict[int, tuple[str, str]] = {}
    for image_id, label_id, name, color in rows:
        per_image[image_id].append(label_id)
        info[label_id] = (name, color)
    if not multi_label:
        per_image = {image_id: ids[:1] for image_id, ids in per_image.items()}
    used = sorted({label_id for ids in per_image.values() for label_id in ids}, key=lambda pk: info[pk][0])
    label_map = [{"id": pk, "name": info[pk][0], "color": info[pk][1]} for pk in used]
    index = {pk: i for i, pk in enumerate(used)}
    return label_map, {image_id: [index[pk] for pk in ids] for image_id, ids in per_image.items()}


DETECTION_KINDS = ("box", "polygon", "mask")  # what has a bounding box worth learning; lines and points do not
SEGMENTATION_KINDS = ("polygon", "mask")  # what covers pixels: boxes would teach rectangles
GEOMETRIC_KINDS = ("box", "polygon")  # spec 004: the detection head's, beside a segmentation head
PAINTED_KINDS = ("mask",)  # and the segmentation head's: what the brush paints
LEARN_FROM = {"shapes": GEOMETRIC_KINDS, "painted": PAINTED_KINDS}  # the learn_from parameter's choices, but all


def learned_kinds(task: str, learn_from: str = "all") -> tuple[str, ...]:
    """The annotation kinds a detector or a segmentation model learns from: the task's, or those of them that
    `learn_from` names (spec 004's heads trained alone: rectangles and polygons, or painted masks)."""
    every = DETECTION_KINDS if task == Task.DETECTION else SEGMENTATION_KINDS
    return tuple(kind for kind in every if kind in LEARN_FROM.get(learn_from, every))


def _kinds_text(kinds: tuple[str, ...]) -> str:
    """("box", "polygon", "mask") -> "box, polygon or mask"."""
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"


def _among(chosen: list[int] | None) -> dict:
    return {} if chosen is None else {"image_id__in": chosen}


def _detection_targets(
    project: Project, chosen: list[int] | None, kinds: tuple[str, ...] = DETECTION_KINDS
) -> tuple[list[dict], dict[int, dict], int]:
    """The label map, each image's boxes ({"boxes": [[x, y, w, h, label index], ...]}, from objects of `kinds`) and
    how many degenerate boxes were clipped away. Images marked labeled with no object are negatives (no boxes):
    with no box at all, or (learning from some kinds only) no object at all."""
    from annotations.geometry import bbox

    rows = (
        Annotation.objects.filter(image__project=project, kind__in=kinds, **_among(chosen))
        .order_by("image_id", "id")
        .values_list("image_id", "image__width", "image__height", "kind", "geometry", "label_id", "label__name")
    )
    boxes: dict[int, list[tuple]] = defaultdict(list)
    names: dict[int, str] = {}
    colors = dict(project.labels.values_list("id", "color"))
    skipped = 0
    for image_id, width, height, kind, geometry, label_id, name in rows.iterator(chunk_size=2000):
        x, y, w, h = bbox(kind, geometry)
        left, top = max(0.0, float(x)), max(0.0, float(y))
        right, bottom = min(float(width), float(x) + float(w)), min(float(height), float(y) + float(h))
        if right - left < 1 or bottom - top < 1:  # zero area, or outside the image
            skipped += 1
            continue
        names[label_id] = name
        boxes[image_id].append(
            (round(left, 2), round(top, 2), round(right - left, 2), round(bottom - top, 2), label_id)
        )
    used = sorted(names, key=lambda pk: names[pk])
    index = {pk: i for i, pk in enumerate(used)}
    label_map = [{"id": pk, "name": names[pk], "color": colors.get(pk, BACKGROUND_COLOR)} for pk in used]
    targets = {image_id: {"boxes": [[*row[:4], index[row[4]]] for row in rows]} for image_id, rows in boxes.items()}
    # Learning from some kinds only, an image with objects of the others is not known to be empty.
    negatives = _negatives(project, chosen, targets, without_objects=kinds != DETECTION_KINDS)
    targets.update({image_id: {"boxes": []} for image_id in negatives})
    return label_map, targets, skipped


def _negatives(project: Project, chosen: list[int] | None, targets: dict, *, without_objects: bool = False) -> list:
    """Images marked labeled that have no target (and, `without_objects`, no annotation at all): negatives."""
    marked = ImageStatus.objects.filter(image__project=project, status=ImageStatus.Status.LABELED, **_among(chosen))
    marked = marked.exclude(image_id__in=list(targets))
    if without_objects:
        marked = marked.exclude(image__annotations__isnull=False)
    return list(marked.values_list("image_id", flat=True).distinct())


def _segmentation_targets(
    project: Project, chosen: list[int] | None, kinds: tuple[str, ...] = SEGMENTATION_KINDS
) -> tuple[list[dict], dict[int, dict]]:
    """The label map and each image's shapes ({"shapes": [[label index, kind, geometry], ...], "size": [height,
    width]}, in drawing order, in the upright image's pixels, which are `size`), from objects of `kinds`. Images
    marked labeled with no object at all are all background."""
    rows = (
        Annotation.objects.filter(image__project=project, kind__in=kinds, **_among(chosen))
        .order_by("image_id", "id")
        .values_list("image_id", "image__height", "image__width", "kind", "geometry", "label_id", "label__name")
    )
    shapes: dict[int, list[tuple]] = defaultdict(list)
    names: dict[int, str] = {}
    sizes: dict[int, list[int]] = {}
    for image_id, height, width, kind, geometry, label_id, name in rows.iterator(chunk_size=2000):
        names[label_id] = name
        shapes[image_id].append((label_id, kind, geometry))
        sizes[image_id] = [height, width]
    used = sorted(names, key=lambda pk: names[pk])
    index = {pk: i for i, pk in enumerate(used)}
    colors = dict(project.labels.values_list("id", "color"))
    label_map = [{"id": pk, "name": names[pk], "color": colors.get(pk, BACKGROUND_COLOR)} for pk in used]
    targets = {
        image_id: {
            "shapes": [[index[label_id], kind, geometry] for label_id, kind, geometry in found],
            "size": sizes[image_id],
        }
        for image_id, found in shapes.items()
    }
    # No object of any kind: an image with only boxes or lines is not known to be background.
    negatives = _negatives(project, chosen, targets, without_objects=True)
    targets.update({image_id: {"shapes": []} for image_id in negatives})
    return label_map, targets


def _heads_targets(project: Project, chosen: list[int] | None) -> tuple[list[dict], dict[int, dict], int]:
    """A detector with a segmentation head (spec 004): one label map over both, and each image's boxes from its
    rectangles and polygons, its painted masks as shapes, and which heads learn from it ({"boxes", "shapes",
    "boxed", "painted"}). The detection head learns from an image with rectangles or polygons, the segmentation head
    from one with paint, and both from one marked labeled with no object at all (nothing to find, all background);
    an image with only boxes teaches the segmentation head nothing and one with only paint teaches the detection
    head nothing, for their objects may be drawn the other way elsewhere."""
    box_map, boxed, skipped = _detection_targets(project, chosen, GEOMETRIC_KINDS)
    if not box_map:
        raise ValidationError(
            {"task": ["No image has a rectangle or polygon yet: draw some, or switch the detection head off."]}
        )
    paint_map, painted = _segmentation_targets(project, chosen, PAINTED_KINDS)
    if not paint_map:
        raise ValidationError(
            {"segmentation_head": ["No image has painted masks yet: paint some, or switch the segmentation head off."]}
        )
    label_map = sorted({label["id"]: label for label in [*box_map, *paint_map]}.values(), key=lambda x: x["name"])
    index = {label["id"]: i for i, label in enumerate(label_map)}
    from_boxes, from_paint = [index[label["id"]] for label in box_map], [index[label["id"]] for label in paint_map]
    targets = {}
    empty = set(_negatives(project, chosen, {}, without_objects=True))  # marked labeled, no object of any kind
    for image_id in sorted(set(boxed) | set(painted)):
        boxes, paint = boxed.get(image_id, {"boxes": []})["boxes"], painted.get(image_id)
        targets[image_id] = {
            "boxes": [[*row[:4], from_boxes[row[4]]] for row in boxes],
            "shapes": [
                [from_paint[label], kind, geometry] for label, kind, geometry in (paint or {"shapes": []})["shapes"]
            ],
            "boxed": bool(boxes) or image_id in empty,
            "painted": paint is not None,
        }
    # An image marked labeled with only image labels teaches neither head.
    targets = {pk: target for pk, target in targets.items() if target["boxed"] or target["painted"]}
    return label_map, targets, skipped


def _heads_views(
    targets: dict[int, dict], task: str, kinds: tuple[str, ...]
) -> list[tuple[dict[int, dict], str, tuple[str, ...]]]:
    """What each head learns from, and from which kinds, for the checks that every label trains: a detector with a
    segmentation head's targets as a detector's (its boxes) and as a segmentation model's (its painted shapes); any
    other's as they are."""
    if task != Task.DETECTION or not any("shapes" in t for t in targets.values()):
        return [(targets, task, kinds)]
    boxes = {pk: {"boxes": t["boxes"]} for pk, t in targets.items()}
    painted = {pk: {"shapes": t["shapes"]} for pk, t in targets.items()}
    return [(boxes, Task.DETECTION, GEOMETRIC_KINDS), (painted, Task.SEMANTIC, PAINTED_KINDS)]


def _object_labels(target, task: str) -> list[int]:
    """The label indices of an image's target: one per box or shape, or the image's labels."""
    if task == Task.DETECTION:
        return [row[4] for row in target["boxes"]] + [row[0] for row in target.get("shapes", ())]
    if task in SHAPE_TASKS:
        return [row[0] for row in target["shapes"]]
    return list(target)


def _objects_check(
    label_map: list[dict], targets: dict[int, dict], valid_images: set[int] | None, task: str, kinds: tuple[str, ...]
) -> None:
    """Every label needs an object (of `kinds`) to train on and, with a percentage split, one to validate on."""
    model = "detector" if task == Task.DETECTION else "segmentation model"
    if not label_map:
        every = DETECTION_KINDS if task == Task.DETECTION else SEGMENTATION_KINDS
        narrowed = "" if kinds == every else f" (it learns from {_kinds_text(kinds)} objects only: see learn_from)"
        raise ValidationError(
            {
                "task": [
                    f"No image has a {_kinds_text(kinds)} yet: draw some objects before training a {model}{narrowed}."
                ]
            }
        )
    if task in SHAPE_TASKS and len(label_map) > MAX_LABELS:
        raise ValidationError(
            {
                "task": [
                    f"{len(label_map)} labels have polygons or masks; a segmentation model learns at most {MAX_LABELS}."
                ]
            }
        )
    images_with = Counter(label_map[i]["name"] for t in targets.values() for i in set(_object_labels(t, task)))
    if valid_images is None:
        few = sorted(name for name, count in images_with.items() if count < 2)
        if few:
            raise ValidationError(
                {
                    "task": [
                        f"Label {name!r} is on only one image; a {model} needs each label on at least two images, "
                        "one to train on and one to validate on. Draw more, or delete the label's objects."
                        for name in few
                    ]
                }
            )
        return
    in_training = {
        label_map[i]["name"] for pk, t in targets.items() if pk not in valid_images for i in _object_labels(t, task)
    }
    present = {label_map[i]["name"] for t in targets.values() for i in _object_labels(t, task)}
    missing = sorted(name for name in present if name not in in_training)
    if missing:
        raise ValidationError(
            {
                "use_validation_set": [
                    f"Label {name!r} has {'boxes' if task == Task.DETECTION else 'shapes'} only on validation images: "
                    "there is none to train on."
                    for name in missing
                ]
            }
        )


@transaction.atomic
def dataset_version_create(
    *,
    project: Project,
    user,
    task: str,
    multi_label: bool,
    validation_percent: int,
    use_validation_set: bool,
    seed: int = 0,
    image_ids: list[int] | None = None,
    segmentation_head: bool = False,
    learn_from: str = "all",
) -> DatasetVersion:
    """Freeze the project's labelled images now (or those of `image_ids` that have labels: ML Mode's checklist);
    later labelling does not change this version. A detector or segmentation model learns from the objects of
    `learn_from` (learned_kinds)."""
    if task not in Task.values:
        raise ValidationError({"task": [f"Datasets for {task} are not available yet."]})
    chosen = None if image_ids is None else sorted(set(image_ids))
    if chosen is not None and not chosen:
        raise ValidationError({"images": ["Choose the images to train on."]})
    images = list(
        Image.objects.for_project(project)
        .filter(**({} if chosen is None else {"pk__in": chosen}))
        .order_by("id")
        .values_list("id", "name", "file", "sha256", "annotation_revision", "is_validation")
    )
    if chosen is not None and len(images) != len(chosen):
        raise ValidationError(
            {"images": [f"{len(chosen) - len(images)} of the chosen images are not in this project."]}
        )
    skipped = 0
    if task != Task.CLASSIFICATION:
        kinds = learned_kinds(task, learn_from)
        if task == Task.DETECTION and segmentation_head:
            label_map, targets, skipped = _heads_targets(project, chosen)
        elif task == Task.DETECTION:
            label_map, targets, skipped = _detection_targets(project, chosen, kinds)
        else:
            label_map, targets = _segmentation_targets(project, chosen, kinds)
        flagged = {row[0] for row in images if row[5]}
        for view, learner, learned in _heads_views(targets, task, kinds):
            _objects_check(label_map, view, flagged if use_validation_set else None, learner, learned)
    else:
        label_map, targets = _classification_targets(project, multi_label, chosen)
        if not label_map:
            raise ValidationError({"task": ["No image has a classification label yet: label some images first."]})
    if task == Task.CLASSIFICATION and len(label_map) == 1:
        background = [row for row in images if row[0] not in targets]
        if not background:
            raise ValidationError(
                {
                    "task": [
                        f"Only one label ({label_map[0]['name']}) is in use. A one-class model learns it against "
                        "'background' images: upload some images without labels, or label images with a second label."
                    ]
                }
            )
        if multi_label:  # a background image is simply one with no positive label
            targets.update({row[0]: [] for row in background})
        else:
            name = BACKGROUND if label_map[0]["name"] != BACKGROUND else f"not {BACKGROUND}"
            label_map.append({"id": None, "name": name, "color": BACKGROUND_COLOR})
            targets.update({row[0]: [1] for row in background})
    images = [row for row in images if row[0] in targets]

    if use_validation_set:
        valid = {i for i, row in enumerate(images) if row[5]}
        if not valid:
            raise ValidationError(
                {
                    "use_validation_set": [
                        "No labelled image is in the validation set: mark some with 'Add to validation set' in the grid "
                        "or the labeler, or validate on a percentage instead."
                    ]
                }
            )
    else:
        groups = [_group(targets[row[0]], task) for row in images]
        valid = stratified_validation(groups, validation_percent, seed)
    if task != Task.CLASSIFICATION and not use_validation_set:
        for view, learner, _ in _heads_views(targets, task, kinds):
            valid = _every_label_trains(images, view, valid, learner)
    if len(valid) == len(images):
        raise ValidationError(
            {"use_validation_set": ["Every labelled image is in the validation set; none is left to train on."]}
        )
    if not valid:
        raise ValidationError(
            {
                "validation_percent": [
                    f"Too few labelled images ({len(images)}) to hold any out for validation: label more images."
                ]
            }
        )

    number = (DatasetVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
    version = DatasetVersion.objects.create(
        project=project,
        number=number,
        task=task,
        multi_label=multi_label,
        labels=label_map,
        split_method=DatasetVersion.SplitMethod.USER if use_validation_set else DatasetVersion.SplitMethod.PERCENT,
        validation_percent=0 if use_validation_set else validation_percent,
        seed=seed,
        created_by=user,
    )
    items = [
        DatasetItem(
            dataset_version=version,
            image_id=pk,
            image_name=name,
            file=file,
            sha256=sha256,
            revision=revision,
            split=Split.VALID if i in valid else Split.TRAIN,
            targets=targets[pk],
        )
        for i, (pk, name, file, sha256, revision, _) in enumerate(images)
    ]
    DatasetItem.objects.bulk_create(items, batch_size=2000)
    version.counts = _counts(items, label_map, task)
    if skipped:
        version.counts["skipped_boxes"] = skipped
    version.save(update_fields=["counts"])
    return version


def _every_label_trains(images: list[tuple], targets: dict[int, dict], valid: set[int], task: str) -> set[int]:
    """Move a validation image back to training for any label that the split left with no training object."""
    valid = set(valid)
    training = {i for n, image in enumerate(images) if n not in valid for i in _object_labels(targets[image[0]], task)}
    for n in sorted(valid):
        labels = set(_object_labels(targets[images[n][0]], task))
        if labels - training:
            valid.discard(n)
            training |= labels
    return valid


def _group(target, task: str) -> tuple:
    """What the split stratifies by: the default label; for objects, the image's first label in the map (or none,
    for a negative)."""
    if task == Task.CLASSIFICATION:
        return tuple(target[:1])
    return tuple(sorted(set(_object_labels(target, task)))[:1])


def _counts(items: list[DatasetItem], label_map: list[dict], task: str) -> dict:
    """Images per split; per label, images (classification) or objects (detection, segmentation) per split. A
    detector with a segmentation head counts its boxes under "labels" and its painted masks under "painted"."""
    heads = task == Task.DETECTION and any("shapes" in item.targets for item in items)
    per_label = {label["name"]: {"train": 0, "valid": 0} for label in label_map}
    painted = {label["name"]: {"train": 0, "valid": 0} for label in label_map}
    for item in items:
        indices = [row[4] for row in item.targets["boxes"]] if heads else _object_labels(item.targets, task)
        for index in indices:
            per_label[label_map[index]["name"]][item.split] += 1
        for index in [row[0] for row in item.targets["shapes"]] if heads else ():
            painted[label_map[index]["name"]][item.split] += 1
    splits = Counter(item.split for item in items)
    counts = {"train": splits[Split.TRAIN], "valid": splits[Split.VALID], "labels": per_label}
    return {**counts, "painted": painted} if heads else counts
