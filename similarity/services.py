"""Every write of the similarity app: computing embeddings in the background, re-indexing, pair-search jobs."""

from __future__ import annotations

import functools
import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from projects.models import Image, Project
from similarity.models import ImageEmbedding, PairSearch

logger = logging.getLogger(__name__)
COMPUTE_TASK = "similarity.tasks.embeddings_compute"
PAIRS_TASK = "similarity.tasks.pair_search_run"
BATCH = 64  # images embedded and written per round


@functools.lru_cache(maxsize=1)
def embedder():
    """One embedder per process, loaded on first use (never at import: forked workers must not inherit torch threads)."""
    from training.ml.embedder import Embedder

    return Embedder()


def embeddings_schedule(*, project_id: int) -> None:
    """Queue the computation of the project's missing embeddings once the current transaction commits."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(COMPUTE_TASK, project_id, task_name=f"embeddings of project {project_id}"))


def _read(image: Image) -> bytes:
    with image.file.open("rb") as stored:
        return stored.read()


def embeddings_compute(*, project_id: int, progress=None) -> int:
    """Embed every image of the project that has no embedding yet, a batch at a time; returns how many.

    Idempotent: a second run, or two at once, finds nothing left (or skips what the other wrote).
    """
    from training.ml.embedder import EMBEDDER_NAME

    done = 0
    while True:
        batch = list(
            Image.objects.filter(project_id=project_id, embedding__isnull=True).order_by("id")[:BATCH]
        )
        if not batch:
            return done
        readable, data = [], []
        for image in batch:
            try:
                data.append(_read(image))
                readable.append(image)
            except OSError:  # the file went missing; leave the image unindexed and say so
                logger.warning("Image %s has no readable file; not indexed", image.pk)
        vectors = embedder().embed(data) if data else []
        rows = [
            ImageEmbedding(image=image, project_id=project_id, embedder=EMBEDDER_NAME, vector=vector)
            for image, vector in zip(readable, vectors, strict=True)
        ]
        ImageEmbedding.objects.bulk_create(rows, ignore_conflicts=True)
        done += len(rows)
        if progress:
            progress(done)
        if len(readable) < len(batch):  # unreadable files would be picked again forever
            return done


def embeddings_reindex(*, project: Project | None = None) -> int:
    """Drop and recompute the embeddings of one project, or of every project."""
    projects = [project] if project is not None else list(Project.objects.order_by("id"))
    total = 0
    for each in projects:
        ImageEmbedding.objects.filter(project=each).delete()
        total += embeddings_compute(project_id=each.pk)
    return total


# --- pair searches as background jobs --------------------------------------------------------


def pair_search_start(*, project: Project, user, parameters: dict) -> PairSearch:
    search = PairSearch.objects.create(project=project, created_by=user, parameters=parameters)
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(PAIRS_TASK, search.pk, task_name=f"pair search {search.pk}"))
    return search


def pair_search_run(*, search_id: int) -> None:
    """Run a queued pair search; one that is not queued any more is left alone."""
    from similarity import selectors

    claimed = PairSearch.objects.filter(pk=search_id, status=PairSearch.Status.QUEUED).update(
        status=PairSearch.Status.RUNNING
    )
    if not claimed:
        return
    search = PairSearch.objects.select_related("project").get(pk=search_id)

    def progress(fraction: float) -> None:
        PairSearch.objects.filter(pk=search_id).update(progress=round(min(max(fraction, 0.0), 1.0), 3))

    fields = {"finished_at": timezone.now()}
    try:
        pairs = selectors.similar_pairs(project=search.project, progress=progress, **search.parameters)
        fields.update(status=PairSearch.Status.FINISHED, progress=1.0, pairs=[[a, b, s] for a, b, s in pairs])
    except ValidationError as exc:
        fields.update(status=PairSearch.Status.FAILED, error=" ".join(exc.messages))
    except Exception as exc:  # a job reports every failure on its row instead of dying silently
        logger.exception("Pair search %s failed", search_id)
        fields.update(status=PairSearch.Status.FAILED, error=f"Unexpected error: {type(exc).__name__}: {exc}")
    PairSearch.objects.filter(pk=search_id).update(**fields)
