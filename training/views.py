"""Training pages: start a job, watch it live, study a model's statistics and predictions, predict new images."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from projects.models import Image
from projects.permissions import access_project, project_permissions
from projects.selectors import ids_parse
from training import charts, predictions, selectors, services, statistics
from training.models import OBJECT_TASKS, SHAPE_TASKS, Checkpoint, ModelVersion, Split, Task, TrainingJob
from training.parameters import TASK_PARAMETERS
from training.services import predicting
from training.statistics import thresholds_parse

GALLERY_PAGE_SIZE = 48
PREDICT_MAX_IMAGES = 48  # uploads predicted at once
PREDICT_SHOWN_IMAGES = 500  # of the grid's selection, as many as a prediction job takes


def _errors(request, exc: ValidationError) -> None:
    items = exc.message_dict.items() if hasattr(exc, "error_dict") else [("", exc.messages)]
    for field, texts in items:
        for text in texts:
            messages.error(request, f"{field.replace('_', ' ')}: {text}" if field and field != "__all__" else text)


@login_required
@require_http_methods(["GET", "POST"])
def models_page(request, project_id: int):
    """Train a model (the form) and the project's jobs and models."""
    project = access_project(request.user, project_id, "train_project" if request.method == "POST" else "view_project")
    task = request.POST.get("task") or request.GET.get("task")
    task = task if task in TASK_PARAMETERS else Task.CLASSIFICATION
    parameters = TASK_PARAMETERS[task]
    if request.method == "POST":
        fields = {p.name: request.POST.get(p.name) for p in parameters if p.kind is not bool}
        fields.update({p.name: p.name in request.POST for p in parameters if p.kind is bool})
        try:
            job = services.training_job_start(
                project=project,
                user=request.user,
                task=task,
                multi_label=task == Task.CLASSIFICATION and request.POST.get("kind") == "multi",
                name=request.POST.get("name", "").strip() or None,
                parameters={k: v for k, v in fields.items() if v not in (None, "")},
            )
        except ValidationError as exc:
            _errors(request, exc)
        else:
            return redirect("training:job", project_id=project.id, job_id=job.id)
    jobs = TrainingJob.objects.filter(project=project).select_related("model_version")[:30]
    context = {
        "loaded": ModelVersion.objects.filter(project=project, job__isnull=True),
        "project": project,
        "perms": project_permissions(request.user, project),
        "jobs": jobs,
        "task": task,
        "basic": [p for p in parameters if not p.advanced],
        "advanced": [p for p in parameters if p.advanced],
        "values": request.POST if request.method == "POST" else {},
        "any_active": any(job.is_active for job in jobs),
    }
    if request.htmx:
        return render(request, "training/models.html#job-table", context)
    return render(request, "training/models.html", context)


def _job_context(request, project, job: TrainingJob) -> dict:
    curves = []
    if job.history and job.task in OBJECT_TASKS:
        curves = charts.detection_curves(job.history, job.best_epoch, masks=job.task == Task.INSTANCE)
    elif job.history and job.task == Task.SEMANTIC:
        curves = charts.segmentation_curves(job.history, job.best_epoch)
    elif job.history:
        curves = [
            charts.learning_curve(job.history, "loss", best_epoch=job.best_epoch, title="Cross-entropy loss"),
            charts.learning_curve(job.history, "accuracy", best_epoch=job.best_epoch, title="Accuracy"),
        ]
    model = getattr(job, "model_version", None)
    return {
        "project": project,
        "job": job,
        "curves": curves,
        "model": model,
        "perms": project_permissions(request.user, project),
    }


@login_required
@require_safe
def job_page(request, project_id: int, job_id: int):
    """A job's live progress; htmx polls the #job-progress partial while the job is queued or running."""
    project = access_project(request.user, project_id)
    job = TrainingJob.objects.filter(project=project, pk=job_id).select_related("dataset_version").first()
    if job is None:
        raise Http404("No such training job.")
    context = _job_context(request, project, job)
    if request.htmx:
        return render(request, "training/job.html#job-progress", context)
    return render(request, "training/job.html", context)


