"""Running one training job inside a worker: the glue between the job's rows and training/ml.

jobs.runner claims the row, beats, and ends it; this module trains, writing progress, curves and
log lines at most once a second, and reads the cancel flag between batches. A Stop keeps the epochs
finished so far as the model.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from jobs.models import Job
from jobs.runner import Cancelled, Context, JobFailed, unexpected_error
from projects.files import stored_bytes
from training import statistics
from training.ml import classification, detection, heads, instances, loop, runtime, segmentation
from training.ml.images import Sample
from training.models import DatasetItem, ModelVersion, Split, Task, TrainingJob

logger = logging.getLogger(__name__)
UPDATE_EVERY_SECONDS = 1.0
LOG_LIMIT = 100_000  # characters of log kept on the row


class _Reporter:
    """Hooks for training/ml that write to the job's rows, throttled, and read its cancel flag."""

    def __init__(self, job: TrainingJob, context: Context):
        self.job, self.context, self.last_write = job, context, 0.0
        self.epochs_written = 0
        self.lines: list[str] = [job.log] if job.log else []

    def log(self, line: str) -> None:
        self.lines.append(f"{timezone.now():%H:%M:%S} {line}")
        self.last_write = 0.0  # a new line is worth a write

    def log_text(self) -> str:
        return "\n".join(self.lines)[-LOG_LIMIT:]

    def progress(self, progress: loop.Progress) -> None:
        now = time.monotonic()
        epoch_ended = len(progress.history) != self.epochs_written
        if now - self.last_write < UPDATE_EVERY_SECONDS and not epoch_ended:
            return
        self.last_write, self.epochs_written = now, len(progress.history)
        phase = f"Epoch {min(progress.epoch + 1, self.job.epochs)} of {self.job.epochs}"
        self.context.progress(progress.fraction, phase)
        TrainingJob.objects.filter(pk=self.job.pk).update(
            epoch=progress.epoch,
            loss=progress.loss,
            eta_seconds=progress.eta_seconds,
            history=progress.history,
            best_epoch=progress.best_epoch,
            log=self.log_text(),
        )

    def stop(self) -> bool:
        return self.context.cancelled()

    def hooks(self) -> loop.Hooks:
        return loop.Hooks(progress=self.progress, stop=self.stop, log=self.log)


def training_job_execute(job, context: Context) -> str:
    """The training kind's work (jobs.registry): train, keep the model, and say how it went."""
    job = TrainingJob.objects.select_related("dataset_version").get(pk=job.pk)
    reporter = _Reporter(job, context)
    try:
        model, stopped_by = _train(job, reporter)
    except loop.Cancelled as exc:
        reporter.log(str(exc))
        raise Cancelled(str(exc)) from None
    except (ValueError, MemoryError) as exc:  # bad data or settings: say it plainly
        reporter.log(f"Failed: {exc}")
        raise JobFailed(str(exc)) from None
    except FileNotFoundError as exc:  # its text is a path on the worker: name only the file
        message = f"A stored file is missing: {Path(exc.filename or '?').name}."
        reporter.log(f"Failed: {message}")
        raise JobFailed(message) from None
    except Exception as exc:
        reporter.log(f"Failed: {unexpected_error(exc, job.pk)}")
        raise
    finally:
        fields = {"log": reporter.log_text()}
        TrainingJob.objects.filter(pk=job.pk).update(**fields)
    TrainingJob.objects.filter(pk=job.pk).update(eta_seconds=0)
    summary = f"Model {model.name}: best epoch {model.best_epoch} of {model.epochs_trained}."
    if stopped_by == "cancelled":
        raise Cancelled(f"Stopped on request; {summary}")
    if job.payload.get("bundle_when_done"):
        from training.bundles import bundle_request

        bundle_request(model=model, checkpoint=model.predict_with, user=job.created_by)
    return summary


def _samples(job: TrainingJob, reporter: _Reporter, sample=None) -> tuple[list, list, list, list]:
    items = list(DatasetItem.objects.filter(dataset_version=job.dataset_version).order_by("id"))
    present = _present(items)
    if len(present) < len(items):
        reporter.log(f"{len(items) - len(present)} image(s) were deleted since the job started; trained without them.")
    train = [item for item in present if item.split == Split.TRAIN]
    valid = [item for item in present if item.split == Split.VALID]
    if not train:
        raise ValueError("No training images are left: they were deleted after the job started.")

    def samples(chosen):
        return [(sample or _classification_sample)(item) for item in chosen]

    return samples(train), samples(valid), train, valid


