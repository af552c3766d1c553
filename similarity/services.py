"""Every write of the similarity app: computing embeddings in the background, re-indexing, pair-search jobs."""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config.jobs import jobs_fail_stale
from projects.files import stored_bytes
from projects.models import Image, Project
from similarity.models import ImageEmbedding, PairSearch, UnindexedImage
from training.ml.embedder import EMBEDDER_NAME  # torch-free; torch loads inside Embedder

logger = logging.getLogger(__name__)
COMPUTE_TASK = "similarity.tasks.embeddings_compute"
PAIRS_TASK = "similarity.tasks.pair_search_run"
BATCH = 64  # images embedded and written per round
INDEXING_LOCK = 0x51D1  # first key of the (key, project id) advisory lock held while a project is indexed


@functools.lru_cache(maxsize=1)
def embedder():
    """One embedder per process, loaded on first use (never at import: forked workers must not inherit torch threads)."""
    from training.ml.embedder import Embedder

    return Embedder()


def embeddings_schedule(*, project_id: int) -> None:
    """Queue the computation of the project's missing embeddings once the current transaction commits."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(COMPUTE_TASK, project_id, task_name=f"embeddings of project {project_id}"))


def embeddings_compute(*, project_id: int) -> int:
    """Embed every image of the project that has no embedding yet, a batch at a time; returns how many.

    Idempotent, and one task at a time per project: uploads in quick succession queue several tasks,
    and a second one that finds the project being indexed leaves at once instead of embedding the
    same batch again. The one indexing looks again after it lets go, so images committed while it
    held the project (whose own task left) are not missed. An image deleted meanwhile is skipped;
    one that cannot be read or decoded is marked unindexed with the reason, so it is not retried
    forever and the project page can say so.
    """
    done = 0
    while _missing(project_id).exists():
        with _indexing(project_id) as held:
            if not held:
                return done
            while batch := list(_missing(project_id)[:BATCH]):
                done += _embeddings_insert(_rows(batch, project_id))
    return done


def _missing(project_id: int):
    return Image.objects.filter(project_id=project_id, embedding__isnull=True, unindexed__isnull=True).order_by("id")


@contextmanager
def _indexing(project_id: int):
    """Hold the project's indexing lock (a PostgreSQL session advisory lock) if it is free; yields whether it was."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [INDEXING_LOCK, project_id])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [INDEXING_LOCK, project_id])


def _rows(batch: list[Image], project_id: int) -> list[ImageEmbedding]:
    return [ImageEmbedding(image_id=image.pk, project_id=project_id, embedder=EMBEDDER_NAME, vector=vector)
            for image, vector in _embed(batch)]  # fmt: skip


def _embed(batch: list[Image]) -> list[tuple[Image, object]]:
    """(image, vector) for the batch; if the batch fails, image by image, marking the ones that fail."""
    data = []
    for image in batch:
        try:
            data.append(stored_bytes(image.file.name))
        except OSError as exc:
            data.append(exc)
    readable = [(image, content) for image, content in zip(batch, data, strict=True) if isinstance(content, bytes)]
    try:
        vectors = embedder().embed([content for _, content in readable])
        out = [(image, vector) for (image, _), vector in zip(readable, vectors, strict=True)]
    except Exception:  # one image that will not decode must not stop the rest
        out = []
        for image, content in readable:
            try:
                out.append((image, embedder().embed([content])[0]))
            except Exception as exc:
                data[batch.index(image)] = exc
    for image, content in zip(batch, data, strict=True):
        if isinstance(content, Exception):
            logger.warning("Image %s cannot be indexed: %s", image.pk, content)
            UnindexedImage.objects.get_or_create(
                image_id=image.pk, defaults={"project_id": image.project_id, "reason": str(content)[:300] or type(content).__name__}
            )
    return out