@login_required
@require_POST
def job_cancel(request, project_id: int, job_id: int):
    job = selectors.job_get(user=request.user, job_id=job_id, perm="train_project", project_id=project_id)
    try:
        services.training_job_cancel(job=job)
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("training:job", project_id=project_id, job_id=job.id)


IOU_CHOICES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9)


def _iou_choices(model: ModelVersion) -> list[float]:
    """The IoU thresholds the pages offer: the usual ones and the model's own (which the API may have set)."""
    return sorted({*IOU_CHOICES, model.iou_threshold})


def _iou_chosen(model: ModelVersion, raw: str | None) -> float | None:
    """The IoU threshold a page's `iou` field names, if it is one the pages offer."""
    return next((value for value in _iou_choices(model) if raw == str(value)), None)


def _previewed_thresholds(request, model: ModelVersion) -> list[float] | None:
    """Thresholds tried out on the page (clicked on the curve or typed), not yet saved; None when there are none."""
    if model.thresholds_for(Checkpoint.BEST) is None:
        return None
    try:
        return thresholds_parse(request.GET.get("thresholds"), model)
    except ValidationError as exc:
        _errors(request, exc)
        return None


def _view_state(request, model: ModelVersion) -> dict:
    checkpoint = request.GET.get("checkpoint", Checkpoint.BEST)
    split = request.GET.get("split", Split.VALID)
    return {
        "checkpoint": checkpoint if checkpoint in Checkpoint.values else Checkpoint.BEST,
        "split": split if split in Split.values else Split.VALID,
    }


@login_required
@require_safe
def model_page(request, project_id: int, model_id: int):
    """Statistics of one checkpoint on one split; thresholds (multi-label) come from the URL, the model, or F1."""
    model = selectors.model_get(user=request.user, model_id=model_id, project_id=project_id)
    if model.is_loaded:
        return _loaded_page(request, model)
    state = _view_state(request, model)
    thresholds = _previewed_thresholds(request, model)
    detection, semantic = model.task in OBJECT_TASKS, model.task == Task.SEMANTIC
    if detection:
        iou = _iou_chosen(model, request.GET.get("iou"))
        stats = statistics.detection_statistics(
            model=model, checkpoint=state["checkpoint"], split=state["split"], thresholds=thresholds, iou=iou
        )
    elif semantic:
        stats = statistics.segmentation_statistics(model=model, checkpoint=state["checkpoint"], split=state["split"])
    else:
        stats = statistics.model_statistics(
            model=model, checkpoint=state["checkpoint"], split=state["split"], thresholds=thresholds
        )
    history = model.job.history
    request.session[_last_model_key(model.project)] = model.pk  # "Predict selected" in the grid defaults to it
    context = {
        "project": model.project,
        "model": model,
        "stats": stats,
        **state,
        "perms": project_permissions(request.user, model.project),
        "detection": detection,
        "semantic": semantic,
        "thresholded": detection or model.multi_label,
        "iou_choices": _iou_choices(model),
        "curves": (
            charts.detection_curves(history, model.best_epoch, masks=model.task == Task.INSTANCE)
            if detection
            else charts.segmentation_curves(history, model.best_epoch)
            if semantic
            else [
                charts.learning_curve(history, "accuracy", best_epoch=model.best_epoch, title="Accuracy"),
                charts.learning_curve(history, "loss", best_epoch=model.best_epoch, title="Cross-entropy loss"),
            ]
        ),
        "counts": model.dataset_version.counts,
        "learned": _LEARNED.get((model.task, model.job.parameters.get("learn_from", "all")), ""),
        "query": urlencode({**state, **({"thresholds": request.GET["thresholds"]} if thresholds else {})}),
        "previewed": request.GET.get("thresholds", "") if thresholds else "",
    }
    if "export_project" in context["perms"]:
        from training.bundles import bundle_state

        context["bundle"] = bundle_state(model=model, checkpoint=state["checkpoint"])
    if model.segmentation_head:
        pixels = statistics.segmentation_statistics(model=model, checkpoint=state["checkpoint"], split=state["split"])
        context["pixels"] = pixels
        context["pixel_confusion"] = _confusion_rows([row["label"] for row in pixels["per_class"]], pixels["confusion"])
    if context["thresholded"]:
        context.update(_pr_context(request, model, stats))
    elif semantic:
        context["confusion"] = _confusion_rows([row["label"] for row in stats["per_class"]], stats["confusion"])
    else:
        context["confusion"] = _confusion_rows(stats["labels"], stats["confusion"])
    if request.htmx:
        return render(request, "training/model.html#statistics", context)
    context["inferences"] = selectors.inference_usage(model=model)
    return render(request, "training/model.html", context)


