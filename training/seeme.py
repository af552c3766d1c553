"""The SeeMe.ai SDK's training requests and models (/api/v1/, docs/seeme.md).

A training request is a Sightline training job on a dataset version (a project): the task follows from the version
(boxes mean detection), its parameters are the defaults (a server may set its own in
SIGHTLINE_SEEME_TRAINING_PARAMETERS), and it validates on the `valid` split when that has images. A SeeMe model is a
Sightline trained model, whose one version is itself."""

from __future__ import annotations

import time

from django.conf import settings
from django.http import Http404, HttpResponse

from projects.files import stored_response
from projects.models import Image, Split
from projects.permissions import access_child, access_project, projects_for_user
from projects.seeme.protocol import Refused, body_json, query_flag, string_id
from projects.seeme.transfers import has_boxes
from projects.seeme.views import LOGO_TYPES, logo_name, logo_response, logo_store, version_access
from training import bundles, predictions
from training.models import Inference, ModelVersion, SeemeModel, SeemeVersion, Task, TrainingJob
from training.services import seeme as seeme_services

APPLICATION = {Task.CLASSIFICATION: "image_classification", Task.DETECTION: "object_detection"}
LABEL_FILES = ("labels", "names", "txt")  # the file of label names, under each name the SDK asks for it
TEST_SPLIT = "test"  # SeeMe's held-out split: a training request leaves its images out


def _at(value) -> str | None:
    return value.isoformat() if value else None


def _made(job: TrainingJob) -> ModelVersion | None:
    return getattr(job, "model_version", None)  # the reverse one-to-one, selected with the job


def request_body(job: TrainingJob, bundling: set[tuple[int, str]] = frozenset()) -> dict:
    """The request as the SDK polls it. A trained model whose files (the bundle of the checkpoint it predicts with,
    which the request asked for) are still being built reads as running, so a script that waits for `finished` can
    download them at once."""
    model = _made(job)
    building = model is not None and (model.pk, model.predict_with) in bundling
    status = "running" if building and job.status == "finished" else job.status
    return {
        "id": str(job.pk),
        "created_at": _at(job.created_at),
        "updated_at": _at(job.finished_at or job.started_at or job.created_at),
        "user_id": str(job.created_by_id or ""),
        "dataset_id": str(job.project.seeme_dataset_id or ""),
        "dataset_version_id": str(job.project_id),
        "application_id": APPLICATION.get(job.task, job.task),
        "status": status,
        "error": job.error,
        "started": job.started_at is not None,
        "finished": status in ("finished", "failed", "cancelled"),
        "model_id": str(model.pk) if model else "",
        "model_version_id": str(model.pk) if model else "",
    }


def training_requests(request):
    """The training jobs of the dataset versions the user may see, newest first; the SDK's filters
    `applicationId`, `started` and `finished` narrow them."""
    started, finished = query_flag(request, "started"), query_flag(request, "finished")
    visible = projects_for_user(request.user).filter(seeme_dataset__isnull=False)
    jobs = TrainingJob.objects.filter(project__in=visible).select_related("project", "model_version")
    if request.GET.get("applicationId"):
        tasks = [task for task, application in APPLICATION.items() if application == request.GET["applicationId"]]
        jobs = jobs.filter(task__in=tasks)
    if started is not None:
        jobs = jobs.filter(started_at__isnull=not started)
    jobs = list(jobs.order_by("-created_at", "-id"))
    bundling = bundles.models_bundling(_made(job).pk for job in jobs if _made(job))
    bodies = (request_body(job, bundling) for job in jobs)
    return [body for body in bodies if finished is None or body["finished"] == finished]


def _with_bundling(job: TrainingJob) -> dict:
    return request_body(job, bundles.models_bundling([_made(job).pk] if _made(job) else []))


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
    # The test split is held out: its images train only when another split (or valid) has them too.
    held_out = set(
        Image.objects.filter(project=project, splits__name=TEST_SPLIT, is_validation=False)
        .exclude(splits__in=Split.objects.filter(project=project).exclude(name=TEST_SPLIT))
        .values_list("pk", flat=True)
    )
    images = None
    if held_out:
        images = list(Image.objects.filter(project=project).exclude(pk__in=held_out).values_list("pk", flat=True))
        if not images:
            raise Refused("Every image is in the test split, which training holds out: put some in train.")
    # The model is named as the web app names it (model_name_clean), unique in the project.
    multi_label = task == Task.CLASSIFICATION and project.seeme_dataset.multi_label  # the dataset's setting
    job = training_job_start(
        project=project,
        user=request.user,
        task=task,
        multi_label=multi_label,
        parameters=parameters,
        images=images,
        bundle_when_done=True,
    )
    job.refresh_from_db()
    return request_body(job)


