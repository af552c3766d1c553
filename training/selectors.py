"""Reads of training rows through the permission chokepoint: an object in a project you may not see is a 404."""

from __future__ import annotations

from django.http import Http404

from projects.permissions import access_child, access_project
from training.models import ModelVersion, TrainingJob


def job_get(*, user, job_id: int, perm: str = "view_project", project_id: int | None = None) -> TrainingJob:
    job = TrainingJob.objects.select_related("dataset_version").filter(pk=job_id).first()
    return access_child(user, job, perm, "No such training job.", project_id=project_id)


def model_get(*, user, model_id: int, perm: str = "view_project", project_id: int | None = None) -> ModelVersion:
    """The model, if `user` holds `perm` on its project (and it is in `project_id`, when the URL names one)."""
    model = ModelVersion.objects.select_related("job", "dataset_version").filter(pk=model_id).first()
    return access_child(user, model, perm, "No such model.", project_id=project_id)


def model_by_name(*, user, project_id: int, name: str, perm: str = "view_project") -> ModelVersion:
    project = access_project(user, project_id, perm)
    model = ModelVersion.objects.filter(project=project, name=name).first()  # predicting reads none of its relations
    if model is None:
        raise Http404(f"This project has no model named {name!r}.")
    model.project = project
    return model
