"""A model for offline use: one ZIP with an exported model, its label map, a README and a server script; and the
checkpoint itself (checkpoint.pt), which Load Existing Model (training/services/loading.py) reads back.

The model is a `torch.export` program (TorchScript is deprecated as of torch 2.14). A classifier's takes uint8
N x H x W x 3 pixels and does the normalisation and the softmax or sigmoid itself; a detector's takes normalised
pixels and gives every location's boxes and scores, from which sightline_boxes.py (training/ml/boxes.py, what
Sightline itself selects with) keeps the answer; a semantic segmentation model's takes normalised pixels and gives
per-class logits, which sightline_masks.py (training/ml/masks.py) turns into Sightline's masks; an instance
segmentation model's is two programs, the network and its mask branch, which sightline_instances.py
(training/ml/instance_masks.py) runs as Sightline does. The bundle needs torch, numpy and Pillow (and torchvision
for a detector, pycocotools for a segmentation model, OpenCV and shapely to trace instances as polygons) and
nothing of Sightline.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path

import torch
from torch import nn

from training.downloads import safe_name
from training.ml import images as images_module
from training.models import ModelVersion, Task
from training.predictions import (
    NMS_DEFAULT,
    classifier_load,
    detector_load,
    heads_load,
    instance_segmenter_load,
    segmenter_load,
)

BUNDLE_DIR = Path(__file__).resolve().parent / "bundle"


class _Packaged(nn.Module):
    def __init__(self, model: nn.Module, mean, std, multi_label: bool):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.multi_label = multi_label

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.permute(0, 3, 1, 2).float() / 255 - self.mean) / self.std
        logits = self.model(x)
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)


logger = logging.getLogger(__name__)
BUNDLE_KIND = "bundle"
BUNDLE_FORMAT = 2  # what a bundle holds; a bundle of an older format is built again (2: a classifier's model.onnx)
HEADS_NOTE = """
This detector has a segmentation head too (spec 004's two heads, on one backbone): the reply also carries
`"masks"`, one per label its segmentation head gives any pixel, as a semantic segmentation model's are (`label`,
`score`, the mean probability over the label's pixels, `area`, `box` and `rle`, COCO RLE at the image's size).
`model.pt2` returns the semantic logits after the boxes and scores; `sightline_masks.segment` and `masks_answer`
turn them into the masks.
"""


def model_bundle(*, model: ModelVersion, checkpoint: str) -> bytes:
    exporter = {Task.DETECTION: _detector, Task.SEMANTIC: _segmenter, Task.INSTANCE: _instances}.get(
        model.task, _classifier
    )
    programs, extra, readme = exporter(model, checkpoint)
    meta = {**bundle_meta(model=model, checkpoint=checkpoint), **extra}
    thresholds = meta["thresholds"]
    readme = readme.format(
        name=model.name,
        backbone=model.backbone,
        image_size=model.image_size,
        checkpoint=checkpoint,
        epochs=model.epochs_trained,
        labels=", ".join(model.labels),
        project_id=model.project_id,
        count=len(model.labels),
        kind="multi-label" if model.multi_label else "single-label",
        threshold_note="Each prediction also says whether its score reaches the label's threshold (`positive`)."
        if thresholds is not None
        else "Single-label scores add up to 1.",
        heads_note=HEADS_NOTE if model.segmentation_head else "",
    )
    versions = [f"torch=={torch.__version__.split('+')[0]}"]
    files = {"sightline_images.py": Path(images_module.__file__).read_text()}
    if model.task == Task.DETECTION:
        import torchvision

        from training.ml import boxes

        versions.append(f"torchvision=={torchvision.__version__.split('+')[0]}")
        files["sightline_boxes.py"] = Path(boxes.__file__).read_text()
    if model.segmentation_head:
        from training.ml import masks

        versions.append("pycocotools")
        files["sightline_masks.py"] = Path(masks.__file__).read_text()
    if model.task == Task.SEMANTIC:
        from training.ml import boxes, masks

        versions.append("pycocotools")
        files["sightline_boxes.py"] = Path(boxes.__file__).read_text()  # network_input: the padding
        files["sightline_masks.py"] = Path(masks.__file__).read_text()
    if model.task == Task.INSTANCE:
        import torchvision

        from annotations import geometry
        from training.ml import boxes, instance_masks, masks

        versions.append(f"torchvision=={torchvision.__version__.split('+')[0]}")
        versions += ["pycocotools", "opencv-python-headless", "shapely"]
        files["sightline_boxes.py"] = Path(boxes.__file__).read_text()
        files["sightline_masks.py"] = Path(masks.__file__).read_text()
        files["sightline_instances.py"] = (
            Path(instance_masks.__file__)
            .read_text()
            .replace("from training.ml.boxes import", "from sightline_boxes import")
            .replace("from training.ml.masks import", "from sightline_masks import")
        )
        files["sightline_geometry.py"] = Path(geometry.__file__).read_text()  # masks traced as polygons
    out = io.BytesIO()
    folder = f"{safe_name(model.name)}-{checkpoint}"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, program in programs.items():
            bundle.writestr(f"{folder}/{name}", program)
        bundle.writestr(f"{folder}/checkpoint.pt", checkpoint_bytes(model=model, checkpoint=checkpoint))
        bundle.writestr(f"{folder}/model.json", json.dumps(meta, indent=2))
        bundle.writestr(f"{folder}/README.md", readme)
        bundle.writestr(f"{folder}/serve.py", (BUNDLE_DIR / "serve.py").read_text())
        for name, text in files.items():
            bundle.writestr(f"{folder}/{name}", text)
        bundle.writestr(f"{folder}/requirements.txt", "\n".join([*versions, "numpy", "pillow", ""]))
    return out.getvalue()


def bundle_meta(*, model: ModelVersion, checkpoint: str) -> dict:
    """model.json: what the model is, for serve.py and for Load Existing Model."""
    ids = model.label_ids()
    return {
        "name": model.name,
        "project_id": model.project_id,
        "checkpoint": checkpoint,
        "task": model.task,
        "labels": model.labels,
        "image_size": model.image_size,
        "thresholds": model.thresholds_for(checkpoint),
        "backbone": model.backbone,
        # The outputs that are no project label (a one-class classifier's "background"); loading maps the others by name.
        "unlabeled_outputs": [name for name in model.labels if name not in ids],
    }


def checkpoint_bytes(*, model: ModelVersion, checkpoint: str) -> bytes:
    """The stored checkpoint without its ONNX export (a graph is not weights: a loaded detector predicts with torch)."""
    from projects.files import stored_bytes

    saved = torch.load(io.BytesIO(stored_bytes(model.checkpoint_file(checkpoint).name)), weights_only=True)
    saved.pop("onnx", None)
    out = io.BytesIO()
    torch.save(saved, out)
    return out.getvalue()


def _saved(program) -> bytes:
    exported = io.BytesIO()
    torch.export.save(program, exported)
    return exported.getvalue()


def _classifier(model: ModelVersion, checkpoint: str) -> tuple[dict[str, bytes], dict, str]:
    """A program from uint8 N x S x S x 3 pixels to probabilities."""
    classifier = classifier_load(model.checkpoint_file(checkpoint).name)
    # A copy: the loaded classifier keeps answering predictions in other threads meanwhile.
    network = copy.deepcopy(classifier.model).cpu().to(memory_format=torch.contiguous_format)
    packaged = _Packaged(network, classifier.mean, classifier.std, model.multi_label).eval()
    example = torch.zeros(2, model.image_size, model.image_size, 3, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(packaged, (example,), dynamic_shapes={"pixels": {0: batch}})
    files = {"model.pt2": _saved(program)}
    try:
        files["model.onnx"] = _onnx(program)
    except Exception:  # a backbone the ONNX translator cannot take: the bundle serves without it
        logger.exception("The ONNX export of model %s failed; its bundle has no model.onnx.", model.pk)
    return files, {"multi_label": model.multi_label}, (BUNDLE_DIR / "README.md").read_text()


def _onnx(program) -> bytes:
    """The exported program as an optimised ONNX model (input `pixels`, output `probabilities`), for ONNX Runtime
    and the SeeMe SDK's `onnx` download: about 6 s on 2 cores for EfficientNet-Lite0."""
    import warnings

    import torch.onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        translated = torch.onnx.export(
            program, dynamo=True, optimize=True, verbose=False, input_names=["pixels"], output_names=["probabilities"]
        )
    return translated.model_proto.SerializeToString()