def _classification_sample(item: DatasetItem) -> Sample:
    return Sample(item.file, tuple(item.targets))


def _detection_sample(item: DatasetItem) -> detection.BoxSample:
    return detection.BoxSample(item.file, tuple(tuple(row) for row in item.targets["boxes"]))


def _segmentation_sample(item: DatasetItem) -> segmentation.MaskSample:
    return segmentation.MaskSample(item.file, tuple((row[0], row[1], row[2]) for row in item.targets["shapes"]))


def _present(items: list[DatasetItem]) -> list[DatasetItem]:
    """The items whose image file is still stored: one query for the images that still exist, not one
    storage call per item (on S3 each is a request). An image deleted since the freeze takes its file."""
    from projects.models import Image

    alive = set(Image.objects.filter(pk__in=[i.image_id for i in items if i.image_id]).values_list("file", flat=True))
    return [item for item in items if item.file in alive]


def _train(job: TrainingJob, reporter: _Reporter) -> tuple[ModelVersion, str]:
    if job.task == Task.DETECTION:
        return _train_detection(job, reporter)
    if job.task == Task.SEMANTIC:
        return _train_semantic(job, reporter)
    if job.task == Task.INSTANCE:
        return _train_instances(job, reporter)
    parameters, version = job.parameters, job.dataset_version
    train_samples, valid_samples, train_items, valid_items = _samples(job, reporter)
    config = classification.ClassifierConfig(
        labels=tuple(version.label_names),
        multi_label=version.multi_label,
        backbone=parameters["backbone"],
        pretrained=parameters["pretrained"],
        image_size=parameters["image_size"],
        epochs=parameters["epochs"],
        batch_size=parameters["batch_size"],
        learning_rate=parameters["learning_rate"],
        fine_tune=parameters["fine_tune"],
        augment=parameters["augment"],
        flip=parameters["flip"],
        time_limit_seconds=parameters["time_limit_minutes"] * 60,
        patience=parameters["patience"],
        seed=parameters["seed"],
    )
    device = runtime.device_choose()
    TrainingJob.objects.filter(pk=job.pk).update(device=runtime.describe(device))
    reporter.context.progress(0, f"Preparing {len(train_samples) + len(valid_samples)} images")
    reporter.log(
        f"Training {config.backbone} ({'pretrained' if config.pretrained else 'random weights'}, fine_tune="
        f"{config.fine_tune}) on {len(train_samples)} images, validating on {len(valid_samples)}, "
        f"{runtime.describe(device)}."
    )
    result = classification.train(
        config, train_samples, valid_samples, hooks=reporter.hooks(), read=stored_bytes, device=device
    )
    reporter.log(f"Stopped by {result.stopped_by}; best epoch {result.best_epoch} of {len(result.history)}.")
    return _model_save(job, config, result, train_items, valid_items), result.stopped_by


def _heads_sample(item: DatasetItem) -> heads.HeadsSample:
    targets = item.targets
    return heads.HeadsSample(
        item.file,
        tuple(tuple(row) for row in targets["boxes"]),
        tuple((row[0], row[1], row[2]) for row in targets["shapes"]),
        painted=targets["painted"],
        boxed=targets["boxed"],
    )