def _training_request(user, request_id, perm: str) -> TrainingJob:
    job = (
        TrainingJob.objects.filter(pk=string_id(request_id), project__seeme_dataset__isnull=False)
        .select_related("project", "model_version")
        .first()
    )
    return access_child(user, job, perm, "No such training request.")


def training_request_get(request, request_id):
    return _with_bundling(_training_request(request.user, request_id, "view_project"))


def training_request_update(request, request_id):
    """The SDK PUTs back what it read; a training request has nothing a script may change, so it answers as it is."""
    body_json(request)
    return _with_bundling(_training_request(request.user, request_id, "train_project"))


def training_request_delete(request, request_id):
    """A queued or running request is cancelled (a running one keeps any finished epoch); an ended one without a
    model is deleted. One that made a model stays while the model does: delete the model."""
    from training.services import training_job_cancel, training_job_delete

    job = _training_request(request.user, request_id, "train_project")
    if job.is_active:
        return request_body(training_job_cancel(job=job))
    if _made(job) is not None:
        raise Refused(f"This request made model {job.model_version.pk}: delete the model, which takes it along.", 409)
    body = request_body(job)
    training_job_delete(job=job)
    return body


# --- models and versions --------------------------------------------------------------------
#
# A SeeMe model id names a SeemeModel (made through this API: a group of versions) or a ModelVersion trained or
# loaded in the web app, whose one version is itself; the two share one sequence of ids.


def _model(user, model_id, perm: str = "view_project") -> SeemeModel | ModelVersion:
    pk = string_id(model_id)
    found = SeemeModel.objects.filter(pk=pk).select_related("project", "active_version__model").first()
    if found is None:
        found = ModelVersion.objects.filter(pk=pk, seeme_version__isnull=True).select_related("project").first()
    return access_child(user, found, perm, "No such model.")


def _version(model: SeemeModel | ModelVersion, version_id) -> SeemeVersion | ModelVersion:
    pk = string_id(version_id)
    if isinstance(model, ModelVersion):
        if pk != model.pk:
            raise Http404("No such model version.")
        return model
    version = model.versions.filter(pk=pk).select_related("model", "seeme_model__project").first()
    if version is None:
        raise Http404("No such model version.")
    return version


def _own(model: SeemeModel | ModelVersion) -> SeemeModel:
    if isinstance(model, ModelVersion):
        raise Refused(
            "A model trained or loaded in Sightline is its own one version and is changed on its page; create a "
            "model (POST models) to upload versions to.",
            409,
        )
    return model


def _trained_fields(trained: ModelVersion | None) -> dict:
    """What a model and a version say of the network that predicts for them (none for an empty version)."""
    scores = (((trained.metrics or {}).get("best") or {}).get("valid") or {}) if trained else {}
    return {
        "classes": "\n".join(trained.labels) if trained else "",
        "accuracy": scores.get("accuracy", scores.get("map50")) or 0,
        "can_inference": trained is not None,
        "has_ml_model": False,  # SeeMe's flag for a Core ML file, which Sightline does not make
        "has_onnx_model": trained is not None and bundles.onnx_made(model=trained),
        "has_tflite_model": False,
        "has_labels_file": trained is not None,
        "dataset_version_id": str(trained.project_id) if trained and trained.job_id else "",
        "training_request_id": str(trained.job_id or "") if trained else "",
    }


def model_body(model: SeemeModel | ModelVersion, user) -> dict:
    if isinstance(model, ModelVersion):
        trained, name, description, active = model, model.name, "", model.pk
        created, updated = model.created_at, model.created_at
        application = APPLICATION.get(model.task, model.task)
    else:
        active_version = model.active_version
        trained = active_version.model if active_version else None
        name, description, active = model.name, model.description, model.active_version_id
        created, updated, application = model.created_at, model.updated_at, model.application
    owner = model.project.owner_id
    return {
        "id": str(model.pk),
        "created_at": _at(created),
        "updated_at": _at(updated),
        "name": name,
        "description": description,
        "active_version_id": str(active or ""),
        "user_id": str(owner),
        "kind": application,
        "has_logo": isinstance(model, SeemeModel) and bool(model.logo),
        "logo": logo_name(model, str(model.pk)) if isinstance(model, SeemeModel) else "",
        "public": False,
        "config": "",
        "application_id": application,
        "shared_with_me": owner != user.pk,
        "auto_convert": True,
        "privacy_enabled": False,
        **_trained_fields(trained),
    }