# What a detector or segmentation model was trained on, by its learn_from parameter.
_LEARNED = {
    (Task.DETECTION, "all"): "Polygons and masks were trained on as their bounding boxes.",
    (Task.DETECTION, "shapes"): "Rectangles and polygons (as their bounding boxes) were trained on; painted masks "
    "were not (learn_from: shapes).",
    (Task.DETECTION, "painted"): "Painted masks were trained on as their bounding boxes; rectangles and polygons "
    "were not (learn_from: painted).",
    (Task.SEMANTIC, "all"): "Polygons and masks were trained on; boxes, lines and points were not.",
    (Task.SEMANTIC, "shapes"): "Polygons were trained on; painted masks, boxes, lines and points were not "
    "(learn_from: shapes).",
    (Task.SEMANTIC, "painted"): "Painted masks were trained on; polygons, boxes, lines and points were not "
    "(learn_from: painted).",
}


def _loaded_page(request, model: ModelVersion):
    """A model loaded from a bundle: what it is and what it does here; it has no evaluation to show."""
    context = {
        "project": model.project,
        "model": model,
        "checkpoint": Checkpoint.BEST,
        "perms": project_permissions(request.user, model.project),
    }
    if "export_project" in context["perms"]:
        from training.bundles import bundle_state

        context["bundle"] = bundle_state(model=model, checkpoint=Checkpoint.BEST)
    context["inferences"] = selectors.inference_usage(model=model)
    return render(request, "training/model_loaded.html", context)


def _pr_context(request, model: ModelVersion, stats: dict) -> dict:
    """The precision-recall chart of all labels or of one (`curve` is "all" or a label's position)."""
    raw = request.GET.get("curve", "all")
    index = int(raw) if raw.isascii() and raw.isdigit() and int(raw) < len(model.labels) else None
    thresholds = stats["thresholds"]
    if index is None:
        points, title = stats["pr_curves"]["all"], "all labels"
        threshold = thresholds[0] if len(set(thresholds)) == 1 else None
    else:
        points, title, threshold = stats["pr_curves"]["labels"][index], model.labels[index], thresholds[index]
    chart, clickable = charts.pr_curve(points, threshold=threshold, title=f"Precision-recall: {title}")
    return {
        "pr_chart": chart,
        "pr_points": json.dumps(clickable),
        "curve": "all" if index is None else str(index),
        "custom_thresholds": thresholds != stats["optimized_thresholds"],
        "threshold_rows": list(zip(model.labels, thresholds, stats["optimized_thresholds"], strict=True)),
    }


def _confusion_rows(labels: list[str], matrix: list[list[int]]) -> list[dict]:
    """Rows of the confusion matrix with each cell's share of its row, for shading."""
    rows = []
    for label, counts in zip(labels, matrix, strict=True):
        total = sum(counts) or 1
        rows.append({"label": label, "cells": [{"count": c, "share": round(c / total, 3)} for c in counts]})
    return rows


