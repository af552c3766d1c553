"""Load Existing Model (spec 004): a bundle saved from a Sightline server (training/bundles.py) becomes a model of
this project, which assists and predicts like one trained here.

Nothing in the file is trusted. The checkpoint loads with torch.load(weights_only=True), which unpickles tensors
and plain containers only; its description (task, backbone, size, labels) is checked against what this server
builds; every tensor must have the shape the built network has; and each output label must be a label of this
project by name. The first that does not fit is the 400's message, and nothing is stored.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from projects.models import Label, Project
from training.models import Checkpoint, ModelVersion, Task
from training.services.naming import model_name_clean

MAX_LABELS = 1000
MAX_META_BYTES = 1024 * 1024
DETECTION_THRESHOLD = 0.30  # spec 004's inference confidence, when the bundle has no thresholds
MULTI_LABEL_THRESHOLD = 0.5


def _refuse(message: str):
    raise ValidationError({"file": [message]})


def model_load(*, project: Project, user, upload, name: str | None = None, labels_add: bool = False) -> ModelVersion:
    """Check the uploaded bundle and store it as a model of the project (400 with the reason when it does not fit).
    With `labels_add`, the model's labels that the project lacks are made (a SeeMe model's own project)."""
    from training.ml.heads import has_segmentation_head

    meta, raw = _bundle_read(upload)
    saved = _checkpoint_read(raw)
    task = _task(saved, meta)
    _network_check(saved, task)  # builds the network: no transaction is open yet
    labels = list(saved["labels"])
    label_ids = [] if labels_add else _labels_map(project, labels, meta)
    thresholds = _thresholds(meta, task, saved, len(labels))
    model = ModelVersion(
        project=project,
        task=task,
        multi_label=bool(saved.get("multi_label", False)),
        segmentation_head=has_segmentation_head(saved),
        backbone=saved["backbone"],
        image_size=int(saved["image_size"]),
        labels=labels,
        best_epoch=0,
        epochs_trained=0,
        loaded_from=PurePosixPath(upload.name or "model.zip").name[:255],
        loaded_by=user,
        loaded_label_ids=label_ids,
        optimized_thresholds={c: thresholds for c in Checkpoint.values} if thresholds else {},
        predict_with=Checkpoint.BEST,
    )
    # Only what was checked is kept (an ONNX graph or any other entry of the file is dropped), stored before the
    # project is locked for the name, and removed again if the row is not written.
    model.best_checkpoint.save("checkpoint.pt", ContentFile(_checked_bytes(saved, task)), save=False)
    model.last_checkpoint.name = model.best_checkpoint.name  # one checkpoint answers for both
    try:
        with transaction.atomic():
            Project.objects.select_for_update().filter(pk=project.pk).first()  # the name check, then the write
            if labels_add:
                _labels_add(project, labels, meta)
                model.loaded_label_ids = _labels_map(project, labels, meta)
            model.name = model_name_clean(project, name, task) if name else _name_free(project, meta, task)
            model.save()
    except BaseException:
        model.best_checkpoint.storage.delete(model.best_checkpoint.name)
        raise
    return model


CHECKPOINT_KEYS = {
    Task.CLASSIFICATION: ("format", "backbone", "labels", "image_size", "multi_label", "mean", "std", "state_dict"),
    Task.DETECTION: ("format", "backbone", "labels", "image_size", "model_size", "state_dict"),
    Task.INSTANCE: ("format", "backbone", "labels", "image_size", "model_size", "state_dict"),
    Task.SEMANTIC: ("format", "backbone", "labels", "image_size", "state_dict"),
}


def _checked_bytes(saved: dict, task: str) -> bytes:
    import torch

    from training.ml.heads import HEAD_KEY, has_segmentation_head

    keys = (*CHECKPOINT_KEYS[task], *([HEAD_KEY] if has_segmentation_head(saved) else []))
    out = io.BytesIO()
    torch.save({key: saved[key] for key in keys}, out)
    return out.getvalue()


def _name_free(project: Project, meta: dict, task: str) -> str:
    """The bundle's model name, or the first of "name (loaded)", "name (loaded 2)", ... not taken in the project."""
    base = str(meta.get("name") or "").strip()[:80]
    for number in range(1, 100):
        candidate = base if number == 1 else f"{base} (loaded{'' if number == 2 else f' {number - 1}'})"
        try:
            return model_name_clean(project, candidate or None, task)
        except ValidationError:
            continue
    return model_name_clean(project, None, task)