def _detector(model: ModelVersion, checkpoint: str) -> tuple[dict[str, bytes], dict, str]:
    """A program from normalised pixels, padded to multiples of 32 of at least 160 (N x 3 x H x W, at most the image
    size), to every location's box and scores per pyramid level (and, with a segmentation head, per-class logits at
    the input's size); sightline_boxes.py selects the boxes and sightline_masks.py makes the masks, as here."""
    from training.ml.detection_dense import exported_program
    from training.ml.heads import DenseHeads

    if model.segmentation_head:
        loaded = heads_load(model.checkpoint_file(checkpoint).name)
        network = DenseHeads(loaded.network)
    else:
        loaded = detector_load(model.checkpoint_file(checkpoint).name)
        network = loaded.network
    program = exported_program(network, model.image_size)
    mean, std = loaded.normalization
    meta = {"mean": list(mean), "std": list(std), "nms": NMS_DEFAULT, "segmentation_head": model.segmentation_head}
    return {"model.pt2": _saved(program)}, meta, (BUNDLE_DIR / "README-detection.md").read_text()


def _segmenter(model: ModelVersion, checkpoint: str) -> tuple[dict[str, bytes], dict, str]:
    """A program from normalised pixels, padded as a detector's are, to per-class logits at the input's size;
    sightline_masks.py turns them into masks, as here."""
    from training.ml.detection_dense import exported_program

    segmenter = segmenter_load(model.checkpoint_file(checkpoint).name)
    program = exported_program(segmenter.network, model.image_size)
    mean, std = segmenter.normalization
    meta = {"mean": list(mean), "std": list(std)}
    return {"model.pt2": _saved(program)}, meta, (BUNDLE_DIR / "README-segmentation.md").read_text()


