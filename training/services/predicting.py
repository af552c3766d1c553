"""Predicting stored images of a project as a job (the grid's "Predict selected"): the worker writes Prediction rows,
kept apart from annotations, and the predict page shows them."""

from __future__ import annotations

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction

from jobs.models import Job
from jobs.runner import JobFailed
from jobs.services import job_cancel, job_submit
from projects.files import stored_bytes
from projects.models import Image, Label
from training import predictions
from training.models import SHAPE_TASKS, ModelVersion, Prediction, Task

PREDICTION_KIND = "prediction"
PREDICT_JOB_MAX_IMAGES = 500
PREDICT_CHUNK = 8


def prediction_job_start(*, model: ModelVersion, checkpoint: str, image_ids: list[int], user) -> Job:
    """Queue predicting images of the model's project (ids of other projects are ignored)."""
    wanted = list(dict.fromkeys(image_ids))
    if len(wanted) > PREDICT_JOB_MAX_IMAGES:
        raise ValidationError({"image": [f"Predict at most {PREDICT_JOB_MAX_IMAGES} images at a time."]})
    found = list(
        Image.objects.filter(project_id=model.project_id, pk__in=wanted).order_by("id").values_list("pk", flat=True)
    )
    if not found:
        raise ValidationError({"image": ["Select images in the grid first."]})
    job = Job.objects.create(
        kind=PREDICTION_KIND,
        project_id=model.project_id,
        created_by=user,
        payload={"model_id": model.pk, "checkpoint": checkpoint, "image_ids": found},
    )
    return job_submit(job)


def prediction_jobs_cancel(*, model: ModelVersion) -> None:
    """Cancel the model's queued and running prediction jobs (before the model is deleted)."""
    for job in Job.objects.active().filter(kind=PREDICTION_KIND, payload__model_id=model.pk):
        job_cancel(job=job)


def prediction_job_execute(job, context) -> str:
    """The prediction kind's work (jobs.registry): a few images at a time, read and predicted outside any
    transaction; then, in one short transaction, each image's earlier predictions by this model are replaced by the
    new ones, for the images, labels and model that still exist."""
    model = ModelVersion.objects.select_related("dataset_version").filter(pk=job.payload["model_id"]).first()
    if model is None:
        raise JobFailed("The model was deleted before its predictions ran.")
    checkpoint = job.payload["checkpoint"]
    images = list(Image.objects.filter(project_id=job.project_id, pk__in=job.payload["image_ids"]).order_by("id"))
    done = stored = 0
    for start in range(0, len(images), PREDICT_CHUNK):
        context.check()
        stored += images_predict_store(model=model, checkpoint=checkpoint, images=images[start : start + PREDICT_CHUNK])
        done = min(start + PREDICT_CHUNK, len(images))
        context.progress(done / len(images), f"Predicted {done} of {len(images)} images")
    what = (
        "boxes and masks"
        if model.segmentation_head
        else {Task.DETECTION: "boxes", Task.INSTANCE: "masks"}.get(model.task)
    )
    found = f", {stored} {what} scoring at least {predictions.BOX_FLOOR:g}" if what else ""
    return f"Predicted {len(images)} image{'s' if len(images) != 1 else ''} with {model.name}{found}."


def images_predict_store(
    *, model: ModelVersion, checkpoint: str, images: list[Image], nms: float = predictions.NMS_DEFAULT
) -> int:
    """Predict images (read and run outside any transaction), then store the answers: the rows written. Images
    deleted meanwhile are skipped."""
    chunk, data = [], []
    for image in images:
        try:
            data.append(stored_bytes(image.file.name))
        except OSError:  # deleted since it was chosen
            continue
        chunk.append(image)
    if model.task == Task.DETECTION:
        answers = predictions.boxes_predict(
            model=model, checkpoint=checkpoint, images=data, threshold=predictions.BOX_FLOOR, nms=nms
        )
    elif model.task == Task.INSTANCE:
        answers = predictions.instances_predict(
            model=model, checkpoint=checkpoint, images=data, threshold=predictions.BOX_FLOOR, nms=nms, polygons=False
        )
    elif model.task == Task.SEMANTIC:
        answers = predictions.masks_predict(model=model, checkpoint=checkpoint, images=data)
    else:
        answers = predictions.images_predict(model=model, checkpoint=checkpoint, images=data)
    return _store(model, checkpoint, chunk, answers, model.label_ids())


