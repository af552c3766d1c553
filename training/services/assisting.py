"""Model-assisted labeling: an image's predictions made now, accepted as annotations, or cleared.

Predictions stay apart from annotations (training.models.Prediction) until a person accepts them. Accepting goes
through the image's annotation document and its revision, as any save does: on a stale revision it is refused with
the current document (StaleRevision, a 409), never merged.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from annotations.models import Annotation
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
    checkpoint = checkpoint or model.predict_with
    if checkpoint not in Checkpoint.values:
        raise ValidationError({"checkpoint": ["Use best or last."]})
    return images_predict_store(model=model, checkpoint=checkpoint, images=[image], nms=nms)


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
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValidationError({"threshold": ["Give a number from 0 to 1."]})
    return list(rows.filter(score__gte=threshold))


ACCEPT_MANY_MAX_IMAGES = 2000


def predictions_accept_many(*, project, user, image_ids: list[int], threshold) -> dict:
    """The grid's bulk accept: on each chosen image of the project, every prediction scoring at least `threshold`
    becomes an annotation, each image in its own transaction at its current revision. Returns the counts; an image
    saved, deleted or made invalid in between is skipped and counted."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValidationError({"threshold": ["Give a number from 0 to 1."]})
    if len(image_ids) > ACCEPT_MANY_MAX_IMAGES:
        raise ValidationError({"images": [f"Accept on at most {ACCEPT_MANY_MAX_IMAGES:,} images at a time."]})
    images = Image.objects.filter(project=project, pk__in=image_ids, predictions__score__gte=threshold).distinct()
    accepted = changed = skipped = 0
    for image in images.order_by("id"):
        revision = Image.objects.filter(pk=image.pk).values_list("annotation_revision", flat=True).first()
        if revision is None:  # deleted meanwhile
            continue
        try:
            done = predictions_accept(image=image, user=user, revision=revision, threshold=threshold)
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


def prelabel_start(*, model: ModelVersion, image_ids: list[int], user, checkpoint: str | None = None) -> Job:
    """Queue pre-labeling images with the model: the prediction job (training.services.predicting)."""
    checkpoint = checkpoint or model.predict_with
    if checkpoint not in Checkpoint.values:
        raise ValidationError({"checkpoint": ["Use best or last."]})
    if len(image_ids) > PREDICT_JOB_MAX_IMAGES:
        raise ValidationError(
            {"images": [f"{len(image_ids)} images chosen; pre-label at most {PREDICT_JOB_MAX_IMAGES} at a time."]}
        )
    return prediction_job_start(model=model, checkpoint=checkpoint, image_ids=image_ids, user=user)
