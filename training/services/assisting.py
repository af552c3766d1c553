"""Model-assisted labeling: an image's predictions made now, accepted as annotations, or cleared.

Predictions stay apart from annotations (training.models.Prediction) until a person accepts them. Accepting goes
through the image's annotation document and its revision, as any save does: on a stale revision it is refused with
the current document (StaleRevision, a 409), never merged.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from annotations.filters import FILTER_KEYS
from annotations.models import Annotation
from annotations.selectors import filtered_images
from annotations.services.documents import StaleRevision, document_read, document_save
from jobs.models import Job
from projects.models import Image
from training.models import Checkpoint, ModelVersion, Prediction
from training.predictions import NMS_DEFAULT
from training.services.predicting import PREDICT_JOB_MAX_IMAGES, images_predict_store, prediction_job_start

# A prediction's kind -> the kind of annotation it becomes (an image label becomes a classification).
SHAPE_KINDS = {
    Prediction.Kind.BOX: Annotation.Kind.BOX,
    Prediction.Kind.POLYGON: Annotation.Kind.POLYGON,
    Prediction.Kind.MASK: Annotation.Kind.MASK,
}


def image_predictions(*, image: Image, model_id: int | None = None):
    """The image's predictions, best first; only one model's when `model_id` is given."""
    rows = Prediction.objects.filter(image=image).select_related("label", "model_version")
    if model_id is not None:
        rows = rows.filter(model_version_id=model_id)
    return rows.order_by("-score", "id")


def image_predict(*, model: ModelVersion, image: Image, checkpoint: str | None = None, nms: float = NMS_DEFAULT) -> int:
    """Run the model on the image now and store its predictions (replacing the image's earlier ones of the same
    task); the rows stored. The model runs outside any transaction."""
    return images_predict_store(model=model, checkpoint=_checkpoint(model, checkpoint), images=[image], nms=nms)


def _checkpoint(model: ModelVersion, checkpoint: str | None) -> str:
    """The checkpoint asked for, or the one the model predicts with."""
    checkpoint = checkpoint or model.predict_with
    if checkpoint not in Checkpoint.values:
        raise ValidationError({"checkpoint": ["Use best or last."]})
    return checkpoint


def _score_check(value, field: str = "threshold") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValidationError({field: ["Give a number from 0 to 1."]})


def predictions_accept(
    *, image: Image, user, revision, ids: list | None = None, threshold: float | None = None, model_id=None
) -> dict:
    """Turn chosen predictions into annotations (source `prediction`, with their score and model) and delete them,
    in one transaction with the annotation save. Chosen by `ids`, or as every prediction scoring at least
    `threshold` (of one model, given `model_id`). Returns the new revision and the counts."""
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise ValidationError({"revision": ["Send the revision the image was read at (an integer)."]})
    with transaction.atomic():
        locked = Image.objects.select_for_update(no_key=True).filter(pk=image.pk).first()
        if locked is None:
            raise ValidationError({"image": ["The image was deleted."]})
        if locked.annotation_revision != revision:
            raise StaleRevision(document_read(image=locked))
        chosen = _chosen(locked, ids=ids, threshold=threshold, model_id=model_id)
        if not chosen:  # nothing to accept: no save, no new revision
            return {"revision": revision, "accepted": 0, "shapes": 0, "labels": 0}
        document = document_read(image=locked)
        shapes = document["shapes"]
        classifications = [{"label": c["label"], "default": c["default"]} for c in document["classifications"]]
        present = {c["label"] for c in classifications}
        models, labels_added = {}, 0
        for prediction in chosen:
            if prediction.kind == Prediction.Kind.LABEL:
                if prediction.label_id not in present:
                    classifications.append({"label": prediction.label_id, "default": not classifications})
                    present.add(prediction.label_id)
                    labels_added += 1
                continue
            models[len(shapes)] = prediction.model_version_id
            shapes.append(
                {
                    "label": prediction.label_id,
                    "kind": SHAPE_KINDS[prediction.kind],
                    "geometry": prediction.geometry,
                    "source": Annotation.Source.PREDICTION,
                    "score": prediction.score,
                }
            )
        new_revision = document_save(
            image=locked,
            user=user,
            revision=revision,
            classifications=classifications,
            shapes=shapes,
            models=models,
        )
        Prediction.objects.filter(pk__in=[p.pk for p in chosen]).delete()
    return {"revision": new_revision, "accepted": len(chosen), "shapes": len(models), "labels": labels_added}


def _chosen(image: Image, *, ids, threshold, model_id) -> list[Prediction]:
    if (ids is None) == (threshold is None):
        raise ValidationError({"ids": ['Send either "ids" (a list of prediction ids) or "threshold" (0 to 1).']})
    rows = Prediction.objects.select_for_update().filter(image=image).order_by("-score", "id")
    if model_id is not None:
        rows = rows.filter(model_version_id=model_id)
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValidationError({"ids": ["Send a list of prediction ids."]})
        found = list(rows.filter(pk__in=ids))
        missing = sorted(set(ids) - {p.pk for p in found})
        if missing:
            raise ValidationError(
                {"ids": [f"Not predictions of this image: {', '.join(map(str, missing))} (cleared or accepted?)."]}
            )
        return found
    _score_check(threshold)
    return list(rows.filter(score__gte=threshold))


ACCEPT_MANY_MAX_IMAGES = 2000


def predictions_accept_many(*, project, user, image_ids: list[int], threshold) -> dict:
    """The grid's bulk accept: on each chosen image of the project, every prediction scoring at least `threshold`
    becomes an annotation, each image in its own transaction at its current revision. Returns the counts; an image
    saved, deleted or made invalid in between is skipped and counted."""
    _score_check(threshold)
    if len(image_ids) > ACCEPT_MANY_MAX_IMAGES:
        raise ValidationError({"images": [f"Accept on at most {ACCEPT_MANY_MAX_IMAGES:,} images at a time."]})
    images = Image.objects.filter(project=project, pk__in=image_ids, predictions__score__gte=threshold).distinct()
    accepted = changed = skipped = 0
    for image in images.only("id", "annotation_revision").order_by("id"):
        try:
            done = predictions_accept(image=image, user=user, revision=image.annotation_revision, threshold=threshold)
        except (StaleRevision, ValidationError):  # saved or deleted in between, or a shape no longer valid
            skipped += 1
            continue
        accepted += done["accepted"]
        changed += 1
    return {"images": changed, "accepted": accepted, "skipped": skipped}


def predictions_clear(*, image: Image, model_id: int | None = None) -> int:
    """Delete the image's predictions (one model's, given `model_id`); how many."""
    rows = Prediction.objects.filter(image=image)
    if model_id is not None:
        rows = rows.filter(model_version_id=model_id)
    return rows.delete()[0]


def prelabel_start(
    *,
    model: ModelVersion,
    user,
    image_ids: list[int] | None = None,
    filters: dict | None = None,
    checkpoint: str | None = None,
) -> Job:
    """Queue pre-labeling images with the model, the prediction job (training.services.predicting): the images
    given by id, or those the grid's filters match (newest first, as the grid lists them)."""
    if (image_ids is None) == (filters is None):
        raise ValidationError({"images": ['Send either "images" (ids) or "filter" (the grid\'s filters).']})
    if filters is not None:
        image_ids = _filtered_ids(model.project, user, filters)
    return prediction_job_start(model=model, checkpoint=_checkpoint(model, checkpoint), image_ids=image_ids, user=user)


def _filtered_ids(project, user, filters: dict) -> list[int]:
    """The ids the filters match, one more than a job takes at most (so prediction_job_start refuses too many)."""
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise ValidationError({"filter": [f"Unknown filter {', '.join(unknown)}; use {', '.join(FILTER_KEYS)}."]})
    matching = filtered_images(project=project, user=user, filters=filters).order_by("-id")
    ids = list(matching.values_list("id", flat=True)[: PREDICT_JOB_MAX_IMAGES + 1])
    if not ids:
        raise ValidationError({"filter": ["No image matches the filter."]})
    return ids
