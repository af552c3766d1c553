"""Similarity pages: images like one image (1vN), the most similar pairs (NvN), and the index's progress."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_safe

from config.flash import flash_errors, flash_form_errors
from projects.permissions import access_project, project_permissions
from projects.selectors import image_in_project
from similarity import searches, selectors
from similarity.models import PairSearch
from training.predictions import image_check, upload_read


class QueryForm(forms.Form):
    """Every option may be left out; its initial value is used then."""

    limit = forms.IntegerField(
        required=False, min_value=1, max_value=selectors.MAX_LIMIT, initial=selectors.DEFAULT_LIMIT
    )
    threshold = forms.FloatField(required=False, min_value=-1, max_value=1, initial=selectors.DEFAULT_THRESHOLD)
    labels = forms.CharField(required=False, help_text="Comma-separated label names")
    op = forms.ChoiceField(required=False, choices=[("or", "any of them"), ("and", "all of them")], initial="or")


class PairsForm(QueryForm):
    limit = forms.IntegerField(required=False, min_value=1, max_value=selectors.MAX_PAIRS, initial=100)
    threshold = forms.FloatField(required=False, min_value=-1, max_value=1, initial=selectors.DEFAULT_PAIR_THRESHOLD)


def _query(form: forms.Form) -> dict:
    """The form's values, its initial ones where a field was left out."""
    values = {name: field.initial for name, field in form.fields.items()}
    if form.is_bound and form.is_valid():
        values.update({k: v for k, v in form.cleaned_data.items() if v not in (None, "")})
    values["labels"] = values.get("labels") or ""
    return values


@login_required
@require_http_methods(["GET", "POST"])
def similar_page(request, project_id: int):
    """1vN: results for ?image=ID, or for an uploaded file (POST), with the query form."""
    project = access_project(request.user, project_id)
    form = QueryForm(request.GET if any(k in request.GET for k in ("limit", "threshold", "labels", "op")) else None)
    query = _query(form)
    image = image_in_project(project, request.GET.get("image", ""))
    if form.is_bound and not form.is_valid():
        flash_form_errors(request, form)
    result = None
    try:
        if request.method == "POST" and request.FILES.get("file"):
            data = upload_read(request.FILES["file"])
            image_check(data)
            result = searches.similar_to_bytes(project=project, data=data, **query)
        elif image is not None:
            result = searches.similar_to_image(project=project, image=image, **query)
    except ValidationError as exc:
        flash_errors(request, exc)
    context = {
        "project": project,
        "form": form if form.is_bound else QueryForm(initial=query),
        "image": image,
        "result": result,
        "index": result["index"] if result else searches.index_status(project=project),
    }
    return render(request, "similarity/similar.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def pairs_page(request, project_id: int):
    """NvN: the most similar pairs side by side, newer image of each pre-ticked for deletion.

    A small project's pairs are found as the page loads (GET); a large project's search is a job
    that the person starts with the form's POST, and the page then polls it.
    """
    project = access_project(request.user, project_id)
    perms = project_permissions(request.user, project)
    form = PairsForm(request.POST if request.method == "POST" else request.GET or None)
    query = _query(form)
    query["labels"] = searches.label_names(query["labels"])
    pairs, search, too_large = None, None, False
    if form.is_bound and not form.is_valid():
        flash_form_errors(request, form)
    elif request.method == "POST":
        access_project(request.user, project_id, searches.PAIR_SEARCH_PERMISSION)
        try:
            search = searches.pair_search_begin(project=project, user=request.user, parameters=query)
        except ValidationError as exc:
            flash_errors(request, exc)
    elif request.GET.get("search"):
        try:
            pairs = searches.pairs_now(project=project, parameters=query)
            too_large = pairs is None
        except ValidationError as exc:
            flash_errors(request, exc)
    context = {
        "project": project,
        "form": form if form.is_bound else PairsForm(initial=query),
        "pairs": pairs,
        "search": search,
        "too_large": too_large,
        "perms": perms,
        "may_search": searches.PAIR_SEARCH_PERMISSION in perms,
        "index": searches.index_status(project=project),
    }
    return render(request, "similarity/pairs.html", context)


@login_required
@require_safe
def pair_search_page(request, project_id: int, search_id: int):
    """The polled partial of a background pair search: progress, then the pairs."""
    search = searches.pair_search_get(user=request.user, search_id=search_id, project_id=project_id)
    pairs = searches.pairs_out(search.pairs) if search.status == PairSearch.Status.FINISHED else None
    context = {
        "project": search.project,
        "search": search,
        "pairs": pairs,
        "index": searches.index_status(project=search.project),
        "perms": project_permissions(request.user, search.project),
    }
    return render(request, "similarity/pairs.html#results", context)


@login_required
@require_safe
def index_page(request, project_id: int):
    """The project page's indexing progress (htmx), polled until every image is indexed."""
    project = access_project(request.user, project_id)
    return render(
        request, "similarity/index_status.html", {"project": project, "index": searches.index_status(project=project)}
    )
