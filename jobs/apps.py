"""The jobs app: every kind of background work is a row of one Job table, run by one runner."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Background jobs"
