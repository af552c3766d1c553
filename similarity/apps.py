"""Similarity search: image embeddings in pgvector, 1vN and NvN search."""

from django.apps import AppConfig


class SimilarityConfig(AppConfig):
    name = "similarity"
    verbose_name = "Similarity search"

    def ready(self) -> None:
        from jobs.registry import kinds_register
        from similarity.jobs import KINDS

        kinds_register(*KINDS)