def _bundle_read(upload) -> tuple[dict, bytes]:
    """model.json and checkpoint.pt from the bundle ZIP, each read within the size limit."""
    limit = settings.SIGHTLINE_MAX_MODEL_BYTES
    if upload.size is not None and upload.size > limit:
        _refuse(
            f"The file is {upload.size:,} bytes, more than this server's limit of {limit:,} (SIGHTLINE_MAX_MODEL_BYTES)."
        )
    try:
        bundle = zipfile.ZipFile(upload)
        entries = {PurePosixPath(info.filename).name: info for info in bundle.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        _refuse("This is not a model bundle: load the ZIP that Save Trained Model downloads.")
    if "model.json" not in entries:
        _refuse("This ZIP has no model.json: load the ZIP that Save Trained Model downloads.")
    if "checkpoint.pt" not in entries:
        _refuse(
            "This bundle has no checkpoint.pt (bundles saved before Sightline could load models have none): "
            "save the model again from its page and load that."
        )
    for name, most in (("model.json", MAX_META_BYTES), ("checkpoint.pt", limit)):
        if entries[name].file_size > most:
            _refuse(f"{name} unpacks to {entries[name].file_size:,} bytes, more than the limit of {most:,}.")
    try:
        with bundle.open(entries["model.json"]) as opened:
            meta = json.loads(opened.read(MAX_META_BYTES + 1))
        with bundle.open(entries["checkpoint.pt"]) as opened:
            raw = opened.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, RecursionError):  # damaged, bad CRC
        _refuse("The bundle is damaged: a file in it cannot be read.")
    except (NotImplementedError, RuntimeError):  # a compression Python does not read, or encryption
        _refuse("The bundle is compressed or encrypted in a way this server does not read: save it again.")
    if not isinstance(meta, dict):
        _refuse("model.json does not describe a model.")
    return meta, raw


def _checkpoint_read(raw: bytes) -> dict:
    import pickle

    import torch

    try:
        saved = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, TypeError, KeyError, AttributeError) as exc:
        # weights_only refuses any object that is not a tensor or a plain container; say which.
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        _refuse(f"checkpoint.pt cannot be loaded safely (torch.load with weights_only): {reason}")
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        _refuse("checkpoint.pt holds no Sightline checkpoint (a dictionary with a state_dict).")
    from training.ml.heads import HEAD_KEY

    weights = {"state_dict": saved["state_dict"]}
    if HEAD_KEY in saved:  # a detector's segmentation head (spec 004)
        if not isinstance(saved[HEAD_KEY], dict):
            _refuse(f"checkpoint.pt's {HEAD_KEY} holds no weights.")
        weights[HEAD_KEY] = saved[HEAD_KEY]
    for key, state in weights.items():
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            _refuse(f"checkpoint.pt's {key} holds something other than named tensors.")
    for name, tensor in [pair for state in weights.values() for pair in state.items()]:
        if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_complex():
            _refuse(f"The tensor {name[:100]} is not a plain dense tensor.")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            _refuse(f"The tensor {name[:100]} holds values that are not finite numbers (NaN or infinity).")
    return saved


def _task(saved: dict, meta: dict) -> str:
    from training.ml import classification, detection, instances, segmentation
    from training.ml.heads import has_segmentation_head
    from training.parameters import backbone_check

    formats = {
        classification.CHECKPOINT_FORMAT: Task.CLASSIFICATION,
        detection.CHECKPOINT_FORMAT: Task.DETECTION,
        segmentation.CHECKPOINT_FORMAT: Task.SEMANTIC,
        instances.CHECKPOINT_FORMAT: Task.INSTANCE,
    }
    task = formats.get(saved.get("format"))
    if task is None:
        _refuse(
            f"checkpoint.pt has the format {str(saved.get('format'))[:60]!r}; this server loads {', '.join(formats)}."
        )
    if meta.get("task", task) != task:
        _refuse(f"model.json says {str(meta.get('task'))[:40]!r} but checkpoint.pt holds a {task} model.")
    backbone = saved.get("backbone")
    if not isinstance(backbone, str):
        _refuse("checkpoint.pt does not name its backbone.")
    errors = backbone_check({"backbone": backbone, "pretrained": False})
    if errors:
        _refuse(next(iter(errors.values()))[0])
    from training.ml.backbones import DETECTOR_SIZES
    from training.parameters import IMAGE_SIZES

    sizes = sorted({*IMAGE_SIZES, *(side for side, _, _ in DETECTOR_SIZES.values())})
    if saved.get("image_size") not in sizes or isinstance(saved.get("image_size"), bool):
        _refuse(f"The image size must be one this server trains at: {', '.join(map(str, sizes))} px.")
    labels = saved.get("labels")
    if (
        not isinstance(labels, list)
        or not 1 <= len(labels) <= MAX_LABELS
        or not all(isinstance(n, str) and n.strip() and len(n) <= 100 for n in labels)
        or len(set(labels)) != len(labels)
    ):
        _refuse(f"checkpoint.pt's labels must be 1 to {MAX_LABELS} different names of at most 100 characters.")
    if task in (Task.SEMANTIC, Task.INSTANCE) or has_segmentation_head(saved):  # label maps are bytes
        from training.ml.segmentation_metrics import MAX_LABELS as MAX_SEGMENTATION_LABELS

        if len(labels) > MAX_SEGMENTATION_LABELS:
            _refuse(f"A segmentation model has at most {MAX_SEGMENTATION_LABELS} labels; this one has {len(labels)}.")
    if task in (Task.DETECTION, Task.INSTANCE):
        from training.ml.detection import MODEL_SIZES

        if saved.get("model_size") not in MODEL_SIZES:
            _refuse(f"The detector's size must be one of {', '.join(MODEL_SIZES)}.")
    elif task == Task.CLASSIFICATION:
        if not isinstance(saved.get("multi_label"), bool):
            _refuse("checkpoint.pt does not say whether the classifier is multi-label.")
        for key in ("mean", "std"):
            values = saved.get(key)
            if not (
                isinstance(values, list)
                and len(values) == 3
                and all(isinstance(v, float | int) and math.isfinite(v) for v in values)
                and (key == "mean" or all(v > 0 for v in values))
            ):
                _refuse(f"checkpoint.pt's {key} must be three numbers{' above 0' if key == 'std' else ''}.")
    return task