def version_body(version: SeemeVersion | ModelVersion, user) -> dict:
    if isinstance(version, ModelVersion):
        return {**model_body(version, user), "model_id": str(version.pk), "version": "1", "version_number": 1}
    model = version.seeme_model
    return {
        **model_body(model, user),
        **_trained_fields(version.model),
        "id": str(version.pk),
        "model_id": str(model.pk),
        "name": version.name,
        "description": version.description,
        "version": version.name,
        "version_number": version.number,
        "created_at": _at(version.created_at),
        "updated_at": _at(version.updated_at),
        "has_logo": False,
        "logo": "",
    }


def models_list(request):
    visible = projects_for_user(request.user)
    made = SeemeModel.objects.filter(project__in=visible).select_related("project", "active_version__model")
    trained = ModelVersion.objects.filter(project__in=visible, seeme_version__isnull=True).select_related("project")
    return [model_body(model, request.user) for model in sorted([*made, *trained], key=lambda model: model.pk)]


def model_create(request):
    model = seeme_services.model_create(user=request.user, data=body_json(request))
    return model_body(_model(request.user, model.pk), request.user)


def model_get(request, model_id):
    return model_body(_model(request.user, model_id), request.user)


def model_update(request, model_id):
    model = _own(_model(request.user, model_id, "change_project"))
    seeme_services.model_update(model=model, data=body_json(request))
    return model_body(_model(request.user, model_id), request.user)


def model_delete(request, model_id):
    """A model made through this API goes with its project (the right to delete that); a model trained here goes
    as its page deletes it (the right to train)."""
    from training.services import model_version_delete

    model = _model(request.user, model_id)
    access_project(
        request.user, model.project_id, "delete_project" if isinstance(model, SeemeModel) else "train_project"
    )
    body = model_body(model, request.user)
    if isinstance(model, SeemeModel):
        seeme_services.model_delete(model=model)
    else:
        model_version_delete(model=model)
    return body


def model_versions(request, model_id):
    model = _model(request.user, model_id)
    if isinstance(model, ModelVersion):
        return [version_body(model, request.user)]
    versions = model.versions.select_related("model", "seeme_model__project", "seeme_model__active_version")
    return [version_body(version, request.user) for version in versions]


def model_version_create(request, model_id):
    model = _own(_model(request.user, model_id, "train_project"))
    version = seeme_services.version_create(model=model, data=body_json(request))
    return version_body(_version(_model(request.user, model_id), version.pk), request.user)


def model_version_get(request, model_id, version_id):
    return version_body(_version(_model(request.user, model_id), version_id), request.user)


def model_version_update(request, model_id, version_id):
    model = _own(_model(request.user, model_id, "train_project"))
    version = seeme_services.version_update(version=_version(model, version_id), data=body_json(request))
    return version_body(version, request.user)


def model_version_delete(request, model_id, version_id):
    model = _own(_model(request.user, model_id, "train_project"))
    version = _version(model, version_id)
    body = version_body(version, request.user)
    seeme_services.version_delete(version=version)
    return body


def _upload(request):
    upload = request.FILES.get("file")
    if upload is None:
        raise Refused("Send the file in the multipart field 'file'.")
    return upload


def _is_logo(upload) -> bool:
    """The SDK uploads a model's file and its logo to the same URL: a logo is sent as image/jpg, image/jpeg or
    image/png and named so, a model file as application/octet-stream."""
    named = (upload.name or "").rpartition(".")[2].lower() in LOGO_TYPES
    return (upload.content_type or "").startswith("image/") or named


def model_upload(request, model_id):
    model = _own(_model(request.user, model_id, "train_project"))
    upload = _upload(request)
    if _is_logo(upload):
        logo_store(request, model, str(model.pk))
    else:
        seeme_services.model_file_load(model=model, user=request.user, upload=upload)
    return model_body(_model(request.user, model_id), request.user)


def model_version_upload(request, model_id, version_id):
    model = _own(_model(request.user, model_id, "train_project"))
    upload = _upload(request)
    if _is_logo(upload):
        raise Refused("A logo belongs to the model: upload it to models/{id}/upload.")
    version = seeme_services.version_file_load(version=_version(model, version_id), user=request.user, upload=upload)
    return version_body(_version(_model(request.user, model_id), version.pk), request.user)


