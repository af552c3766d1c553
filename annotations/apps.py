"""Annotations: shapes and classification labels, revisions, formats, the smart tool."""

from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Annotations"

    def ready(self) -> None:
        from annotations import checks  # noqa: F401  (registers the SAM checkpoint check)
        from annotations.jobs import KINDS
        from jobs.registry import kinds_register

        kinds_register(*KINDS)