def _network_check(saved: dict, task: str) -> None:
    """Build the network the checkpoint describes, and insist each tensor has the shape it has there."""
    import torch

    from training.ml.heads import HEAD_KEY, has_segmentation_head

    with torch.device("meta"):  # shapes only: nothing is allocated, whatever the size
        network = _network_built(saved, task)
    expected = {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}
    given = {name: tuple(tensor.shape) for name, tensor in saved["state_dict"].items()}
    if has_segmentation_head(saved):  # both heads' weights, named as in the network with both
        given = {
            **{f"detector.{name}": shape for name, shape in given.items()},
            **{f"semantic.{name}": tuple(tensor.shape) for name, tensor in saved[HEAD_KEY].items()},
        }
    missing = [name for name in expected if name not in given]
    unexpected = [name for name in given if name not in expected]
    wrong = [name for name in expected if name in given and given[name] != expected[name]]
    described = f"a {saved['backbone']} {task} model with {len(saved['labels'])} labels"
    if wrong:
        name = wrong[0]
        _refuse(
            f"The weights do not fit {described}: {_tensors(len(wrong))} another shape "
            f"({name} is {list(given[name])} in the file, {list(expected[name])} here)."
        )
    if missing or unexpected:
        example = f"{missing[0]} is missing" if missing else f"{unexpected[0]} is not part of it"
        _refuse(
            f"The weights do not fit {described}: {len(missing)} missing and {len(unexpected)} unknown tensors "
            f"({example})."
        )


def _network_built(saved: dict, task: str):
    """The network the checkpoint describes (on whatever device is in force), or the 400 when it cannot be built."""
    from training.ml.backbones import create_backbone

    try:
        if task in (Task.DETECTION, Task.INSTANCE):
            from training.ml import detection, heads, instances

            build = detection.build_model if task == Task.DETECTION else instances.build_model
            return detection.saved_built(heads.build_model if heads.has_segmentation_head(saved) else build, saved)
        if task == Task.SEMANTIC:
            from training.ml.segmentation import build_model

            return build_model(len(saved["labels"]) + 1, backbone=saved["backbone"], pretrained=False)
        return create_backbone(saved["backbone"], pretrained=False, num_classes=len(saved["labels"]))
    except ValueError as exc:  # e.g. a backbone without the feature levels the head needs
        _refuse(str(exc))


def _tensors(count: int) -> str:
    return f"{count} tensor{'' if count == 1 else 's'} {'has' if count == 1 else 'have'}"


def _labels_map(project: Project, labels: list[str], meta: dict) -> list[int | None]:
    """Each output's label of this project, by name; outputs the bundle marks as no label (background) map to none."""
    unlabeled = meta.get("unlabeled_outputs") or []
    if not isinstance(unlabeled, list):
        unlabeled = []
    ids = dict(Label.objects.filter(project=project, name__in=labels).values_list("name", "id"))
    absent = [name for name in labels if name not in ids and name not in unlabeled]
    if absent:
        shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
        _refuse(
            f"The model's labels {shown} are not labels of this project. Add labels with these names (Settings), "
            "or load a model trained on this project's labels."
        )
    if all(name in unlabeled for name in labels):
        _refuse("None of the model's outputs is a label.")
    return [None if name in unlabeled else ids[name] for name in labels]


def _labels_add(project: Project, labels: list[str], meta: dict) -> None:
    from projects.services import label_create

    unlabeled = meta.get("unlabeled_outputs") if isinstance(meta.get("unlabeled_outputs"), list) else []
    have = set(Label.objects.filter(project=project).values_list("name", flat=True))
    for name in labels:
        if name not in have and name not in unlabeled:
            label_create(project=project, name=name)
            have.add(name)


def _thresholds(meta: dict, task: str, saved: dict, count: int) -> list[float] | None:
    """The bundle's score thresholds per label, for a detector or a multi-label classifier; defaults otherwise."""
    if task == Task.SEMANTIC or (task == Task.CLASSIFICATION and not saved.get("multi_label")):
        return None
    given = meta.get("thresholds")
    if (
        isinstance(given, list)
        and len(given) == count
        and all(isinstance(v, float | int) and not isinstance(v, bool) and 0 <= v <= 1 for v in given)
    ):
        return [float(v) for v in given]
    return [DETECTION_THRESHOLD if task in (Task.DETECTION, Task.INSTANCE) else MULTI_LABEL_THRESHOLD] * count
