"""django-q2 tasks of the similarity app: thin, idempotent, ids in."""

from similarity import services


def embeddings_compute(project_id: int) -> int:
    """Embed the project's images that have no embedding yet (a no-op when there are none)."""
    return services.embeddings_compute(project_id=project_id)


def pair_search_run(search_id: int) -> None:
    services.pair_search_run(search_id=search_id)