def _train_detection(job: TrainingJob, reporter: _Reporter) -> tuple[ModelVersion, str]:
    parameters, version = job.parameters, job.dataset_version
    if parameters.get("segmentation_head"):
        return _train_heads(job, reporter)
    train_samples, valid_samples, train_items, valid_items = _samples(job, reporter, _detection_sample)
    config = detection.DetectorConfig(
        **_network_settings(job), model_size=parameters["model_size"], image_size=parameters["image_size"]
    )
    device = _device_started(job, reporter, len(train_samples) + len(valid_samples))
    boxes = sum(len(s.boxes) for s in train_samples)
    negatives = sum(not s.boxes for s in train_samples)
    reporter.log(
        f"Training a {config.model_size} detector ({config.backbone}, "
        f"{'pretrained' if config.pretrained else 'random weights'}, {config.size} px) on {len(train_samples)} "
        f"images ({boxes} boxes, {negatives} without objects), validating on {len(valid_samples)}, "
        f"{runtime.describe(device)}."
    )
    if version.counts.get("skipped_boxes"):
        reporter.log(f"{version.counts['skipped_boxes']} box(es) of zero area or outside their image were skipped.")
    result = detection.train(
        config, train_samples, valid_samples, hooks=reporter.hooks(), read=stored_bytes, device=device
    )
    reporter.log(f"Stopped by {result.stopped_by}; best epoch {result.best_epoch} of {len(result.history)}.")
    if settings.SIGHTLINE_DETECTOR_ONNX:
        _onnx_attach(reporter, result.checkpoints)
    model = _model_row(job, config, result, image_size=config.size)
    item_ids, splits = _item_arrays(train_items, valid_items)
    evaluations = {}
    for checkpoint in ("best", "last"):
        per_image = result.predictions[checkpoint]["train"] + result.predictions[checkpoint]["valid"]
        evaluations[checkpoint] = {"item_ids": item_ids, "splits": splits, **_rows_arrays(per_image)}
    return _model_store(model, result.checkpoints, evaluations), result.stopped_by


def _train_heads(job: TrainingJob, reporter: _Reporter) -> tuple[ModelVersion, str]:
    """Spec 004's model: the detector with a segmentation head. Its evaluation holds what a detector's holds (every
    image's boxes) and what a semantic model's holds (the pixels counted, and each image's label map)."""
    parameters = job.parameters
    train_samples, valid_samples, train_items, valid_items = _samples(job, reporter, _heads_sample)
    config = heads.HeadsConfig(
        **_network_settings(job), model_size=parameters["model_size"], image_size=parameters["image_size"]
    )
    device = _device_started(job, reporter, len(train_samples) + len(valid_samples))
    boxes = sum(len(s.boxes) for s in train_samples)
    boxed, painted = sum(s.boxed for s in train_samples), sum(s.painted for s in train_samples)
    reporter.log(
        f"Training a {config.model_size} detector with a segmentation head ({config.backbone}, "
        f"{'pretrained' if config.pretrained else 'random weights'}, {config.size} px) on {len(train_samples)} "
        f"images (the detection head learns {boxes} boxes from {boxed} of them, the segmentation head the pixels of "
        f"{painted}), validating on {len(valid_samples)}, {runtime.describe(device)}."
    )
    if job.dataset_version.counts.get("skipped_boxes"):
        reporter.log(
            f"{job.dataset_version.counts['skipped_boxes']} box(es) of zero area or outside their image were skipped."
        )
    result = heads.train(config, train_samples, valid_samples, hooks=reporter.hooks(), read=stored_bytes, device=device)
    reporter.log(f"Stopped by {result.stopped_by}; best epoch {result.best_epoch} of {len(result.history)}.")
    model = _model_row(job, config, result, image_size=config.size, segmentation_head=True)
    item_ids, splits = _item_arrays(train_items, valid_items)
    evaluations = {
        checkpoint: {
            "item_ids": item_ids,
            "splits": splits,
            **_rows_arrays(result.boxes[checkpoint]["train"] + result.boxes[checkpoint]["valid"]),
            **_pixels_arrays(result.scored[checkpoint]),
        }
        for checkpoint in ("best", "last")
    }
    return _model_store(model, result.checkpoints, evaluations), result.stopped_by


def _rows_arrays(per_image: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every image's predicted rows (x, y, w, h, label, score) in one array, and the image each belongs to."""
    rows = np.concatenate(per_image) if per_image else np.zeros((0, 6), np.float32)
    owner = (
        np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(per_image)])
        if per_image
        else np.zeros(0, np.int64)
    )
    return {"rows": rows, "row_item": owner}