def _instances(model: ModelVersion, checkpoint: str) -> tuple[dict[str, bytes], dict, str]:
    """Two programs: from normalised pixels, padded as a detector's are, to every location's box and scores, the
    pyramid's finest levels and the semantic logits (model.pt2); and from RoIAlign's pooled features to each box's
    mask logits (masks.pt2). sightline_instances.py does what lies between and after them, as here."""
    from training.ml.instances_dense import programs

    segmenter = instance_segmenter_load(model.checkpoint_file(checkpoint).name)
    network, masks = programs(segmenter.network, model.image_size)
    mean, std = segmenter.normalization
    meta = {"mean": list(mean), "std": list(std), "nms": NMS_DEFAULT}
    exported = {"model.pt2": _saved(network), "masks.pt2": _saved(masks)}
    return exported, meta, (BUNDLE_DIR / "README-instances.md").read_text()


# --- the bundle as a job: torch.export takes tens of seconds, so a worker builds it, once per checkpoint ------


def bundle_name(*, model: ModelVersion, checkpoint: str) -> str:
    """Where the built bundle is kept: one per checkpoint file and thresholds, so a change builds a new one."""
    thresholds = json.dumps(model.thresholds_for(checkpoint))
    stamp = f"{model.checkpoint_file(checkpoint).name}|{thresholds}|{BUNDLE_FORMAT}"
    stamp = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    return f"bundles/{model.pk}/{checkpoint}-{stamp}.zip"


