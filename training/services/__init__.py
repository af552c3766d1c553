"""Every write to training's tables: starting and cancelling training jobs, model settings, deleting; and in
their own modules, freezing dataset versions (datasets) and what a worker writes while it trains (runs)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from jobs.services import job_cancel, job_submit
from projects.models import Project
from training.models import OBJECT_TASKS, Checkpoint, ModelVersion, Task, TrainingJob
from training.parameters import parameters_clean
from training.services import datasets
from training.services.naming import model_name_clean


@transaction.atomic
def training_job_start(
    *,
    project: Project,
    user,
    task: str,
    multi_label: bool = False,
    name: str | None = None,
    parameters: dict | None = None,
    images: list[int] | None = None,
    bundle_when_done: bool = False,
) -> TrainingJob:
    """Check the parameters, freeze a dataset version (of `images` only, when given), and queue the job once the rows
    are committed. With `bundle_when_done`, the model's bundle is built once it is trained (the SeeMe SDK downloads
    it, and has no request that would start that)."""
    if task not in Task.values:
        raise ValidationError({"task": [f"Unknown task {task!r}; use one of {', '.join(Task.values)}."]})
    cleaned = parameters_clean(task, parameters or {})
    # One start at a time per project: the name check and the dataset version number read, then write.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    name = model_name_clean(project, name, task)
    version = datasets.dataset_version_create(
        project=project,
        user=user,
        task=task,
        multi_label=multi_label,
        validation_percent=cleaned["validation_percent"],
        use_validation_set=cleaned["use_validation_set"],
        seed=cleaned["seed"],
        image_ids=images,
        segmentation_head=cleaned.get("segmentation_head", False),
        learn_from=cleaned.get("learn_from", "all"),
    )
    job = TrainingJob.objects.create(
        kind=TrainingJob.KIND,
        project=project,
        created_by=user,
        task=task,
        name=name,
        dataset_version=version,
        parameters={**cleaned, "multi_label": multi_label},
        epochs=cleaned["epochs"],
        payload={"bundle_when_done": True} if bundle_when_done else {},
    )
    job_submit(job)
    return job


def training_job_cancel(*, job: TrainingJob) -> TrainingJob:
    """A queued job is cancelled at once; a running one stops at its next batch (keeping any finished epoch)."""
    job_cancel(job=job)
    job.refresh_from_db()
    return job


def model_version_update(
    *,
    model: ModelVersion,
    predict_with: str | None = None,
    thresholds: dict[str, list[float] | None] | None = None,
    iou_threshold: float | None = None,
) -> ModelVersion:
    """Choose the checkpoint that predicts, set (None: reset to optimised) multi-label or detection thresholds, or
    a detector's IoU threshold."""
    fields = []
    if iou_threshold is not None:
        if model.task not in OBJECT_TASKS:
            raise ValidationError(
                {"iou_threshold": ["Only detection and instance segmentation models have an IoU threshold."]}
            )
        if not 0.05 <= iou_threshold <= 0.95:
            raise ValidationError({"iou_threshold": ["Give an IoU threshold from 0.05 to 0.95."]})
        if model.is_loaded:
            raise ValidationError(
                {"iou_threshold": ["A loaded model was not evaluated here: it has no statistics to count at an IoU."]}
            )
        if iou_threshold != model.iou_threshold:
            from training import statistics

            # The summary and the F1-optimised thresholds were counted at the old IoU: count them again.
            model.iou_threshold = iou_threshold
            model.metrics, model.optimized_thresholds = statistics.model_summary(model=model)
            fields += ["iou_threshold", "metrics", "optimized_thresholds"]
    if predict_with is not None:
        if predict_with not in Checkpoint.values:
            raise ValidationError({"predict_with": ["Choose best or last."]})
        model.predict_with = predict_with
        fields.append("predict_with")
    if thresholds is not None:
        if model.thresholds_for(Checkpoint.BEST) is None:
            what = "Semantic segmentation" if model.task == Task.SEMANTIC else "Single-label"
            raise ValidationError({"thresholds": [f"{what} models have no score thresholds."]})
        merged = dict(model.thresholds)
        for checkpoint, values in thresholds.items():
            if checkpoint not in Checkpoint.values:
                raise ValidationError({"thresholds": [f"Unknown checkpoint {checkpoint!r}; use best or last."]})
            if values is None:
                merged.pop(checkpoint, None)
                continue
            if (
                not isinstance(values, list)
                or len(values) != len(model.labels)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in values)
            ):
                raise ValidationError({"thresholds": [f"Give {len(model.labels)} numbers from 0 to 1, one per label."]})
            merged[checkpoint] = [float(v) for v in values]
        model.thresholds = merged
        fields.append("thresholds")
    if fields:
        model.save(update_fields=fields)
    return model


def model_version_delete(*, model: ModelVersion) -> None:
    """Delete the model and the job that made it (if it was trained here), cancelling its prediction jobs; training/signals.py removes its
    files after commit."""
    from training.services.predicting import prediction_jobs_cancel

    prediction_jobs_cancel(model=model)
    if model.job_id is None:  # loaded from a bundle
        model.delete()
    else:
        model.job.delete()


def training_job_delete(*, job: TrainingJob) -> None:
    """Delete a job that is not running (and the model it made, if any)."""
    if job.is_active:
        raise ValidationError({"status": ["Cancel the job before deleting it."]})
    job.delete()