def _train_instances(job: TrainingJob, reporter: _Reporter) -> tuple[ModelVersion, str]:
    parameters = job.parameters
    train_samples, valid_samples, train_items, valid_items = _samples(job, reporter, _segmentation_sample)
    config = instances.InstanceConfig(
        **_network_settings(job), model_size=parameters["model_size"], image_size=parameters["image_size"]
    )
    device = _device_started(job, reporter, len(train_samples) + len(valid_samples))
    shapes = sum(len(s.shapes) for s in train_samples)
    negatives = sum(not s.shapes for s in train_samples)
    reporter.log(
        f"Training a {config.model_size} instance segmentation model ({config.backbone}, "
        f"{'pretrained' if config.pretrained else 'random weights'}, {config.size} px) on {len(train_samples)} "
        f"images ({shapes} instances, {negatives} without any), validating on {len(valid_samples)}, "
        f"{runtime.describe(device)}."
    )
    result = instances.train(
        config, train_samples, valid_samples, hooks=reporter.hooks(), read=stored_bytes, device=device
    )
    reporter.log(f"Stopped by {result.stopped_by}; best epoch {result.best_epoch} of {len(result.history)}.")
    model = _model_row(job, config, result, image_size=config.size)
    item_ids, splits = _item_arrays(train_items, valid_items)
    evaluations = {}
    for checkpoint in ("best", "last"):
        found = result.predictions[checkpoint]["train"] + result.predictions[checkpoint]["valid"]
        masks = [mask for image in found for mask in image.masks]
        counts = [mask["counts"].encode("ascii") for mask in masks]
        evaluations[checkpoint] = {
            "item_ids": item_ids,
            "splits": splits,
            **_rows_arrays([image.rows for image in found]),
            # Each row's mask (COCO RLE at its image's upright size): the counts in one byte array, cut at the
            # offsets, and the sizes (height, width).
            "mask_counts": np.frombuffer(b"".join(counts), dtype=np.uint8),
            "mask_offsets": np.cumsum([0, *(len(c) for c in counts)]).astype(np.int64),
            "mask_sizes": np.asarray([mask["size"] for mask in masks], dtype=np.int64).reshape(-1, 2),
        }
    return _model_store(model, result.checkpoints, evaluations), result.stopped_by


def _network_settings(job: TrainingJob) -> dict:
    """What a detector's and a segmentation model's configs share, from the job's parameters."""
    parameters = job.parameters
    return {
        "labels": tuple(job.dataset_version.label_names),
        "backbone": parameters["backbone"],
        "pretrained": parameters["pretrained"],
        "epochs": parameters["epochs"],
        "batch_size": parameters["batch_size"],
        "learning_rate": parameters["learning_rate"],
        "flip": parameters["flip"],
        "time_limit_seconds": parameters["time_limit_minutes"] * 60,
        "patience_seconds": parameters["patience_minutes"] * 60,
        "seed": parameters["seed"],
    }


def _device_started(job: TrainingJob, reporter: _Reporter, images: int):
    """The device training runs on, written on the job, and the first phase shown."""
    device = runtime.device_choose()
    TrainingJob.objects.filter(pk=job.pk).update(device=runtime.describe(device))
    reporter.context.progress(0, f"Reading {images} images")
    return device


def _train_semantic(job: TrainingJob, reporter: _Reporter) -> tuple[ModelVersion, str]:
    train_samples, valid_samples, train_items, valid_items = _samples(job, reporter, _segmentation_sample)
    config = segmentation.SegmenterConfig(**_network_settings(job), image_size=job.parameters["image_size"])
    device = _device_started(job, reporter, len(train_samples) + len(valid_samples))
    shapes = sum(len(s.shapes) for s in train_samples)
    negatives = sum(not s.shapes for s in train_samples)
    reporter.log(
        f"Training a semantic segmentation model ({config.backbone}, "
        f"{'pretrained' if config.pretrained else 'random weights'}, {config.image_size} px) on "
        f"{len(train_samples)} images ({shapes} shapes, {negatives} without any), validating on "
        f"{len(valid_samples)}, {runtime.describe(device)}."
    )
    result = segmentation.train(
        config, train_samples, valid_samples, hooks=reporter.hooks(), read=stored_bytes, device=device
    )
    reporter.log(f"Stopped by {result.stopped_by}; best epoch {result.best_epoch} of {len(result.history)}.")
    model = _model_row(job, config, result, image_size=config.image_size)
    item_ids, splits = _item_arrays(train_items, valid_items)
    evaluations = {
        checkpoint: {"item_ids": item_ids, "splits": splits, **_pixels_arrays(result.scored[checkpoint])}
        for checkpoint in ("best", "last")
    }
    return _model_store(model, result.checkpoints, evaluations), result.stopped_by


