"""Pages of the annotations app: labeling time (spec 000's two tables), and import / export with progress."""

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from accounts.models import User
from annotations import selectors, smart
from annotations.filters import FILTER_KEYS
from annotations.formats import FORMAT_NAMES, FORMATS
from annotations.models import TransferJob
from annotations.services import transfers
from annotations.services.documents import document_read
from projects.models import Image
from projects.permissions import access_project, project_permissions, projects_for_user
from training import selectors as training_selectors


class TimeFilterForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    user = forms.ModelChoiceField(queryset=User.objects.none(), required=False, empty_label="everyone I may see")
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label="all my projects")

    def __init__(self, *args, viewer, **kwargs):
        super().__init__(*args, **kwargs)
        projects = projects_for_user(viewer)
        self.fields["project"].queryset = projects.order_by("name")
        self.fields["user"].queryset = User.objects.filter(memberships__project__in=projects).distinct()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours} h {minutes:02} min" if hours else f"{minutes} min {seconds:02} s"


@login_required
@require_safe
def labeling_time(request):
    form = TimeFilterForm(request.GET or None, viewer=request.user)
    chosen = form.cleaned_data if form.is_valid() else {}
    filters = selectors.TimeFilter(
        start=chosen.get("start"),
        end=chosen.get("end"),
        user_id=chosen["user"].pk if chosen.get("user") else None,
        project_id=chosen["project"].pk if chosen.get("project") else None,
    )
    tables = selectors.labeling_time(request.user, filters)
    for row in tables["per_day"] + tables["totals"]:
        row["duration"] = _duration(row["seconds"])
    query = urlencode({k: v for k, v in request.GET.items() if v and k != "download"})
    return render(request, "annotations/labeling_time.html", {"form": form, "tables": tables, "query": query})


# --- import and export page ------------------------------------------------------------------


@login_required
@require_safe
def transfers_page(request, project_id: int):
    project = access_project(request.user, project_id)
    jobs = TransferJob.objects.filter(project=project).select_related("created_by")[:20]
    context = {
        "project": project,
        "formats": [(key, FORMAT_NAMES[key]) for key in FORMATS],
        "export_formats": [
            (key, FORMAT_NAMES[key], getattr(FORMATS[key], "INCLUDES_IMAGES", False)) for key in FORMATS
        ],
        "jobs": jobs,
        "perms": project_permissions(request.user, project),
    }
    return render(request, "annotations/transfers.html", context)