def model_download(request, model_id, asset, version_id=None):
    """A model's (or one version's) files under the SDK's names: `labels` (also `names` and `txt`: one label per
    line), `onnx` (bundles.onnx_made) and `pkl` (Sightline's bundle, which Load Existing Model and an upload here
    read back; built once, by the bundle job)."""
    model = _model(request.user, model_id, "view_project" if asset in (*LABEL_FILES, "logo") else "export_project")
    if asset == "logo" and version_id is None:
        if not isinstance(model, SeemeModel):
            raise Http404("There is no logo.")
        return logo_response(model)
    if version_id is not None:
        chosen = _version(model, version_id)
        trained = chosen if isinstance(chosen, ModelVersion) else chosen.model
    else:
        trained = (
            model if isinstance(model, ModelVersion) else (model.active_version.model if model.active_version else None)
        )
    if trained is None:
        raise Refused("This version has no file yet: upload one first.", 404)
    if asset in LABEL_FILES:
        return HttpResponse("".join(f"{name}\n" for name in trained.labels), content_type="text/plain; charset=utf-8")
    if asset == "onnx":
        made = bundles.onnx_bytes(model=trained) if bundles.onnx_made(model=trained) else None
        if made is None:
            raise Refused(
                "This model has no ONNX file (has_onnx_model): a classifier's is made with its pkl file, and "
                "detectors trained in Sightline have one, unless its export failed.",
                404,
            )
        return HttpResponse(made, content_type="application/octet-stream")
    if asset == "pkl":
        checkpoint = trained.predict_with
        state = bundles.bundle_state(model=trained, checkpoint=checkpoint)
        if state["status"] == "ready":
            return stored_response(
                bundles.bundle_name(model=trained, checkpoint=checkpoint),
                filename=f"{trained.name}.zip",
                content_type="application/zip",
            )
        if state["status"] == "building":
            raise Refused(
                f"The pkl file is being built ({round(state['progress'] * 100)}%): download it again soon.", 409
            )
        raise Refused(
            f"The pkl file is not built yet: POST /api/models/{trained.pk}/bundle/ (or Save Trained Model on the model's "
            "page) builds it.",
            409,
        )
    raise Refused(f"There is no {asset!r} file: this server has labels, names, txt, onnx and pkl.", 404)


# --- inferences ------------------------------------------------------------------------------


def _duration(ms: float) -> str:
    """As SeeMe writes a duration (Go's): "284.418389ms"."""
    return f"{ms:.6f}ms"


def inference_body(inference: Inference) -> dict:
    version = inference.seeme_version
    model_id = version.seeme_model_id if version else inference.model_version_id
    return {
        "id": str(inference.pk),
        "created_at": _at(inference.created_at),
        "updated_at": _at(inference.updated_at),
        "name": inference.name,
        "description": inference.description,
        "prediction": inference.prediction,
        "confidence": inference.confidence,
        "model_id": str(model_id),
        "model_version_id": str(version.pk if version else inference.model_version_id),
        "extension": inference.extension,
        "user_id": str(inference.user_id or ""),
        "error_reported": inference.error_reported,
        "error": inference.error,
        "application_id": APPLICATION.get(inference.model_version.task, inference.model_version.task),
        "inference_host": "sightline",
        "inference_time": _duration(inference.inference_ms),
        "end_to_end_time": _duration(inference.total_ms),
        "dataset_item_id": "",
        "result": "",
        "inference_items": [
            {"id": f"{inference.pk}-{n}", "inference_id": str(inference.pk), **item}
            for n, item in enumerate(inference.items)
        ],
        "hidden": inference.hidden,
        "privacy_enabled": False,
    }


def inference_create(request, target, version_id=None):
    """POST inferences/{model}[/versions/{version}]: the image in the multipart field `file`, predicted with the
    model's active version (or the one named)."""
    received = time.perf_counter()
    model = _model(request.user, target, "train_project")
    if version_id is not None:
        chosen = _version(model, version_id)
    else:
        chosen = model if isinstance(model, ModelVersion) else model.active_version
    trained = chosen if isinstance(chosen, ModelVersion) else (chosen.model if chosen else None)
    if trained is None:
        raise Refused("This model version has no file to predict with: upload one first.", 409)
    upload = request.FILES.get("file")
    if upload is None:
        raise Refused("Send the image in the multipart field 'file': Sightline's models predict images, not text.")
    inference = seeme_services.inference_make(
        model=trained,
        seeme_version=chosen if isinstance(chosen, SeemeVersion) else None,
        user=request.user,
        name=upload.name or "",
        data=predictions.upload_read(upload),
        received=received,
    )
    return inference_body(inference)


def _inference(user, inference_id, perm: str) -> Inference:
    found = (
        Inference.objects.filter(pk=string_id(inference_id))
        .select_related("model_version__project", "seeme_version")
        .first()
    )
    access_child(user, found and found.model_version, perm, "No such inference.")
    return found


# GET and PUT inferences/{inference}: the same path as POST inferences/{model}, so `target` names either.
def inference_get(request, target):
    return inference_body(_inference(request.user, target, "view_project"))


def inference_update(request, target):
    inference = _inference(request.user, target, "train_project")
    return inference_body(seeme_services.inference_update(inference=inference, data=body_json(request)))
