"""Writes behind the SeeMe.ai SDK's models and inferences (/api/v1/, docs/seeme.md): the models it creates (a group
of versions in a project of their own), the files uploaded to their versions, their logos, and each inference with
the feedback on it."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F

from projects import services as projects
from training.models import Inference, ModelVersion, SeemeModel, SeemeVersion, Task
from training.services.loading import model_load
from training.services.naming import model_name_clean

APPLICATIONS = {Task.CLASSIFICATION: "image_classification", Task.DETECTION: "object_detection"}
MAX_NAME = 100


def _id_reserve() -> int:
    """An id no trained model has or will be given (SeemeModel's docstring says why)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('training_modelversion', 'id'))")
        return int(cursor.fetchone()[0])


def _text(data: dict, name: str, most: int | None = None) -> str | None:
    """A string field the script set, or None: read-only and unknown fields are ignored, as the SDK PUTs back what
    it read."""
    value = data.get(name)
    if not isinstance(value, str):
        return None
    if most is not None and len(value.strip()) > most:
        raise ValidationError({name: [f"Give at most {most} characters."]})
    return value


# --- models and versions --------------------------------------------------------------------


@transaction.atomic
def model_create(*, user, data: dict) -> SeemeModel:
    """A model with its first, empty version, in a project of its own that the user owns."""
    name = (_text(data, "name", MAX_NAME) or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the model a name."]})
    description = _text(data, "description") or ""
    project = projects.project_create(owner=user, name=f"{name} (model)", description=description)
    model = SeemeModel(
        id=_id_reserve(),
        project=project,
        name=name,
        description=description,
        application=_application(data.get("application_id"), "image_classification"),
        created_by=user,
    )
    model.save()
    model.active_version = _version_new(model, {})
    model.save(update_fields=["active_version"])
    return model


def _application(value, default: str) -> str:
    if value in (None, ""):
        return default
    if value not in APPLICATIONS.values():
        raise ValidationError(
            {"application_id": [f"Unknown application {value!r}; use one of {', '.join(APPLICATIONS.values())}."]}
        )
    return value


@transaction.atomic
def model_update(*, model: SeemeModel, data: dict) -> SeemeModel:
    """Its name (the project's follows), description, and which version is active."""
    name = _text(data, "name", MAX_NAME)
    if name is not None and name.strip():
        model.name = name.strip()
        projects.project_update(project=model.project, name=f"{model.name} (model)")
    description = _text(data, "description")
    if description is not None:
        model.description = description
    active = data.get("active_version_id")
    if active not in (None, "", str(model.active_version_id)):
        text = str(active)
        chosen = model.versions.filter(
            pk=int(text) if text.isascii() and text.isdigit() and len(text) < 19 else -1
        ).first()
        if chosen is None:
            raise ValidationError({"active_version_id": ["Choose one of this model's versions."]})
        model.active_version = chosen
    model.save()
    return model


def model_delete(*, model: SeemeModel) -> None:
    """The model, its versions and the project that holds them (which the caller may delete)."""
    projects.project_delete(project=model.project)


def _version_new(model: SeemeModel, data: dict) -> SeemeVersion:
    number = (model.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    name = (_text(data, "name", MAX_NAME) or "").strip() or str(number)
    version = SeemeVersion(
        id=_id_reserve(), seeme_model=model, number=number, name=name, description=_text(data, "description") or ""
    )
    version.save()
    return version


@transaction.atomic
def version_create(*, model: SeemeModel, data: dict) -> SeemeVersion:
    SeemeModel.objects.select_for_update().filter(pk=model.pk).first()  # one number at a time
    return _version_new(model, data)


def version_update(*, version: SeemeVersion, data: dict) -> SeemeVersion:
    name = _text(data, "name", MAX_NAME)
    if name is not None and name.strip():
        version.name = name.strip()
    description = _text(data, "description")
    if description is not None:
        version.description = description
    version.save()
    return version


@transaction.atomic
def version_delete(*, version: SeemeVersion) -> None:
    """The version and the model its file became. A model keeps one version at least; the active one passes to the
    newest left, preferring one that predicts."""
    from training.services import model_version_delete

    model = SeemeModel.objects.select_for_update().get(pk=version.seeme_model_id)
    others = model.versions.exclude(pk=version.pk).order_by(F("model_id").desc(nulls_last=True), "-number")
    if not others.exists():
        raise ValidationError({"version": ["A model keeps at least one version: delete the model instead."]})
    gone = version.pk  # (delete() clears it)
    if version.model is not None:
        model_version_delete(model=version.model)
    version.delete()
    if model.active_version_id in (None, gone):
        model.active_version = others.first()
        model.save(update_fields=["active_version", "updated_at"])


def version_file_load(*, version: SeemeVersion, user, upload) -> SeemeVersion:
    """The uploaded file (Sightline's bundle, as the `pkl` download gives it), checked as Load Existing Model checks
    one, becomes the version's model in the model's project, with any labels it names that the project lacks; the
    version becomes the active one. A version that has a file keeps it: upload another to a new version."""
    if version.model_id is not None:
        raise ValidationError({"file": ["This version has a file already: create a new version for another."]})
    model = version.seeme_model
    name = f"{model.name} v{version.number}"[:MAX_NAME]
    try:
        name = model_name_clean(model.project, name, Task.CLASSIFICATION)
    except ValidationError:
        name = None  # taken: the project's next free name
    loaded = model_load(project=model.project, user=user, upload=upload, name=name, labels_add=True)
    try:
        with transaction.atomic():
            locked = SeemeVersion.objects.select_for_update().get(pk=version.pk)
            if locked.model_id is not None:
                raise ValidationError({"file": ["A file reached this version first: create a new version."]})
            locked.model = loaded
            locked.save(update_fields=["model", "updated_at"])
            SeemeModel.objects.filter(pk=model.pk).update(
                active_version=locked, application=APPLICATIONS.get(loaded.task, loaded.task)
            )
    except BaseException:
        from training.services import model_version_delete

        model_version_delete(model=loaded)
        raise
    from training.bundles import bundle_request

    bundle_request(model=loaded, checkpoint=loaded.predict_with, user=user)  # what the `pkl` download serves
    return locked


def model_file_load(*, model: SeemeModel, user, upload) -> SeemeModel:
    """An upload to the model itself: into its active version while that is empty, else into a new version."""
    version = model.active_version
    if version is None or version.model_id is not None:
        version = version_create(model=model, data={})
    version_file_load(version=version, user=user, upload=upload)
    model.refresh_from_db()
    return model


# --- inferences ------------------------------------------------------------------------------


def inference_record(
    *,
    model: ModelVersion,
    seeme_version: SeemeVersion | None,
    user,
    name: str,
    prediction: str,
    confidence: float,
    items: list[dict],
    inference_ms: float,
    total_ms: float,
) -> Inference:
    stem, _, extension = name.rpartition(".")
    return Inference.objects.create(
        model_version=model,
        seeme_version=seeme_version,
        user=user,
        name=name[:255],
        extension=extension[:10].lower() if stem else "",
        prediction=prediction[:200],
        confidence=confidence,
        items=items,
        inference_ms=inference_ms,
        total_ms=total_ms,
    )


def inference_update(*, inference: Inference, data: dict) -> Inference:
    """The feedback a script may give: whether the answer was wrong and what was wrong, a description, hidden.
    What the model answered stays as it was."""
    for name in ("error_reported", "hidden"):
        if isinstance(data.get(name), bool):
            setattr(inference, name, data[name])
    for name in ("error", "description"):
        value = _text(data, name, 10_000)
        if value is not None:
            setattr(inference, name, value)
    inference.save()
    return inference
