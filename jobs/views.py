"""The project's Jobs page: every background job of every kind, refreshed by htmx while any runs."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from jobs import selectors, services
from projects.permissions import project_permissions


@login_required
@require_safe
def jobs_page(request, project_id: int):
    project, jobs = selectors.jobs_for_project(user=request.user, project_id=project_id)
    perms = project_permissions(request.user, project)
    rows = [selectors.job_out(job, perms=perms) for job in jobs]
    context = {"project": project, "jobs": rows, "any_active": any(job.is_active for job in jobs)}
    if request.htmx:
        return render(request, "jobs/jobs.html#job-list", context)
    return render(request, "jobs/jobs.html", context)


@login_required
@require_POST
def job_cancel(request, project_id: int, job_id: int):
    job = selectors.job_for_cancel(user=request.user, job_id=job_id, project_id=project_id)
    try:
        services.job_cancel(job=job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return HttpResponse(status=204) if request.htmx else redirect(back)  # its own page polls the outcome
    if request.htmx:
        return jobs_page(request, project_id)
    return redirect("jobs:jobs", project_id=project_id)
