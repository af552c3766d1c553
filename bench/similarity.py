"""Similarity benchmark: embedding speed, near-duplicate quality on real images, 1vN and NvN over 100,000 vectors.

- quality: scikit-image's sample photos and scikit-learn's digits, each with one near-duplicate (crop to
  80-95%, resize, small rotation, brightness, JPEG 50), uploaded and indexed through the real path; NvN
  precision and recall at the default threshold and whether each copy's first 1vN result is its original,
  for photos and digits apart.
- scale: 100,000 unit vectors in 2,000 clusters written straight into the table; HNSW build time, 1vN p50
  and recall@10 against exact search (with and without a label filter), NvN time.

Run: .venv/bin/python bench/similarity.py [--vectors 100000] [--digits 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from harness import bench_database, machine, percentile, table


def quality(client, owner, digits: int) -> list[list]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from projects.models import Image
    from similarity import selectors
    from tests.factories import make_project
    from tests.similarity.near_duplicates import near_duplicate, originals

    project = make_project(owner=owner, name="Near-duplicates")
    source = originals(digits)
    copies = [(f"copy-{name.rsplit('.', 1)[0]}.jpg", near_duplicate(data, i)) for i, (name, data) in enumerate(source)]
    started = time.perf_counter()
    for start in range(0, len(source), 50):
        for batch in (source[start : start + 50], copies[start : start + 50]):
            files = [SimpleUploadedFile(n, d) for n, d in batch]
            client.post(f"/api/projects/{project.id}/images/", {"files": files}, format="multipart")
    seconds = time.perf_counter() - started
    ids = dict(Image.objects.filter(project=project).values_list("name", "id"))
    truth = {frozenset((ids[name], ids[copy])) for (name, _), (copy, _) in zip(source, copies, strict=True)}
    kind = {ids[n]: ("photos" if not n.startswith(("digit", "copy-digit")) else "digits") for n in ids}
    found = selectors.similar_pairs(project=project, limit=100_000)
    rows = [["upload + index", len(ids), f"{seconds:.1f} s", f"{len(ids) / seconds:.1f} images/s", "", ""]]
    for group in ("photos", "digits", "all"):
        want = {p for p in truth if group == "all" or kind[next(iter(p))] == group}
        got = {frozenset((a, b)) for a, b, _ in found if group == "all" or (kind[a] == group and kind[b] == group)}
        hits = len(want & got)
        top1 = []
        for (name, _), (copy, _) in zip(source, copies, strict=True):
            if group != "all" and kind[ids[name]] != group:
                continue
            body = client.get(
                f"/api/projects/{project.id}/similar/", {"image": ids[copy], "limit": 1, "threshold": -1}
            ).json()
            top1.append(body["results"][0]["image"]["id"] == ids[name])
        rows.append(
            [
                f"NvN at {selectors.DEFAULT_PAIR_THRESHOLD}: {group}",
                len(want),
                f"precision {hits / max(1, len(got)):.3f}",
                f"recall {hits / max(1, len(want)):.3f}",
                f"1vN top-1 {np.mean(top1):.3f}",
                f"{len(got)} pairs",
            ]
        )
    return rows


def vectors_of(kind: str, count: int, rng) -> np.ndarray:
    """Unit vectors of two kinds.

    - manifold: like real image features, of low intrinsic dimension: 2,000 clusters in a 48-d space,
      mapped into 1,280-d by a random linear map, plus a little isotropic noise.
    - clusters: 2,000 random centres in 1,280-d with strong isotropic noise, so the ~50 members of a
      cluster are almost equidistant: near-ties that make any approximate search lose recall.
    """
    if kind == "manifold":
        centres = rng.standard_normal((2000, 48)).astype(np.float32)
        latent = centres[rng.integers(0, len(centres), count)] + 0.5 * rng.standard_normal((count, 48)).astype(
            np.float32
        )
        vectors = latent @ rng.standard_normal((48, 1280)).astype(np.float32) + 0.5 * rng.standard_normal(
            (count, 1280)
        ).astype(np.float32)
    else:
        centres = rng.standard_normal((2000, 1280)).astype(np.float32)
        vectors = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.standard_normal((count, 1280)).astype(
            np.float32
        )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def scale(owner, count: int, kind: str, nvn: bool) -> list[list]:
    from django.db import connection
    from pgvector.psycopg import register_vector

    from annotations.models import Classification
    from projects.models import Image, Label
    from similarity import selectors
    from similarity.models import ImageEmbedding
    from tests.factories import make_project
    from training.ml.embedder import top_pairs

    rng = np.random.default_rng(0)
    project = make_project(owner=owner, name=f"Scale {kind}")
    rare = Label.objects.create(project=project, name="rare")
    vectors = vectors_of(kind, count, rng)
    Image.objects.bulk_create(
        [
            Image(
                project=project,
                name=f"v{i}.png",
                file=f"none/{i}.png",
                thumbnail=f"none/{i}.webp",
                width=1,
                height=1,
                sha256=f"{i:064x}",
            )
            for i in range(count)
        ],
        batch_size=5000,
    )
    image_ids = list(Image.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    labelled = set(rng.choice(len(image_ids), count // 100, replace=False).tolist())  # 1% carry the label
    Classification.objects.bulk_create(
        [Classification(image_id=image_ids[i], label=rare, is_default=True) for i in labelled]
    )
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS embedding_vector_hnsw")
    register_vector(connection.connection)
    started = time.perf_counter()
    with connection.connection.cursor() as cursor:
        with cursor.copy(
            "COPY similarity_imageembedding (image_id, project_id, embedder, vector, created_at) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8", "varchar", "vector", "timestamptz"])
            from django.utils import timezone

            now = timezone.now()
            for image_id, vector in zip(image_ids, vectors, strict=True):
                copy.write_row((image_id, project.id, "bench", vector, now))
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '4GB'")
        cursor.execute(
            "CREATE INDEX embedding_vector_hnsw ON similarity_imageembedding "
            "USING hnsw (vector vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        cursor.execute("ANALYZE similarity_imageembedding")
    built = time.perf_counter() - started
    rows = [
        [f"{kind}: write vectors (COPY)", count, f"{loaded:.1f} s", "", ""],
        [f"{kind}: build HNSW index", count, f"{built:.1f} s", "", ""],
    ]

    queries = [
        vectors[q] + 0.05 * rng.standard_normal(1280).astype(np.float32) for q in rng.choice(count, 200, replace=False)
    ]
    cases = [(f"1vN top 10, ef_search {ef}", ef, None, np.arange(count)) for ef in (40, 64, 100)]
    cases.append(("1vN top 10, label on 1%", selectors.EF_SEARCH, [rare.id], np.array(sorted(labelled))))
    for name, ef, label_ids, pool in cases:
        times, recalls = [], []
        for query in queries:
            start = time.perf_counter()
            found = selectors.similar_images(
                project=project, vector=query, limit=10, threshold=-1, label_ids=label_ids, ef_search=ef
            )
            times.append((time.perf_counter() - start) * 1000)
            exact = pool[np.argsort(-(vectors[pool] @ query))[:10]]
            recalls.append(len({image_ids[i] for i in exact} & {pk for pk, _ in found}) / 10)
        rows.append(
            [
                f"{kind}: {name}",
                count,
                f"p50 {percentile(times, 50):.1f} ms",
                f"p95 {percentile(times, 95):.1f} ms",
                f"recall@10 {np.mean(recalls):.3f}",
            ]
        )
    if not nvn:
        ImageEmbedding.objects.filter(project=project).delete()
        return rows

    started = time.perf_counter()
    ids, stored = selectors.project_vectors(project=project)
    read = time.perf_counter() - started
    started = time.perf_counter()
    pairs = top_pairs(stored, threshold=0.5, limit=1000)
    computed = time.perf_counter() - started
    rows.append([f"{kind}: NvN, read vectors (binary)", count, f"{read:.1f} s", "", ""])
    rows.append(
        [f"{kind}: NvN, blocked products, top 1,000 pairs", count, f"{computed:.1f} s", f"{len(pairs)} pairs", ""]
    )
    ImageEmbedding.objects.filter(project=project).delete()
    return rows


def embedding_speed() -> list[list]:
    import io

    import skimage.data
    from PIL import Image as PILImage

    from similarity.services import embedder

    photo = PILImage.fromarray(skimage.data.astronaut()).resize((1024, 768))
    images = []
    for i in range(128):
        out = io.BytesIO()
        photo.rotate(i % 7).save(out, "JPEG", quality=90)
        images.append(out.getvalue())
    model = embedder()
    model.embed(images[:32])
    started = time.perf_counter()
    model.embed(images)
    seconds = time.perf_counter() - started
    return [
        [
            "embed 1024x768 JPEGs, batches of 32",
            len(images),
            f"{seconds:.1f} s",
            f"{len(images) / seconds:.1f} images/s",
            str(model.device),
        ]
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--digits", type=int, default=100)
    parser.add_argument("--scale-only", action="store_true", help="Skip embedding speed and quality.")
    args = parser.parse_args()
    from django_q.conf import Conf

    Conf.SYNC = True  # indexing runs in this process, exactly as the worker runs it
    with bench_database():
        from tests.conftest import client_for
        from tests.factories import UserFactory

        owner = UserFactory()
        speed = embedding_speed() if not args.scale_only else []
        quality_rows = quality(client_for(owner), owner, args.digits) if not args.scale_only else []
        scale_rows = scale(owner, args.vectors, "manifold", nvn=True) + scale(
            owner, args.vectors, "clusters", nvn=False
        )
    print(f"machine: {machine()}")
    print(table(["embedding", "images", "time", "throughput", "device"], speed))
    print(table(["quality", "n", "", "", "", ""], quality_rows))
    print(table(["scale", "vectors", "time", "", ""], scale_rows))


if __name__ == "__main__":
    main()
