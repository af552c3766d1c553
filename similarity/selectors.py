"""Similarity searches: 1vN through the HNSW index, NvN by blocked matrix products over the stored vectors.

Scores are cosine similarities (1 - cosine distance), from -1 to 1; near-duplicates score above ~0.9.
Label filters (spec 000, similarity question 7) keep images holding all (`and`) or any (`or`) of
the named classification labels; the index scan continues until it has enough of those
(pgvector's iterative scans) instead of filtering a fixed candidate list afterwards.
"""

from __future__ import annotations

import numpy as np
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from pgvector.django import CosineDistance

from annotations.models import Classification
from projects.models import Project
from similarity.models import ImageEmbedding

DEFAULT_LIMIT = 20
DEFAULT_THRESHOLD = 0.5  # 1vN: how alike a result must be at least
DEFAULT_PAIR_THRESHOLD = 0.6  # NvN: near-duplicates of photos score 0.6-1.0, other photos below 0.5 (docs/benchmarks.md)
MAX_LIMIT = 1000
MAX_PAIRS = 10_000


def labels_resolve(*, project: Project, names: list[str]) -> list[int]:
    """Label ids for names of this project's labels; an unknown name is a 400 naming it."""
    found = dict(project.labels.filter(name__in=names).values_list("name", "id"))
    missing = [name for name in names if name not in found]
    if missing:
        raise ValidationError({"labels": [f"No label named {', '.join(repr(n) for n in missing)} in this project."]})
    return [found[name] for name in names]


def _with_labels(queryset, label_ids: list[int], op: str):
    if not label_ids:
        return queryset
    if op == "and":
        for label_id in label_ids:
            queryset = queryset.filter(Exists(Classification.objects.filter(image_id=OuterRef("image_id"), label_id=label_id)))
        return queryset
    return queryset.filter(Exists(Classification.objects.filter(image_id=OuterRef("image_id"), label_id__in=label_ids)))


def similar_images(
    *, project: Project, vector, limit: int = DEFAULT_LIMIT, threshold: float = DEFAULT_THRESHOLD,
    label_ids: list[int] | None = None, op: str = "or", exclude_image_id: int | None = None,
) -> list[tuple[int, float]]:
    """(image id, score) of the most similar images, best first, at most `limit`, none below `threshold`."""
    queryset = ImageEmbedding.objects.filter(project=project)
    if exclude_image_id is not None:
        queryset = queryset.exclude(image_id=exclude_image_id)
    queryset = _with_labels(queryset, label_ids or [], op)
    queryset = queryset.annotate(distance=CosineDistance("vector", vector)).order_by("distance")
    with transaction.atomic(), connection.cursor() as cursor:
        # Candidates enough for the limit, and when filters drop some, keep scanning the index in order.
        cursor.execute(f"SET LOCAL hnsw.ef_search = {max(40, min(1000, 2 * int(limit)))}")
        cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        rows = list(queryset.values_list("image_id", "distance")[:limit])
    return [(image_id, 1.0 - distance) for image_id, distance in rows if 1.0 - distance >= threshold]


def project_vectors(*, project: Project, label_ids: list[int] | None = None, op: str = "or") -> tuple[np.ndarray, np.ndarray]:
    """Image ids and their vectors (N x 1280 float32) for the project, filtered by labels."""
    rows = list(_with_labels(ImageEmbedding.objects.filter(project=project), label_ids or [], op)
                .order_by("image_id").values_list("image_id", "vector"))  # fmt: skip
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 1280), np.float32)
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    return ids, np.stack([r[1] for r in rows]).astype(np.float32, copy=False)


def similar_pairs(
    *, project: Project, threshold: float = DEFAULT_PAIR_THRESHOLD, limit: int = 100, labels: list[str] | None = None,
    op: str = "or", progress=None,
) -> list[tuple[int, int, float]]:
    """(image a, image b, score) of the most similar pairs above the threshold, best first."""
    from training.ml.embedder import top_pairs

    label_ids = labels_resolve(project=project, names=labels) if labels else []
    ids, vectors = project_vectors(project=project, label_ids=label_ids, op=op)
    pairs = top_pairs(vectors, threshold=threshold, limit=limit, progress=progress)
    return [(int(ids[i]), int(ids[j]), round(score, 6)) for i, j, score in pairs]
