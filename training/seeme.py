"""The SeeMe.ai SDK's training requests and models (/api/v1/, docs/seeme.md).

A training request is a Sightline training job on a dataset version (a project): the task follows from the version
(boxes mean detection), its parameters are the defaults (a server may set its own in
SIGHTLINE_SEEME_TRAINING_PARAMETERS), and it validates on the `valid` split when that has images. A SeeMe model is a
Sightline trained model, whose one version is itself."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponse

from projects.models import Image
from projects.permissions import access_project, projects_for_user
from projects.seeme.protocol import Refused, body_json, string_id
from projects.seeme.transfers import has_boxes
from projects.seeme.views import version_access
from training.models import ModelVersion, Task, TrainingJob

APPLICATION = {Task.CLASSIFICATION: "image_classification", Task.DETECTION: "object_detection"}


def _at(value) -> str | None:
    return value.isoformat() if value else None


def request_body(job: TrainingJob) -> dict:
    model = getattr(job, "model_version", None)  # the reverse one-to-one, selected with the job
    return {
        "id": str(job.pk),
        "created_at": _at(job.created_at),
        "updated_at": _at(job.finished_at or job.started_at or job.created_at),
        "user_id": str(job.created_by_id or ""),
        "dataset_id": str(job.project.seeme_dataset_id or ""),
        "dataset_version_id": str(job.project_id),
        "application_id": APPLICATION.get(job.task, job.task),
        "status": job.status,
        "error": job.error,
        "started": job.started_at is not None,
        "finished": job.status in ("finished", "failed", "cancelled"),
        "model_id": str(model.pk) if model else "",
        "model_version_id": str(model.pk) if model else "",
    }


def training_requests(request):
    """The training jobs of the dataset versions the user may see, newest first."""
    visible = projects_for_user(request.user).filter(seeme_dataset__isnull=False)
    jobs = TrainingJob.objects.filter(project__in=visible).select_related("project", "model_version")
    jobs = jobs.order_by("-created_at", "-id")
    return [request_body(job) for job in jobs]


def training_request_create(request):
    from training.services import training_job_start

    data = body_json(request)
    project = version_access(
        request.user, data.get("dataset_id", ""), data.get("dataset_version_id", ""), "train_project"
    )
    task = Task.DETECTION if has_boxes(project) else Task.CLASSIFICATION
    parameters = dict(settings.SIGHTLINE_SEEME_TRAINING_PARAMETERS.get(task, {}))
    if Image.objects.filter(project=project, is_validation=True).exists():
        parameters["use_validation_set"] = True  # the valid split is the validation set
    # The model is named as the web app names it (model_name_clean), unique in the project.
    job = training_job_start(project=project, user=request.user, task=task, parameters=parameters)
    job.refresh_from_db()
    return request_body(job)


def _model(user, model_id) -> ModelVersion:
    model = ModelVersion.objects.filter(pk=string_id(model_id)).select_related("project").first()
    if model is None:
        raise Http404("No such model.")
    try:
        access_project(user, model.project_id)
    except Http404:
        raise Http404("No such model.") from None
    return model


def model_body(model: ModelVersion, user) -> dict:
    scores = ((model.metrics or {}).get("best") or {}).get("valid") or {}
    accuracy = scores.get("accuracy", scores.get("map50")) or 0
    return {
        "id": str(model.pk),
        "created_at": _at(model.created_at),
        "updated_at": _at(model.created_at),
        "name": model.name,
        "description": "",
        "active_version_id": str(model.pk),
        "classes": "\n".join(model.labels),
        "accuracy": accuracy,
        "user_id": str(model.project.owner_id),
        "can_inference": True,
        "kind": APPLICATION.get(model.task, model.task),
        "has_logo": False,
        "logo": "",
        "public": False,
        "config": "",
        "application_id": APPLICATION.get(model.task, model.task),
        "has_ml_model": True,
        "has_onnx_model": False,
        "has_tflite_model": False,
        "has_labels_file": True,
        "shared_with_me": model.project.owner_id != user.pk,
        "auto_convert": True,
        "privacy_enabled": False,
        "dataset_version_id": str(model.project_id),
        "training_request_id": str(model.job_id or ""),
    }


def version_body(model: ModelVersion, user) -> dict:
    return {**model_body(model, user), "model_id": str(model.pk), "version": "1", "version_number": 1}


def models_list(request):
    visible = projects_for_user(request.user)
    found = ModelVersion.objects.filter(project__in=visible).select_related("project").order_by("id")
    return [model_body(model, request.user) for model in found]


def model_get(request, model_id):
    return model_body(_model(request.user, model_id), request.user)


def model_versions(request, model_id):
    return [version_body(_model(request.user, model_id), request.user)]


def model_version_get(request, model_id, version_id):
    model = _model(request.user, model_id)
    if string_id(version_id) != model.pk:
        raise Http404("No such model version.")
    return version_body(model, request.user)


def model_download(request, model_id, asset, version_id=None):
    """`labels` (one name per line); other files (onnx, pkl) are not served here yet."""
    model = _model(request.user, model_id)
    if version_id is not None and string_id(version_id) != model.pk:
        raise Http404("No such model version.")
    if asset not in ("labels", "names", "txt"):
        raise Refused(f"The {asset!r} file is not served through this API yet; labels is.", 404)
    return HttpResponse("".join(f"{name}\n" for name in model.labels), content_type="text/plain; charset=utf-8")