def _pixels_arrays(scored: dict) -> dict[str, np.ndarray]:
    """A segmentation's evaluation of one checkpoint (segmentation.Scored per split): the pixels counted per split and
    per image, and each image's predicted label map (a PNG at the training size), for the galleries: one byte array,
    cut at the offsets."""
    train, valid = scored["train"], scored["valid"]
    pictures = train.maps + valid.maps
    return {
        "total_train": train.total,
        "total_valid": valid.total,
        "per_image": np.concatenate([train.per_image, valid.per_image]),
        "maps": np.frombuffer(b"".join(pictures), dtype=np.uint8),
        "map_offsets": np.cumsum([0, *(len(p) for p in pictures)]).astype(np.int64),
    }


def _onnx_attach(reporter: _Reporter, checkpoints: dict) -> None:
    """The checkpoints exported to ONNX, which predicts twice as fast as torch on one CPU thread. The export is a
    speed-up only: when it fails, the job logs why and the model predicts with torch."""
    reporter.context.progress(1, "Exporting the model to ONNX for fast prediction on CPUs (about a minute)")
    started = time.monotonic()
    try:
        detection.onnx_attach(checkpoints)
    except Exception as exc:  # noqa: BLE001 - any failure leaves a model that works, only slower
        logger.exception("ONNX export failed")
        reporter.log(f"The ONNX export failed ({type(exc).__name__}: {exc}); the model predicts with torch.")
        for saved in checkpoints.values():
            saved.pop("onnx", None)
        return
    reporter.log(f"Exported to ONNX in {time.monotonic() - started:.0f} s.")


def _model_row(job: TrainingJob, config, result, **fields) -> ModelVersion:
    """The model's row, not yet saved: what it is, what it learned from, and when it was best."""
    return ModelVersion(
        project_id=job.project_id,
        job=job,
        dataset_version=job.dataset_version,
        name=job.name,
        task=job.task,
        backbone=config.backbone,
        labels=list(config.labels),
        best_epoch=result.best_epoch,
        epochs_trained=len(result.history),
        **fields,
    )


def _item_arrays(train_items: list, valid_items: list) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation's rows: dataset item ids, training ones first, and their splits (0 train, 1 valid)."""
    item_ids = np.array([i.pk for i in train_items] + [i.pk for i in valid_items], dtype=np.int64)
    return item_ids, np.array([0] * len(train_items) + [1] * len(valid_items), dtype=np.int8)


def _bytes_of(obj, save) -> bytes:
    out = io.BytesIO()
    save(obj, out)
    return out.getvalue()


def _model_save(job, config, result, train_items, valid_items) -> ModelVersion:
    """A classifier's checkpoints and each image's scores."""
    item_ids, splits = _item_arrays(train_items, valid_items)
    model = _model_row(job, config, result, image_size=config.image_size, multi_label=config.multi_label)
    evaluations = {
        checkpoint: {
            "item_ids": item_ids,
            "splits": splits,
            "scores": np.concatenate([result.scores[checkpoint]["train"], result.scores[checkpoint]["valid"]]),
        }
        for checkpoint in ("best", "last")
    }
    return _model_store(model, result.checkpoints, evaluations)


def _model_store(model: ModelVersion, checkpoints: dict, evaluations: dict) -> ModelVersion:
    """Checkpoints and evaluations as files, then the ModelVersion row with its summary metrics."""
    for checkpoint in ("best", "last"):
        evaluation = _bytes_of(evaluations[checkpoint], lambda arrays, out: np.savez_compressed(out, **arrays))
        getattr(model, f"{checkpoint}_checkpoint").save(
            f"{checkpoint}.pt", ContentFile(_bytes_of(checkpoints[checkpoint], torch.save)), save=False
        )
        getattr(model, f"{checkpoint}_evaluation").save(
            f"{checkpoint}-evaluation.npz", ContentFile(evaluation), save=False
        )
    try:
        model.metrics, model.optimized_thresholds = statistics.model_summary(model=model)
        with transaction.atomic():
            # The reaper may have given up on this job meanwhile; then its model is not kept.
            if not Job.objects.select_for_update().filter(pk=model.job_id, status=Job.Status.RUNNING).exists():
                raise ValueError(
                    "The job was marked failed while it ran (its heartbeat went stale); its model is not kept."
                )
            model.save()
    except BaseException:
        for field in (model.best_checkpoint, model.last_checkpoint, model.best_evaluation, model.last_evaluation):
            if field:
                field.storage.delete(field.name)
        raise
    return model
