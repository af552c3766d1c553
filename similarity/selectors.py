"""Similarity searches: 1vN through the HNSW index, NvN by blocked matrix products over the stored vectors.

Scores are cosine similarities (1 - cosine distance), from -1 to 1; near-duplicates score above ~0.9.
Label filters (spec 000, similarity question 7) keep images holding all (`and`) or any (`or`) of
the named classification labels; the index scan continues until it has enough of those
(pgvector's iterative scans) instead of filtering a fixed candidate list afterwards.
"""

from __future__ import annotations

import weakref

import numpy as np
import psycopg
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from annotations.filters import has_label
from annotations.models import Annotation, Classification
from projects.models import Project
from similarity.models import ImageEmbedding
from training.ml.embedder import DIMENSIONS, EMBEDDER_NAME, PRECISION

DEFAULT_LIMIT = 20
DEFAULT_THRESHOLD = 0.5  # 1vN: how alike a result must be at least
DEFAULT_PAIR_THRESHOLD = (
    0.6  # NvN: near-duplicates of photos score 0.6-1.0, other photos below 0.5 (docs/benchmarks.md)
)
MAX_LIMIT = 1000
EF_SEARCH = 64  # candidates the HNSW walk keeps (bench/similarity.py weighs recall against time)
MAX_PAIRS = 10_000


def labels_resolve(*, project: Project, names: list[str]) -> list[int]:
    """Label ids for names of this project's labels; an unknown name is a 400 naming it."""
    found = dict(project.labels.filter(name__in=names).values_list("name", "id"))
    missing = [name for name in names if name not in found]
    if missing:
        raise ValidationError({"labels": [f"No label named {', '.join(repr(n) for n in missing)} in this project."]})
    return [found[name] for name in names]


def _with_labels(queryset, label_ids: list[int], op: str):
    """Keep embeddings of images with all (`and`) or any (`or`) of the labels, as classification or object labels."""
    if not label_ids:
        return queryset
    if op == "and":
        for label_id in label_ids:
            queryset = queryset.filter(has_label(label_id, image="image_id"))
        return queryset
    return queryset.filter(has_label(*label_ids, image="image_id"))


_REGISTERED: weakref.WeakSet = weakref.WeakSet()


def _vector_connection():
    """The current psycopg connection, with pgvector's binary types registered once (it costs a query)."""
    from pgvector.psycopg import register_vector

    connection.ensure_connection()
    raw = connection.connection
    if raw not in _REGISTERED:
        register_vector(raw)
        _REGISTERED.add(raw)
    return raw


def _label_sql(label_ids: list[int], op: str) -> tuple[str, list]:
    """The same rule as `_with_labels` (and annotations.filters): a classification label or an object's label."""
    if not label_ids:
        return "", []
    classes, objects = Classification._meta.db_table, Annotation._meta.db_table
    labels_of = (
        f"SELECT c.label_id FROM {classes} c WHERE c.image_id = e.image_id AND c.label_id = ANY(%s)"
        f" UNION SELECT a.label_id FROM {objects} a WHERE a.image_id = e.image_id AND a.label_id = ANY(%s)"
    )
    if op == "and":
        return f" AND (SELECT count(*) FROM ({labels_of}) l) = %s", [label_ids, label_ids, len(set(label_ids))]
    return f" AND EXISTS ({labels_of})", [label_ids, label_ids]


def similar_images(
    *,
    project: Project,
    vector,
    limit: int = DEFAULT_LIMIT,
    threshold: float = DEFAULT_THRESHOLD,
    label_ids: list[int] | None = None,
    op: str = "or",
    exclude_image_id: int | None = None,
    ef_search: int | None = None,
) -> list[tuple[int, float]]:
    """(image id, score) of the most similar images, best first, at most `limit`, none below `threshold`.

    One query through the HNSW index with the vector sent in binary. `ef_search` candidates (at
    least twice the limit) are kept while the index is walked; when a filter drops rows, the walk
    goes on until the limit is filled (pgvector's iterative scan, relaxed order, sorted here).
    """
    from pgvector import Vector

    labels_sql, labels_params = _label_sql(label_ids or [], op)
    exclude_sql = " AND e.image_id <> %s" if exclude_image_id is not None else ""
    sql = (
        f"SELECT e.image_id, e.vector <=> %s AS distance FROM {ImageEmbedding._meta.db_table} e"
        f" WHERE e.project_id = %s AND e.embedder = %s AND e.precision = %s{exclude_sql}{labels_sql}"
        " ORDER BY e.vector <=> %s LIMIT %s"
    )  # noqa: S608  (table names from model metadata; every value is a parameter)
    query = Vector(np.asarray(vector, dtype=np.float32))
    params = [
        query,
        project.pk,
        EMBEDDER_NAME,
        PRECISION,
        *([exclude_image_id] if exclude_image_id is not None else []),
        *labels_params,
        query,
        limit,
    ]
    candidates = max(ef_search or EF_SEARCH, 2 * int(limit))
    with transaction.atomic(), connection.wrap_database_errors:
        with psycopg.Cursor(_vector_connection()) as cursor:
            # relaxed_order: strict_order re-walks up to hnsw.max_scan_tuples when later candidates come back
            # closer (measured: 0.5 s a query on near-tied vectors); the few rows are sorted here instead.
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                [str(min(1000, candidates))],
            )
            cursor.execute(sql, params, binary=True)
            rows = cursor.fetchall()
            if len(rows) < limit and (labels_sql or exclude_sql):
                # The walk stops after hnsw.max_scan_tuples; a rare label in a large index can come back
                # short. Then search exactly (`+ 0` keeps the planner off the index).
                cursor.execute(
                    sql.replace("ORDER BY e.vector <=> %s", "ORDER BY (e.vector <=> %s) + 0"), params, binary=True
                )
                rows = cursor.fetchall()
    rows.sort(key=lambda row: row[1])
    return [(image_id, 1.0 - distance) for image_id, distance in rows if 1.0 - distance >= threshold]


def project_vectors(
    *, project: Project, label_ids: list[int] | None = None, op: str = "or"
) -> tuple[np.ndarray, np.ndarray]:
    """Image ids and their vectors (N x 1280 float32) for the project, filtered by labels.

    Read in binary (pgvector's psycopg types), which is ~30x faster than parsing each vector's text.
    """
    queryset = _with_labels(ImageEmbedding.objects.for_project(project), label_ids or [], op).order_by("image_id")
    sql, params = queryset.values_list("image_id", "vector").query.sql_with_params()
    # Django's cursors bind parameters on the client, which cannot return binary rows.
    with connection.wrap_database_errors, psycopg.Cursor(_vector_connection()) as cursor:
        cursor.execute(sql, params, binary=True)
        rows = cursor.fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, DIMENSIONS), np.float32)
    ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
    return ids, np.stack([row[1].to_numpy() for row in rows]).astype(np.float32, copy=False)


def similar_pairs(
    *,
    project: Project,
    threshold: float = DEFAULT_PAIR_THRESHOLD,
    limit: int = 100,
    labels: list[str] | None = None,
    op: str = "or",
    progress=None,
) -> list[tuple[int, int, float]]:
    """(image a, image b, score) of the most similar pairs above the threshold, best first."""
    from training.ml.embedder import top_pairs

    label_ids = labels_resolve(project=project, names=labels) if labels else []
    ids, vectors = project_vectors(project=project, label_ids=label_ids, op=op)
    pairs = top_pairs(vectors, threshold=threshold, limit=limit, progress=progress)
    return [(int(ids[i]), int(ids[j]), round(score, 6)) for i, j, score in pairs]
