"""Writes behind the SeeMe.ai SDK's models and inferences (/api/v1/, docs/seeme.md): the models it creates (a group
of versions in a project of their own), the files uploaded to their versions, their logos, and each inference with
the feedback on it."""

from __future__ import annotations

import time

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
    fields = ["name", "description", "updated_at"]
    active = data.get("active_version_id")
    if active not in (None, "", str(model.active_version_id)):
        text = str(active)
        chosen = model.versions.filter(
            pk=int(text) if text.isascii() and text.isdigit() and len(text) < 19 else -1
        ).first()
        if chosen is None:
            raise ValidationError({"active_version_id": ["Choose one of this model's versions."]})
        model.active_version = chosen
        fields.append("active_version")
    model.save(update_fields=fields)  # not what an upload may be setting meanwhile
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
    version.save(update_fields=["name", "description", "updated_at"])  # not the file an upload may be attaching
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


def _file_load(model: SeemeModel, user, upload, number: int):
    """The uploaded file (Sightline's bundle, as the `pkl` download gives it), checked as Load Existing Model checks
    one, as a model of the SeeMe model's project, named for the version it is meant for, with any labels it names
    that the project lacks. It runs outside any transaction: building the network to check it takes seconds."""
    name = f"{model.name} v{number}"[:MAX_NAME]
    try:
        name = model_name_clean(model.project, name, Task.CLASSIFICATION)
    except ValidationError:
        name = None  # taken: the project's next free name
    return model_load(project=model.project, user=user, upload=upload, name=name, labels_add=True)


def _attached(model: SeemeModel, loaded: ModelVersion, version_id: int | None, user) -> SeemeVersion:
    """The loaded model becomes the file of the version (`version_id`), or with none named, of the model's active
    version while that is empty, else of a new version; that version becomes the active one. The SeeMe model is
    locked first, then the version, as everywhere. On any refusal the loaded model goes again."""
    from training.bundles import bundle_request
    from training.services import model_version_delete

    try:
        with transaction.atomic():
            locked = SeemeModel.objects.select_for_update().filter(pk=model.pk).first()
            if locked is None:
                raise ValidationError({"file": ["The model was deleted meanwhile."]})
            target = locked.active_version_id if version_id is None else version_id
            version = SeemeVersion.objects.select_for_update().filter(pk=target, seeme_model=locked).first()
            if version_id is not None and version is None:
                raise ValidationError({"file": ["The version was deleted meanwhile."]})
            if version is not None and version.model_id is not None:
                if version_id is not None:
                    raise ValidationError({"file": ["This version has a file already: create a new version."]})
                version = None
            if version is None:
                version = _version_new(locked, {})
            version.model = loaded
            version.save(update_fields=["model", "updated_at"])
            locked.active_version = version
            locked.application = APPLICATIONS.get(loaded.task, loaded.task)
            locked.save(update_fields=["active_version", "application", "updated_at"])
    except BaseException:
        model_version_delete(model=loaded)
        raise
    bundle_request(model=loaded, checkpoint=loaded.predict_with, user=user)  # what the `pkl` download serves
    return version


def version_file_load(*, version: SeemeVersion, user, upload) -> SeemeVersion:
    """An upload to a version that has no file yet; a version keeps its file: upload another to a new version."""
    if version.model_id is not None:
        raise ValidationError({"file": ["This version has a file already: create a new version for another."]})
    loaded = _file_load(version.seeme_model, user, upload, version.number)
    return _attached(version.seeme_model, loaded, version.pk, user)


def model_file_load(*, model: SeemeModel, user, upload) -> SeemeVersion:
    """An upload to the model itself: into its active version while that is empty, else into a new version (made
    only once the file has passed its checks)."""
    active = model.active_version
    number = active.number if active is not None and active.model_id is None else None
    if number is None:
        number = (model.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    loaded = _file_load(model, user, upload, number)
    return _attached(model, loaded, None, user)


# --- inferences ------------------------------------------------------------------------------


def inference_make(
    *, model: ModelVersion, seeme_version: SeemeVersion | None, user, name: str, data: bytes, received: float
) -> Inference:
    """Predict the image with the model, outside any transaction, and keep the answer as SeeMe gives it: the best
    label and its score, and a detector's (or an instance model's) boxes as items with SeeMe's coordinates.
    `received`: time.perf_counter() when the request came, for the end-to-end time."""
    from projects.seeme.services import box_coordinates
    from training import predictions
    from training.ml.images import upright_size

    if model.task == Task.SEMANTIC:
        raise ValidationError(
            {
                "file": [
                    "A semantic segmentation model answers masks, which SeeMe's inferences have no place for: use "
                    f"POST /api/predict/{model.project_id}/{model.name}/."
                ]
            }
        )
    predictions.image_check(data)
    checkpoint, items = model.predict_with, []
    started = time.perf_counter()
    if model.task == Task.CLASSIFICATION:
        [ranked] = predictions.images_predict(model=model, checkpoint=checkpoint, images=[data])
        prediction, confidence = ranked[0]["label"], ranked[0]["score"]
    else:
        if model.task == Task.DETECTION:
            [found] = predictions.boxes_predict(model=model, checkpoint=checkpoint, images=[data])
            found = [row for row in found if "rle" not in row]  # not a segmentation head's masks
        else:
            [found] = predictions.instances_predict(model=model, checkpoint=checkpoint, images=[data], polygons=False)
            found = [{**row, **row["box"]} for row in found]
        width, height = upright_size(data)
        items = [
            {"prediction": row["label"], "confidence": row["score"], "coordinates": box_coordinates(row, width, height)}
            for row in found
        ]
        prediction, confidence = (items[0]["prediction"], items[0]["confidence"]) if items else ("", 0.0)
    inference_ms = (time.perf_counter() - started) * 1000
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
        total_ms=(time.perf_counter() - received) * 1000,
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