@login_required
@require_POST
def transfer_start(request, project_id: int):
    """Start an export or import job; the page then polls its row (htmx) until it is done."""
    direction = "export" if "export" in request.POST else "import"
    project = access_project(
        request.user, project_id, "export_project" if direction == "export" else "annotate_project"
    )
    upload = request.FILES.get("file") if direction == "import" else None
    mode = "replace" if direction == "import" and request.POST.get("mode") == "replace" else "append"
    if mode == "replace":
        access_project(request.user, project_id, "replace_annotations_project")
    try:
        if direction == "import" and upload is None:
            raise ValidationError("Choose a file to import.")
        if mode == "replace" and request.POST.get("confirmed") != "1":
            raise ValidationError("Replacing annotations must be confirmed: nothing was imported.")
        job = transfers.transfer_start(
            project=project,
            user=request.user,
            direction=direction,
            format_key=request.POST.get("format", ""),
            upload=upload,
            mode=mode,
            include_images=direction == "export" and request.POST.get("include_images") == "1",
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        if request.htmx:  # the message is shown by a page load, not inside the job list
            return HttpResponseClientRedirect(reverse("annotations:transfers", args=[project.id]))
        return redirect("annotations:transfers", project_id=project.id)
    if request.htmx:
        context = {"project": project, "job": job, "perms": project_permissions(request.user, project)}
        return render(request, "annotations/transfers.html#job", context)
    return redirect("annotations:transfers", project_id=project.id)


@login_required
@require_safe
def transfer_job(request, project_id: int, job_id: int):
    project = access_project(request.user, project_id)
    job = TransferJob.objects.filter(project=project, pk=job_id).first()
    if job is None:
        raise Http404("No such job.")
    context = {"project": project, "job": job, "perms": project_permissions(request.user, project)}
    return render(request, "annotations/transfers.html#job", context)


# --- the labeler -----------------------------------------------------------------------------


def _walk(request) -> tuple[dict[str, str], str]:
    """Which images the labeler walks (the grid's filters, or chosen ids), and the query string that keeps them."""
    query = {key: request.GET.get(key, "").strip() for key in (*FILTER_KEYS, "ids")}
    chosen = {k: v for k, v in query.items() if v}
    return query, f"?{urlencode(chosen)}" if chosen else ""


@login_required
@require_safe
@never_cache  # the page carries the image's annotations: Back must not show an old copy of them
def labeler(request, project_id: int, image_id: int):
    """The labeling page: one canvas island (static/labeler/) around the image, with htmx around it."""
    project = access_project(request.user, project_id)
    image = get_object_or_404(Image, project=project, pk=image_id)
    query, suffix = _walk(request)
    try:
        walk = selectors.image_neighbours(
            project=project, image=image, user=request.user, filters=query, ahead=settings.SIGHTLINE_SAM_PREFETCH
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("projects:detail", project_id=project.pk)
    labels = [
        {
            "id": label.pk,
            "name": label.name,
            "color": label.color,
            "hotkey": label.hotkey,
            "keypoint_template": label.keypoint_template,
            "attributes": label.attributes,
        }
        for label in project.labels.all()
    ]
    permissions = project_permissions(request.user, project)
    can_annotate = "annotate_project" in permissions
    backend = smart.smart_backend()
    config = {
        "image": {
            "id": image.pk,
            "name": image.name,
            "width": image.width,
            "height": image.height,
            "url": f"/api/images/{image.pk}/file/",
        },
        "labels": labels,
        "projectId": project.pk,
        "canAnnotate": can_annotate,
        # With SAM, the labeler asks (POST) for this image's and the next ones' embeddings as it opens.
        "smart": {**backend.as_dict(), "prepare": [image.pk, *walk.ahead]},
        "assist": {"canPredict": "train_project" in permissions},
        # The annotations as the page is made: one round trip less than reading them after the page loads.
        "document": document_read(image=image),
        # What the page fetches while the person looks at this image: the next one's pixels (and suggestions).
        "next": {"id": walk.next, "url": f"/api/images/{walk.next}/file/"} if walk.next else None,
        "previousUrl": f"/projects/{project.pk}/images/{walk.previous}/label/{suffix}" if walk.previous else None,
        "nextUrl": f"/projects/{project.pk}/images/{walk.next}/label/{suffix}" if walk.next else None,
    }
    context = {
        "project": project,
        "image": image,
        "config": config,
        "assist_models": training_selectors.assist_choices(project=project),
        "ml": training_selectors.ml_panel(project=project) if can_annotate else None,
        "can_train": "train_project" in permissions,
        "position": walk.position,
        "total": walk.total,
        "filtered": any(query.values()),
        "suffix": suffix,
    }
    return render(request, "annotations/labeler.html", context)


@login_required
@require_safe
def labeler_strip(request, project_id: int, image_id: int):
    """The sidebar's image list (htmx): a page of the images the labeler walks, around this one."""
    project = access_project(request.user, project_id)
    query, suffix = _walk(request)
    try:
        window = selectors.image_window(
            project=project, user=request.user, filters=query, image_id=image_id, before=6, after=13
        )
    except ValidationError:
        window = []  # the labeler page itself explains a bad filter
    images = {i.pk: i for i in Image.objects.filter(pk__in=window).only("id", "name")}
    context = {"project": project, "current": image_id, "images": [images[i] for i in window], "suffix": suffix}
    return render(request, "annotations/labeler_strip.html", context)
