"""Running one training job inside a worker: the glue between the job's row and training/ml.

The job row is claimed once (queued -> running), beats from a side thread while torch works, and
takes progress, curves and log lines at most once a second. Whatever happens, it ends finished,
cancelled or failed; a worker killed mid-run is caught by services.training_jobs_fail_stale.
"""

from __future__ import annotations

import io
import logging
import threading
import time

import numpy as np
import torch
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from projects.files import stored_bytes
from training import statistics
from training.ml import classification, runtime
from training.ml.images import Sample
from training.models import DatasetItem, ModelVersion, Split, TrainingJob

logger = logging.getLogger(__name__)
UPDATE_EVERY_SECONDS = 1.0
LOG_LIMIT = 100_000  # characters of log kept on the row


class _Beat(threading.Thread):
    """Touches heartbeat_at every few seconds while the job runs, however long one batch takes."""

    def __init__(self, job_id: int, every: float):
        super().__init__(daemon=True, name=f"training-job-{job_id}-heartbeat")
        self.job_id, self.every, self.done = job_id, every, threading.Event()

    def run(self) -> None:
        from training.services import worker_heartbeat_record

        try:
            while not self.done.wait(self.every):
                try:
                    TrainingJob.objects.filter(pk=self.job_id).update(heartbeat_at=timezone.now())
                    # The scheduled heartbeat task waits while this job holds the worker; /healthz should not.
                    worker_heartbeat_record()
                except DatabaseError:  # a blip: the next beat tries again, and the reaper allows for a few
                    logger.warning("Training job %s: heartbeat failed", self.job_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()


class _Reporter:
    """Hooks for training/ml that write to the job row, throttled, and read its cancel flag."""

    def __init__(self, job: TrainingJob):
        self.job, self.last_write, self.last_check, self.cancelled = job, 0.0, 0.0, False
        self.epochs_written = 0
        self.lines: list[str] = [job.log] if job.log else []

    def log(self, line: str) -> None:
        self.lines.append(f"{timezone.now():%H:%M:%S} {line}")
        self.last_write = 0.0  # a new line is worth a write

    def progress(self, progress: classification.Progress) -> None:
        now = time.monotonic()
        epoch_ended = len(progress.history) != self.epochs_written
        if now - self.last_write < UPDATE_EVERY_SECONDS and not epoch_ended:
            return
        self.last_write, self.epochs_written = now, len(progress.history)
        TrainingJob.objects.filter(pk=self.job.pk).update(
            progress=round(min(max(progress.fraction, 0.0), 1.0), 4), epoch=progress.epoch, loss=progress.loss,
            eta_seconds=progress.eta_seconds, history=progress.history, best_epoch=progress.best_epoch,
            log="\n".join(self.lines)[-LOG_LIMIT:], heartbeat_at=timezone.now(),
        )  # fmt: skip

    def stop(self) -> bool:
        now = time.monotonic()
        if not self.cancelled and now - self.last_check >= UPDATE_EVERY_SECONDS:
            self.last_check = now
            self.cancelled = TrainingJob.objects.filter(pk=self.job.pk, cancel_requested=True).exists()
        return self.cancelled

    def hooks(self) -> classification.Hooks:
        return classification.Hooks(progress=self.progress, stop=self.stop, log=self.log)


def training_job_run(*, job_id: int) -> None:
    """Run a queued job; one that is no longer queued (ran already, or was cancelled) is left alone."""
    claimed = TrainingJob.objects.filter(pk=job_id, status=TrainingJob.Status.QUEUED).update(
        status=TrainingJob.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    job = TrainingJob.objects.select_related("dataset_version").get(pk=job_id)
    reporter = _Reporter(job)
    beat = _Beat(job.pk, settings.SIGHTLINE_TRAINING_HEARTBEAT_SECONDS)
    beat.start()
    status, error = TrainingJob.Status.FAILED, ""
    try:
        _, stopped_by = _train(job, reporter)
        status = TrainingJob.Status.CANCELLED if stopped_by == "cancelled" else TrainingJob.Status.FINISHED
    except classification.Cancelled as exc:
        status = TrainingJob.Status.CANCELLED
        reporter.log(str(exc))
    except (ValueError, MemoryError, FileNotFoundError) as exc:  # bad data or settings: say it plainly
        error = str(exc)
        reporter.log(f"Failed: {error}")
    except Exception as exc:  # a job reports every failure on its row instead of dying silently
        logger.exception("Training job %s failed", job_id)
        error = f"Unexpected error: {type(exc).__name__}: {exc}"
        reporter.log(f"Failed: {error}")
    finally:
        beat.done.set()
        beat.join(timeout=10)
    fields = {"status": status, "error": error, "finished_at": timezone.now(), "log": "\n".join(reporter.lines)[-LOG_LIMIT:]}
    if status == TrainingJob.Status.FINISHED:
        fields.update(progress=1.0, eta_seconds=0)
    # Only a job still running is ended here: one the reaper marked failed stays failed.
    TrainingJob.objects.filter(pk=job_id, status=TrainingJob.Status.RUNNING).update(**fields)


def _samples(job: TrainingJob, reporter: _Reporter) -> tuple[list, list, list, list]:
    items = list(DatasetItem.objects.filter(dataset_version=job.dataset_version).order_by("id"))
    present = [item for item in items if default_storage.exists(item.file)]
    if len(present) < len(items):
        reporter.log(f"{len(items) - len(present)} image(s) were deleted since the job started; trained without them.")
    train = [item for item in present if item.split == Split.TRAIN]
    valid = [item for item in present if item.split == Split.VALID]
    if not train:
        raise ValueError("No training images are left: they were deleted after the job started.")

    def samples(chosen):
        return [Sample(item.file, tuple(item.targets)) for item in chosen]

    return samples(train), samples(valid), train, valid


def _train(job: TrainingJob, reporter: _Reporter) -> tuple[ModelVersion, str]:
    parameters, version = job.parameters, job.dataset_version
    train_samples, valid_samples, train_items, valid_items = _samples(job, reporter)
    config = classification.ClassifierConfig(
        labels=tuple(version.label_names), multi_label=version.multi_label, backbone=parameters["backbone"],
        pretrained=parameters["pretrained"], image_size=parameters["image_size"], epochs=parameters["epochs"],
        batch_size=parameters["batch_size"], learning_rate=parameters["learning_rate"],
        fine_tune=parameters["fine_tune"], augment=parameters["augment"], flip=parameters["flip"],
        time_limit_seconds=parameters["time_limit_minutes"] * 60, patience=parameters["patience"],
        seed=parameters["seed"],
    )  # fmt: skip
    device = runtime.device_choose()
    TrainingJob.objects.filter(pk=job.pk).update(device=runtime.describe(device))
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


def _bytes_of(obj, save) -> bytes:
    out = io.BytesIO()
    save(obj, out)
    return out.getvalue()


def _model_save(job, config, result, train_items, valid_items) -> ModelVersion:
    """Checkpoints and evaluations as files, then the ModelVersion row with its summary metrics."""
    item_ids = np.array([i.pk for i in train_items] + [i.pk for i in valid_items], dtype=np.int64)
    splits = np.array([0] * len(train_items) + [1] * len(valid_items), dtype=np.int8)
    model = ModelVersion(
        project_id=job.project_id, job=job, dataset_version=job.dataset_version, name=job.name, task=job.task,
        multi_label=config.multi_label, backbone=config.backbone, image_size=config.image_size,
        labels=list(config.labels), best_epoch=result.best_epoch, epochs_trained=len(result.history),
    )  # fmt: skip
    for checkpoint in ("best", "last"):
        scores = np.concatenate([result.scores[checkpoint]["train"], result.scores[checkpoint]["valid"]])
        evaluation = _bytes_of(
            {"item_ids": item_ids, "splits": splits, "scores": scores},
            lambda arrays, out: np.savez_compressed(out, **arrays),
        )
        getattr(model, f"{checkpoint}_checkpoint").save(
            f"{checkpoint}.pt", ContentFile(_bytes_of(result.checkpoints[checkpoint], torch.save)), save=False
        )
        getattr(model, f"{checkpoint}_evaluation").save(f"{checkpoint}-evaluation.npz", ContentFile(evaluation), save=False)
    try:
        model.metrics, model.optimized_thresholds = statistics.model_summary(model=model)
        with transaction.atomic():
            # The reaper may have given up on this job meanwhile; then its model is not kept.
            if not TrainingJob.objects.select_for_update().filter(pk=job.pk, status=TrainingJob.Status.RUNNING).exists():
                raise ValueError("The job was marked failed while it ran (its heartbeat went stale); its model is not kept.")
            model.save()
    except BaseException:
        for field in (model.best_checkpoint, model.last_checkpoint, model.best_evaluation, model.last_evaluation):
            if field:
                field.storage.delete(field.name)
        raise
    return model