@login_required
@require_http_methods(["GET", "POST"])
def model_bundle(request, project_id: int, model_id: int):
    """The offline bundle's control on the model page: GET shows its state (polled while it builds), POST
    starts building it."""
    from training import bundles

    model = selectors.model_get(user=request.user, model_id=model_id, perm="export_project", project_id=project_id)
    checkpoint = request.GET.get("checkpoint", model.predict_with)
    if checkpoint not in Checkpoint.values:
        checkpoint = model.predict_with
    if request.method == "POST":
        try:
            bundles.bundle_request(model=model, checkpoint=checkpoint, user=request.user)
        except ValidationError as exc:
            _errors(request, exc)
        url = reverse("training:model", kwargs={"project_id": project_id, "model_id": model.id})
        return redirect(f"{url}?checkpoint={checkpoint}")
    context = {
        "project": model.project,
        "model": model,
        "checkpoint": checkpoint,
        "bundle": bundles.bundle_state(model=model, checkpoint=checkpoint),
    }
    return render(request, "training/_bundle.html", context)


@login_required
@require_POST
def model_predict_with(request, project_id: int, model_id: int):
    model = selectors.model_get(user=request.user, model_id=model_id, perm="train_project", project_id=project_id)
    try:
        services.model_version_update(model=model, predict_with=request.POST.get("checkpoint", ""))
    except ValidationError as exc:
        _errors(request, exc)
    else:
        messages.success(request, f"{model.name} now predicts with its {model.predict_with} checkpoint.")
    return redirect("training:model", project_id=project_id, model_id=model.id)


@login_required
@require_POST
def model_thresholds(request, project_id: int, model_id: int):
    """Save the thresholds in the form for this checkpoint, or go back to the F1-optimised ones; or save a detector's
    IoU threshold, which everything then counts at."""
    model = selectors.model_get(user=request.user, model_id=model_id, perm="train_project", project_id=project_id)
    checkpoint = request.POST.get("checkpoint", Checkpoint.BEST)
    try:
        if "iou" in request.POST:
            iou = _iou_chosen(model, request.POST["iou"])
            if iou is None:
                raise ValidationError({"iou": ["Choose an IoU threshold from the list."]})
            services.model_version_update(model=model, iou_threshold=iou)
            done = f"IoU threshold {iou:g} saved: statistics, thresholds, galleries and predictions count at it."
        else:
            if "optimized" in request.POST:
                values = None
            else:
                values = thresholds_parse(",".join(request.POST.getlist("threshold")), model)
            services.model_version_update(model=model, thresholds={checkpoint: values})
            done = "Thresholds saved; predictions and statistics use them."
    except ValidationError as exc:
        _errors(request, exc)
    else:
        messages.success(request, done)
    split = request.POST.get("split") if request.POST.get("split") in Split.values else Split.VALID
    url = reverse("training:model", args=[project_id, model.id])
    return redirect(f"{url}?{urlencode({'checkpoint': checkpoint, 'split': split})}")


@login_required
@require_safe
def ml_training_images(request, project_id: int):
    """ML Training Settings' checklist of images, fetched when the dialog opens (not with every labeler page)."""
    project = access_project(request.user, project_id, "train_project")
    context = {"project": project, **selectors.training_images(project=project)}
    return render(request, "training/ml_images.html", context)


@login_required
@require_POST
def model_load(request, project_id: int):
    """Load Existing Model from the models page: the bundle's checks (training/services/loading.py), then its page."""
    from training.services.loading import model_load as load

    project = access_project(request.user, project_id, "train_project")
    upload = request.FILES.get("file")
    try:
        if upload is None:
            raise ValidationError({"file": ["Choose the bundle ZIP that Save Trained Model downloaded."]})
        model = load(
            project=project, user=request.user, upload=upload, name=request.POST.get("name", "").strip() or None
        )
    except ValidationError as exc:
        _errors(request, exc)
        return redirect("training:models", project_id=project_id)
    messages.success(request, f"Loaded the model {model.name}.")
    return redirect("training:model", project_id=project_id, model_id=model.id)


@login_required
@require_POST
def model_delete(request, project_id: int, model_id: int):
    model = selectors.model_get(user=request.user, model_id=model_id, perm="train_project", project_id=project_id)
    services.model_version_delete(model=model)
    messages.success(request, f"Deleted the model {model.name}.")
    return redirect("training:models", project_id=project_id)


