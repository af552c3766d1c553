"""Training: dataset versions, background training jobs, model versions, statistics and predictions."""

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from jobs.registry import kinds_register
        from training import signals  # noqa: F401  (file clean-up receivers)
        from training.jobs import KINDS

        kinds_register(*KINDS)
