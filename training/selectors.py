"""Reads of training rows through the permission chokepoint: an object in a project you may not see is a 404."""

from __future__ import annotations

from django.http import Http404

from projects.permissions import access_child, access_project
from training.models import Checkpoint, ModelVersion, TrainingJob


def job_get(*, user, job_id: int, perm: str = "view_project", project_id: int | None = None) -> TrainingJob:
    job = TrainingJob.objects.select_related("dataset_version").filter(pk=job_id).first()
    return access_child(user, job, perm, "No such training job.", project_id=project_id)


def model_get(*, user, model_id: int, perm: str = "view_project", project_id: int | None = None) -> ModelVersion:
    """The model, if `user` holds `perm` on its project (and it is in `project_id`, when the URL names one)."""
    model = ModelVersion.objects.select_related("job", "dataset_version").filter(pk=model_id).first()
    return access_child(user, model, perm, "No such model.", project_id=project_id)


def model_by_name(*, user, project_id: int, name: str, perm: str = "view_project") -> ModelVersion:
    project = access_project(user, project_id, perm)
    model = ModelVersion.objects.filter(project=project, name=name).first()  # predicting reads none of its relations
    if model is None:
        raise Http404(f"This project has no model named {name!r}.")
    model.project = project
    return model


def assist_choices(*, project) -> list[dict]:
    """Model Assist's picker: each trained model of the project with each checkpoint, the one it predicts with first."""
    choices = []
    for model in ModelVersion.objects.filter(project=project).only("id", "name", "task", "predict_with", "job_id"):
        if model.is_loaded:  # one checkpoint
            choices.append({"value": f"{model.pk}:{Checkpoint.BEST}", "text": f"{model.name} · {model.task} · loaded"})
            continue
        for checkpoint in sorted(Checkpoint.values, key=lambda c: c != model.predict_with):
            choices.append({"value": f"{model.pk}:{checkpoint}", "text": f"{model.name} · {model.task} · {checkpoint}"})
    return choices


def ml_panel(*, project) -> dict:
    """ML Mode's statistics (spec 004: annotated images, total annotations, model status) and what its training
    settings offer: a free model name, the backbones and whether this server has their pretrained weights."""
    from annotations.filters import has_any_label
    from annotations.models import Annotation
    from projects.models import Image
    from training.ml.backbones import ML_MODE_BACKBONES, weights_file

    names = list(ModelVersion.objects.filter(project=project).values_list("name", flat=True))  # newest first
    number = 1
    while f"ML model {number}" in names:
        number += 1
    return {
        "name": f"ML model {number}",
        "annotated": Image.objects.for_project(project).filter(has_any_label()).count(),
        "annotations": Annotation.objects.filter(image__project=project).count(),
        "model": names[0] if names else None,
        "backbones": [{"name": name, "pretrained": weights_file(name) is not None} for name in ML_MODE_BACKBONES],
        "image_sizes": (224, 320, 416, 512, 640),
    }


TRAINING_IMAGES_SHOWN = 5000


def training_images(*, project) -> dict:
    """ML Training Settings' checklist (spec 004): each image with its state. trained: in the newest trained
    model's dataset; labeled: has labels, not trained on yet; unlabeled: no label. At most TRAINING_IMAGES_SHOWN,
    labelled ones first."""
    from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, Value

    from annotations.filters import has_any_label
    from annotations.models import ImageStatus
    from projects.models import Image
    from training.models import DatasetItem

    newest = ModelVersion.objects.filter(project=project, dataset_version__isnull=False).first()
    trained = (
        Exists(DatasetItem.objects.filter(dataset_version_id=newest.dataset_version_id, image=OuterRef("pk")))
        if newest
        else Value(False, output_field=BooleanField())
    )
    # Labelled: any label, or marked labeled with nothing on it (a detector's negative example).
    marked = Exists(ImageStatus.objects.filter(image=OuterRef("pk"), status=ImageStatus.Status.LABELED))
    rows = (
        Image.objects.for_project(project)
        .annotate(labeled=ExpressionWrapper(has_any_label() | Q(marked), output_field=BooleanField()), trained=trained)
        .order_by("-labeled", "name", "id")
        .values_list("id", "name", "labeled", "trained")
    )
    images = [
        {"id": pk, "name": name, "state": "trained" if labeled and in_model else "labeled" if labeled else "unlabeled"}
        for pk, name, labeled, in_model in rows[:TRAINING_IMAGES_SHOWN]
    ]
    total = Image.objects.for_project(project).count()
    return {"images": images, "total": total, "model": newest.name if newest else None}


INFERENCES_SHOWN = 10


def inference_usage(*, model: ModelVersion) -> dict:
    """How the model was used through the SeeMe API (spec 002 tracks a deployment's usage): the count, those
    reported wrong, the latest, and the id a script predicts with (its SeeMe model's, or its own)."""
    from django.db.models import Count, Q

    from training.models import Inference, Task

    rows = Inference.objects.filter(model_version=model)
    counts = rows.aggregate(count=Count("id"), reported=Count("id", filter=Q(error_reported=True)))
    seeme = getattr(model, "seeme_version", None)
    return {
        **counts,
        "latest": list(rows.select_related("user")[:INFERENCES_SHOWN]),
        "boxes": model.task != Task.CLASSIFICATION,
        "seeme_id": seeme.seeme_model_id if seeme else model.pk,
    }