@login_required
@require_safe
def predictions_page(request, project_id: int, model_id: int):
    """Predictions on training or validation images beside their ground truth (green truth, red other labels)."""
    model = selectors.model_get(user=request.user, model_id=model_id, project_id=project_id)
    if model.is_loaded or model.task == Task.SEMANTIC:  # no evaluation per image to show
        return redirect("training:model", project_id=project_id, model_id=model_id)
    state = _view_state(request, model)
    show = request.GET.get("show", "all") if request.GET.get("show") in {"all", "wrong", "right"} else "all"
    advanced = request.GET.get("view") == "advanced"
    previewed = _previewed_thresholds(request, model)
    iou = _iou_chosen(model, request.GET.get("iou"))
    if model.task in OBJECT_TASKS:
        rows = statistics.detection_predictions(model=model, show=show, thresholds=previewed, iou=iou, **state)
    else:
        rows = statistics.model_predictions(model=model, show=show, advanced=advanced, thresholds=previewed, **state)
    page = Paginator(rows, GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    extra = {"thresholds": request.GET["thresholds"]} if previewed else {}
    query = urlencode(
        {**state, "show": show, "view": "advanced" if advanced else "basic", **extra, **({"iou": iou} if iou else {})}
    )
    context = {
        "project": model.project,
        "model": model,
        "page": page,
        "show": show,
        "advanced": advanced,
        "query": query,
        "thresholds": previewed or model.thresholds_for(state["checkpoint"]),
        "previewed": extra.get("thresholds", ""),
        "detection": model.task in OBJECT_TASKS,
        "iou": iou or model.iou_threshold,
        **state,
    }
    if request.htmx:
        return render(request, "training/predictions.html#gallery", context)
    return render(request, "training/predictions.html", context)


def _last_model_key(project) -> str:
    return f"sightline:last-model:{project.pk}"


@login_required
@require_http_methods(["GET", "POST"])
def predict_page(request, project_id: int):
    """Predict with a chosen model: uploaded images, answered at once, or images of the project chosen in the grid,
    predicted by a job (`?job=` follows it, then shows what it stored)."""
    project = access_project(request.user, project_id, "train_project")
    job = _prediction_job(request, project)
    if job is not None and request.htmx:  # the poll: its progress, or, once it has ended, the whole page again
        response = render(request, "training/predict.html#job", {"project": project, "job": job})
        if not job.is_active:
            response["HX-Refresh"] = "true"
        return response
    models = list(ModelVersion.objects.filter(project=project))
    # The job's model, else the one asked for, else the one this user last looked at in this project, else the newest.
    wanted = str(job.payload["model_id"]) if job else request.POST.get("model", request.GET.get("model"))
    wanted = wanted or str(request.session.get(_last_model_key(project), ""))
    chosen = next((m for m in models if str(m.pk) == wanted), None) or (None if job else models[0] if models else None)
    if chosen:
        request.session[_last_model_key(project)] = chosen.pk
    ids = job.payload["image_ids"] if job else ids_parse(request.POST.getlist("image") or request.GET.getlist("image"))
    images = list(Image.objects.for_project(project).filter(pk__in=ids[:PREDICT_SHOWN_IMAGES]).order_by("id"))
    results, count = [], len(ids)
    if job is not None and job.status == "finished" and chosen is not None:
        results = predicting.predicted_results(model=chosen, checkpoint=job.payload["checkpoint"], image_ids=ids)
    if chosen and request.method == "POST" and request.POST.get("predict"):
        checkpoint = request.POST.get("checkpoint", chosen.predict_with)
        checkpoint = checkpoint if checkpoint in Checkpoint.values else chosen.predict_with
        try:
            uploads = request.FILES.getlist("file")[:PREDICT_MAX_IMAGES]
            if uploads:
                results = _uploads_predicted(chosen, checkpoint, uploads)
            else:  # the grid's selection: a job, followed on this page
                started = predicting.prediction_job_start(
                    model=chosen, checkpoint=checkpoint, image_ids=ids, user=request.user
                )
                return redirect(f"{reverse('training:predict', args=[project.pk])}?job={started.pk}")
        except ValidationError as exc:
            _errors(request, exc)
    context = {
        "project": project,
        "models": models,
        "chosen": chosen,
        "images": images,
        "count": count,
        "results": results,
        "job": job,
        "slider_start": BOX_SLIDER_START,
    }
    return render(request, "training/predict.html", context)


def _uploads_predicted(model: ModelVersion, checkpoint: str, uploads: list) -> list[dict]:
    """Uploaded images predicted at once: a detector's boxes or a segmentation model's masks to draw, or a
    classifier's ranked labels."""
    data = [predictions.upload_read(upload) for upload in uploads]
    names = [upload.name for upload in uploads]
    if model.task == Task.DETECTION:
        return predictions.boxes_shown(model=model, checkpoint=checkpoint, images=data, names=names)
    if model.task in SHAPE_TASKS:
        return predictions.masks_shown(model=model, checkpoint=checkpoint, images=data, names=names)
    ranked = predictions.images_predict(model=model, checkpoint=checkpoint, images=data)
    return [{"name": name, "image": None, "predictions": r} for name, r in zip(names, ranked, strict=True)]


def _prediction_job(request, project):
    """The prediction job named by `?job=`, of this project (jobs.selectors.job_get checks access); 404 for any
    other."""
    from jobs.selectors import job_get

    raw = request.GET.get("job")
    if raw is None:
        return None
    job = (
        job_get(user=request.user, job_id=int(raw), project_id=project.pk) if raw.isascii() and raw.isdigit() else None
    )
    if job is None or job.kind != predicting.PREDICTION_KIND:
        raise Http404("No such prediction job.")
    return job


@login_required
@require_safe
def gallery_page(request, project_id: int, model_id: int):
    """Spec 001's galleries: All, Matched, Missing and Extra, of one label on one split, a page at a time."""
    from training import galleries

    model = selectors.model_get(user=request.user, model_id=model_id, project_id=project_id)
    if model.is_loaded:  # no evaluation to show
        return redirect("training:model", project_id=project_id, model_id=model_id)
    state = _view_state(request, model)
    tab = request.GET.get("tab") if request.GET.get("tab") in galleries.TABS else "all"
    raw = request.GET.get("label", "0")
    label = int(raw) if raw.isascii() and raw.isdigit() and int(raw) < len(model.labels) else 0
    iou = _iou_chosen(model, request.GET.get("iou"))
    pixels = model.segmentation_head and request.GET.get("head") == "segmentation"  # its segmentation head's
    found = galleries.gallery(model=model, label=label, tab=tab, iou=iou, pixels=pixels, **state)
    items, size = found["items"], galleries.PAGE_SIZE
    pages = max(1, -(-len(items) // size))
    raw = request.GET.get("page", "1")
    number = min(pages, int(raw)) if raw.isascii() and raw.isdigit() and int(raw) > 0 else 1
    first_below = found["first_below"]
    tiles = galleries.tiles(items, (number - 1) * size, size)
    if model.task == Task.SEMANTIC or pixels:
        tiles = galleries.pixels_drawn(model, state["checkpoint"], label, tiles)
    query = {
        **state,
        "tab": tab,
        "label": label,
        **({"iou": iou} if iou else {}),
        **({"head": "segmentation"} if pixels else {}),
    }
    context = {
        "project": model.project,
        "model": model,
        **state,
        "tab": tab,
        "tabs": [("all", "All"), ("matched", "Matched"), ("missing", "Missing"), ("extra", "Extra")],
        "label": label,
        "label_name": model.labels[label],
        "threshold": found["threshold"],
        "count": len(items),
        "tiles": tiles,
        "page": number,
        "pages": pages,
        "query": urlencode(query),
        "jump": f"?{urlencode({**query, 'page': first_below // size + 1})}#item-{first_below}"
        if first_below is not None and tab == "all"
        else None,
        "first_below": first_below,
        "detection": model.task in OBJECT_TASKS and not pixels,
        "semantic": model.task == Task.SEMANTIC or pixels,
        "head": "segmentation" if pixels else "",
        "iou": iou or model.iou_threshold,
    }
    return render(request, "training/gallery.html", context)


BOX_SLIDER_START = 0.30  # spec 004's default confidence
