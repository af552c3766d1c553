"""Every write of the similarity app: embedding jobs, re-indexing, pair-search jobs."""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job
from jobs.services import job_submit
from projects.files import stored_bytes
from projects.models import Image, Project
from similarity.models import ImageEmbedding, PairSearch, UnindexedImage
from training.ml.embedder import EMBEDDER_NAME, PRECISION  # torch-free; torch loads inside Embedder

logger = logging.getLogger(__name__)
EMBEDDINGS_KIND = "embeddings"
BATCH = 64  # images embedded and written per round
INDEXING_LOCK = 0x51D1  # first key of the (key, project id) advisory lock held while a project is indexed


@functools.lru_cache(maxsize=1)
def embedder():
    """One embedder per process, loaded on first use (never at import: forked workers must not inherit torch threads)."""
    from training.ml.embedder import Embedder
    from training.ml.runtime import loaded_objects_freeze

    loaded = Embedder()
    loaded_objects_freeze()  # torch and the model are here for good: keep the collector off them
    return loaded


def embeddings_schedule(*, project_id: int, user=None) -> Job | None:
    """Queue the computation of the project's missing embeddings once the current transaction commits.

    A job already waiting for the project will see the new images too, so none is added then.
    """
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project_id).first()
        if Job.objects.filter(project_id=project_id, kind=EMBEDDINGS_KIND, status=Job.Status.QUEUED).exists():
            return None
        job = Job.objects.create(kind=EMBEDDINGS_KIND, project_id=project_id, created_by=user)
        return job_submit(job)


def embeddings_execute(job, context) -> str:
    """The embeddings kind's work (jobs.registry): embed the project's images that have none yet."""
    total = _missing(job.project_id).count()
    context.progress(0, f"Embedding {total} image(s)")
    context.check()

    def progress(done: int) -> None:
        context.check()
        context.progress(done / max(total, 1), f"Embedded {done} of {total}")

    done = embeddings_compute(project_id=job.project_id, progress=progress)
    return f"Embedded {done} image(s) with {EMBEDDER_NAME}."


def embeddings_compute(*, project_id: int, progress=None) -> int:
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
                done += _embeddings_insert(_rows(batch, project_id), replace=True)
                if progress:
                    progress(done)
    return done


def _missing(project_id: int):
    """Images with no embedding of today's embedder (none at all, or one an older embedder made)."""
    current = ImageEmbedding.objects.current().filter(project_id=project_id).values("image_id")
    return Image.objects.filter(project_id=project_id, unindexed__isnull=True).exclude(pk__in=current).order_by("id")


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
    return [
        ImageEmbedding(
            image_id=image.pk, project_id=project_id, embedder=EMBEDDER_NAME, precision=PRECISION, vector=vector
        )
        for image, vector in _embed(batch)
    ]


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
                image_id=image.pk,
                defaults={"project_id": image.project_id, "reason": str(content)[:300] or type(content).__name__},
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
                    ImageEmbedding.objects.bulk_create(
                        rows,
                        update_conflicts=True,
                        unique_fields=["image"],
                        update_fields=["vector", "embedder", "precision"],
                    )
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
    """Queue a pair search, or hand back the live one with the same parameters (one whose worker went
    silent does not count: the reaper is about to fail it)."""
    fresh = timezone.now() - timedelta(seconds=settings.SIGHTLINE_JOB_STALE_SECONDS)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        live = (
            PairSearch.objects.filter(project=project, parameters=parameters)
            .filter(Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, heartbeat_at__gte=fresh))
            .first()
        )
        if live is not None:
            return live
        search = PairSearch.objects.create(
            kind=PairSearch.KIND, project=project, created_by=user, parameters=parameters
        )
        job_submit(search)
    return search


def pair_search_execute(job, context) -> str:
    """The pair-search kind's work (jobs.registry): find the pairs and keep them on the search's row."""
    from similarity import selectors

    search = PairSearch.objects.select_related("project").get(pk=job.pk)

    def progress(fraction: float) -> None:  # once per block of rows
        context.check()
        context.progress(fraction)

    context.progress(0, "Comparing every image with every other")
    context.check()
    pairs = selectors.similar_pairs(project=search.project, progress=progress, **search.parameters)
    PairSearch.objects.filter(pk=search.pk).update(pairs=[[a, b, score] for a, b, score in pairs])
    return f"Found {len(pairs)} pair(s)."