def _stored_shape(task: str, item: dict) -> tuple[str, dict]:
    """A prediction row's kind and geometry from an answer of the predict endpoint's (a detector with a segmentation
    head answers masks too)."""
    if task == Task.DETECTION and "rle" not in item:
        return Prediction.Kind.BOX, {k: item[k] for k in ("x", "y", "width", "height")}
    if task in SHAPE_TASKS or "rle" in item:
        return Prediction.Kind.MASK, {"rle": item["rle"]}
    return Prediction.Kind.LABEL, {}


def _store(model, checkpoint: str, images: list, answers: list, label_ids: dict) -> int:
    """Replace the images' predictions by any model of this one's task (either checkpoint of this model, or an older
    model) with the answers: an image carries one model's suggestions of each kind. The rows written (a mask, one per
    label, counts whatever its score)."""
    with transaction.atomic():
        # NO KEY UPDATE: an accept inserting annotations that point at this model (KEY SHARE) is not blocked, so the
        # two cannot deadlock (an accept holds its image the same way while this inserts predictions of it).
        if not ModelVersion.objects.select_for_update(no_key=True).filter(pk=model.pk).exists():
            raise JobFailed("The model was deleted while its predictions ran.")
        alive_images = set(Image.objects.filter(pk__in=[i.pk for i in images]).values_list("pk", flat=True))
        alive_labels = set(Label.objects.filter(pk__in=label_ids.values()).values_list("pk", flat=True))
        rows = []
        for image, answer in zip(images, answers, strict=True):
            if image.pk not in alive_images:
                continue
            for item in answer:
                label = label_ids.get(item["label"])
                if label not in alive_labels:  # deleted since the model was trained
                    continue
                kind, geometry = _stored_shape(model.task, item)
                rows.append(
                    Prediction(
                        model_version=model,
                        checkpoint=checkpoint,
                        image=image,
                        kind=kind,
                        label_id=label,
                        geometry=geometry,
                        score=min(1.0, max(0.0, item["score"])),
                    )
                )
        # A detector with a segmentation head replaces a semantic model's masks too, as it writes that kind of mask.
        tasks = [model.task, *([Task.SEMANTIC] if model.segmentation_head else [])]
        Prediction.objects.filter(image_id__in=alive_images, model_version__task__in=tasks).delete()
        Prediction.objects.bulk_create(rows)
    return len(rows)


def predicted_results(*, model: ModelVersion, checkpoint: str, image_ids: list[int]) -> list[dict]:
    """The predict page's results from stored predictions: a detector's boxes in their labels' colours, or a
    classifier's labels ranked as the predict endpoint ranks them (labels without a row left out)."""
    images = list(Image.objects.filter(project_id=model.project_id, pk__in=image_ids).order_by("id"))
    stored: dict[int, list] = {}
    for row in Prediction.objects.filter(model_version=model, image__in=images).select_related("label"):
        stored.setdefault(row.image_id, []).append(row)
    results = []
    for image in images:
        rows = stored.get(image.pk, [])
        if model.task in SHAPE_TASKS:
            masks = [
                predictions.mask_drawn(
                    {"label": r.label.name, "score": r.score, "rle": r.geometry["rle"], "box": _box(r)}, r.label.color
                )
                for r in rows
            ]
            results.append(
                {
                    "name": image.name,
                    "source": f"/api/images/{image.pk}/file/",
                    "width": image.width,
                    "height": image.height,
                    "masks": masks,
                    "text_size": predictions.text_size(image.width, image.height),
                }
            )
        elif model.task == Task.DETECTION:
            boxes = [
                {"label": r.label.name, "score": r.score, "color": r.label.color, **r.geometry}
                for r in rows
                if r.kind == Prediction.Kind.BOX
            ]
            masks = [  # a segmentation head's
                predictions.mask_drawn(
                    {"label": r.label.name, "score": r.score, "rle": r.geometry["rle"], "box": _box(r)}, r.label.color
                )
                for r in rows
                if r.kind == Prediction.Kind.MASK
            ]
            source = f"/api/images/{image.pk}/file/"
            size = predictions.text_size(image.width, image.height)
            results.append(
                {
                    "name": image.name,
                    "source": source,
                    "width": image.width,
                    "height": image.height,
                    "boxes": boxes,
                    "masks": masks,
                    "text_size": size,
                }
            )
        else:
            scores = {r.label.name: r.score for r in rows}
            every = np.array([scores.get(name, 0.0) for name in model.labels])
            ranked = [p for p in predictions.predictions_rank(model, checkpoint, every) if p["label"] in scores]
            results.append({"name": image.name, "image": image, "predictions": ranked})
    return results


def _box(row: Prediction) -> dict:
    from annotations.geometry import bbox

    x, y, width, height = bbox("mask", row.geometry)
    return {"x": x, "y": y, "width": width, "height": height}