def _embeddings_insert(rows: list[ImageEmbedding], *, replace: bool = False) -> int:
    """Insert (or, re-indexing, replace), skipping images that were deleted while they were embedded."""
    for _ in range(3):
        alive = set(Image.objects.filter(pk__in=[row.image_id for row in rows]).values_list("pk", flat=True))
        rows = [row for row in rows if row.image_id in alive]
        try:
            with transaction.atomic():
                if replace:
                    ImageEmbedding.objects.bulk_create(rows, update_conflicts=True, unique_fields=["image"],
                                                       update_fields=["vector", "embedder"])  # fmt: skip
                else:
                    ImageEmbedding.objects.bulk_create(rows, ignore_conflicts=True)
            return len(rows)
        except IntegrityError:  # an image went between the check and the insert: check again
            continue
    return 0


def embeddings_reindex(*, project: Project | None = None) -> int:
    """Recompute the embeddings of one project, or of every project, replacing each row in place.

    Searches keep working meanwhile: nothing is emptied first. Images marked unreadable get another try.
    """
    projects = [project] if project is not None else list(Project.objects.order_by("id"))
    total = 0
    for each in projects:
        UnindexedImage.objects.filter(project=each).delete()
        last = 0
        while batch := list(Image.objects.filter(project=each, pk__gt=last).order_by("id")[:BATCH]):
            last = batch[-1].pk
            total += _embeddings_insert(_rows(batch, each.pk), replace=True)
    return total


# --- pair searches as background jobs --------------------------------------------------------


def pair_search_start(*, project: Project, user, parameters: dict) -> PairSearch:
    """Queue a pair search, or hand back the one already queued or running with the same parameters."""
    pair_searches_fail_stale(project=project)  # a search whose worker died must not stand in for a new one
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        live = PairSearch.objects.filter(
            project=project, parameters=parameters, status__in=[PairSearch.Status.QUEUED, PairSearch.Status.RUNNING]
        ).first()
        if live is not None:
            return live
        search = PairSearch.objects.create(project=project, created_by=user, parameters=parameters)
        from django_q.tasks import async_task

        transaction.on_commit(lambda: async_task(PAIRS_TASK, search.pk, task_name=f"pair search {search.pk}"))
    return search


def pair_search_run(*, search_id: int) -> None:
    """Run a queued pair search; one that is not queued any more is left alone."""
    from similarity import selectors

    claimed = PairSearch.objects.filter(pk=search_id, status=PairSearch.Status.QUEUED).update(
        status=PairSearch.Status.RUNNING, heartbeat_at=timezone.now()
    )
    if not claimed:
        return
    search = PairSearch.objects.select_related("project").get(pk=search_id)

    def progress(fraction: float) -> None:  # once per block of rows: also the job's sign of life
        PairSearch.objects.filter(pk=search_id).update(progress=round(min(max(fraction, 0.0), 1.0), 3),
                                                       heartbeat_at=timezone.now())  # fmt: skip

    fields = {"finished_at": timezone.now()}
    try:
        pairs = selectors.similar_pairs(project=search.project, progress=progress, **search.parameters)
        fields.update(status=PairSearch.Status.FINISHED, progress=1.0, pairs=[[a, b, s] for a, b, s in pairs])
    except ValidationError as exc:
        fields.update(status=PairSearch.Status.FAILED, error=" ".join(exc.messages))
    except Exception as exc:  # a job reports every failure on its row instead of dying silently
        logger.exception("Pair search %s failed", search_id)
        fields.update(status=PairSearch.Status.FAILED, error=f"Unexpected error: {type(exc).__name__}: {exc}")
    # Only a search still running is ended here: one the reaper marked failed stays failed.
    PairSearch.objects.filter(pk=search_id, status=PairSearch.Status.RUNNING).update(**fields)


def pair_searches_fail_stale(*, project: Project | None = None, now=None) -> int:
    """Mark running searches whose worker went silent as failed, so none stays 'running' forever.

    Run by the worker's minute schedule, and by the pages and the API for their project.
    """
    searches = PairSearch.objects.filter(project=project) if project is not None else PairSearch.objects.all()
    return jobs_fail_stale(searches, now=now,
                           error="The worker running this search stopped (killed, out of memory or restarted) before it finished.")  # fmt: skip
