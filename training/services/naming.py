"""Model names: unique in their project among models and running jobs, printable, and safe in a URL path."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from projects.models import Project
from training.models import ModelVersion, TrainingJob

MAX_NAME = 100


def model_name_clean(project: Project, name: str | None, task: str) -> str:
    """`name` checked, or with none given, the first free "{task}-{number}" (numbered by the project's jobs)."""
    taken = set(ModelVersion.objects.filter(project=project).values_list("name", flat=True))
    taken |= set(TrainingJob.objects.filter(project=project).active().values_list("name", flat=True))
    if not name:
        number = TrainingJob.objects.filter(project=project).count() + 1
        while f"{task}-{number}" in taken:
            number += 1
        return f"{task}-{number}"
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(c in name for c in '/\\"') or not name.isprintable():
        raise ValidationError({"name": [f'A model name has 1 to {MAX_NAME} printable characters, none of / \\ ".']})
    if name in taken:
        raise ValidationError({"name": [f"This project already has a model named {name!r}."]})
    return name