def bundle_state(*, model: ModelVersion, checkpoint: str) -> dict:
    """ready (with its download URL), building (with its job) or missing."""
    from django.core.files.storage import default_storage

    from jobs.models import Job

    if default_storage.exists(bundle_name(model=model, checkpoint=checkpoint)):
        return {"status": "ready", "download_url": f"/api/models/{model.pk}/bundle/?checkpoint={checkpoint}"}
    job = (
        Job.objects.active()
        .filter(kind=BUNDLE_KIND, payload__model_id=model.pk, payload__checkpoint=checkpoint)
        .order_by("-id")
        .first()
    )
    if job is not None:
        return {"status": "building", "job": job.pk, "progress": job.progress, "phase": job.phase}
    return {"status": "missing"}


def models_bundling(model_ids) -> set[tuple[int, str]]:
    """The (model, checkpoint) bundles of these models being built, in one query."""
    from jobs.models import Job

    building = Job.objects.active().filter(kind=BUNDLE_KIND, payload__model_id__in=list(model_ids))
    return set(building.values_list("payload__model_id", "payload__checkpoint"))


def bundle_request(*, model: ModelVersion, checkpoint: str, user) -> dict:
    """Start building the bundle unless it is built or being built; its state either way."""
    from django.db import transaction

    from jobs.models import Job
    from jobs.services import job_submit

    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(pk=model.pk).first()  # one request starts it
        state = bundle_state(model=model, checkpoint=checkpoint)
        if state["status"] != "missing":
            return state
        job = Job.objects.create(
            kind=BUNDLE_KIND,
            project_id=model.project_id,
            created_by=user,
            payload={"model_id": model.pk, "checkpoint": checkpoint},
        )
        job_submit(job)
    return bundle_state(model=model, checkpoint=checkpoint)


def onnx_made(*, model: ModelVersion) -> bool:
    """Whether the model has an ONNX file: a classifier's is in its bundle (`model.onnx`) once that is built, a
    detector trained here carries its network as ONNX (training.ml.detection.onnx_attach). Loading a bundle keeps
    only the checked checkpoint, so a loaded detector has none."""
    from django.conf import settings
    from django.core.files.storage import default_storage

    if model.task == Task.CLASSIFICATION:
        return default_storage.exists(bundle_name(model=model, checkpoint=model.predict_with))
    return (
        model.task == Task.DETECTION
        and not model.segmentation_head
        and not model.is_loaded
        and settings.SIGHTLINE_DETECTOR_ONNX
    )


def onnx_bytes(*, model: ModelVersion) -> bytes | None:
    """The ONNX file onnx_made promises, or None where its export failed (the bundle or the checkpoint is then
    without it)."""
    from projects.files import stored_bytes

    if model.task == Task.CLASSIFICATION:
        bundle = zipfile.ZipFile(io.BytesIO(stored_bytes(bundle_name(model=model, checkpoint=model.predict_with))))
        found = [name for name in bundle.namelist() if name.endswith("/model.onnx")]
        return bundle.read(found[0]) if found else None
    name = model.checkpoint_file(model.predict_with).name
    saved = torch.load(io.BytesIO(stored_bytes(name)), map_location="cpu", weights_only=True)
    return bytes(saved["onnx"]) if saved.get("onnx") else None


def bundle_job_execute(job, context) -> str:
    """The bundle kind's work (jobs.registry): export the model and store the ZIP."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    model = ModelVersion.objects.get(pk=job.payload["model_id"])
    checkpoint = job.payload["checkpoint"]
    context.progress(0.1, "Exporting the model with torch.export")
    content = model_bundle(model=model, checkpoint=checkpoint)
    context.check()
    name = bundle_name(model=model, checkpoint=checkpoint)
    if not default_storage.exists(name):
        default_storage.save(name, ContentFile(content))
    return f"The {checkpoint} model of {model.name} is ready to download."
