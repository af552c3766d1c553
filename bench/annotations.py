"""Annotation benchmarks: save and load 1,000 shapes on one image; COCO export of 10,000 images with
100,000 shapes; import of 200,000 CSV classification rows.

Run: .venv/bin/python bench/annotations.py [--quick]
"""

import argparse
import hashlib
import json
import random
import time

from harness import bench_database, machine, percentile, table, timed


def polygon(rng: random.Random, width: int, height: int, vertices: int = 20) -> dict:
    import math

    cx, cy, r = rng.uniform(50, width - 50), rng.uniform(50, height - 50), rng.uniform(10, 40)
    outer = [
        [cx + r * math.cos(2 * math.pi * k / vertices), cy + r * math.sin(2 * math.pi * k / vertices)]
        for k in range(vertices)
    ]
    return {"parts": [{"outer": outer, "holes": []}]}


def save_and_load(rows: list, repeat: int) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotations.models import Annotation
    from projects.models import Label
    from projects.uploads import images_upload
    from tests.conftest import client_for
    from tests.factories import UserFactory, image_bytes, make_project

    owner = UserFactory()
    project = make_project(owner=owner)
    image = images_upload(
        project=project, user=owner, labels=[], files=[SimpleUploadedFile("big.png", image_bytes(4000, 3000))]
    ).stored[0]
    label = Label.objects.create(project=project, name="thing")
    client = client_for(owner)
    rng = random.Random(1)
    shapes = [{"label": label.id, "kind": "polygon", "geometry": polygon(rng, 4000, 3000)} for _ in range(1000)]
    url = f"/api/images/{image.id}/annotations/"
    state = {"revision": 0}

    # Bodies are encoded before the clock starts: the table reports the server's time.
    def put(body: dict) -> int:
        encoded = json.dumps(body)
        start = time.perf_counter()
        response = client.put(url, encoded, content_type="application/json")
        elapsed.append((time.perf_counter() - start) * 1000)
        return json.loads(response.content)["revision"]

    elapsed: list[float] = []
    for _ in range(repeat):
        Annotation.objects.filter(image=image).delete()
        state["revision"] = put({"revision": state["revision"], "shapes": shapes})
    first, elapsed = elapsed, []
    document = client.get(url).json()
    for _ in range(repeat):
        document["shapes"][0]["geometry"]["parts"][0]["outer"][0][0] += 1
        state["revision"] = document["revision"] = put({**document, "revision": state["revision"]})
    changed = elapsed
    loaded = timed(lambda: client.get(url), repeat)
    for name, ms in [
        ("save 1,000 new polygons (20 vertices)", first),
        ("re-save 1,000 with one moved vertex", changed),
        ("load 1,000 polygons", loaded),
    ]:
        rows.append([name, f"{percentile(ms, 50):.0f} ms", f"{percentile(ms, 95):.0f} ms"])


def coco_export(rows: list, images: int, shapes_per_image: int) -> None:
    from annotations.models import Annotation
    from annotations.services.transfers import project_export
    from projects.models import Image, Label
    from tests.factories import UserFactory, make_project

    owner = UserFactory()
    project = make_project(owner=owner, name="export")
    labels = [Label.objects.create(project=project, name=f"class {k}") for k in range(10)]
    Image.objects.bulk_create(
        (
            Image(
                project=project,
                name=f"img_{i:06}.jpg",
                width=1024,
                height=768,
                uploaded_by=owner,
                sha256=hashlib.sha256(f"e{i}".encode()).hexdigest(),
                file=f"x/{i}.jpg",
                thumbnail=f"x/{i}.webp",
            )
            for i in range(images)
        ),
        batch_size=5000,
    )
    rng = random.Random(2)
    annotations = []
    for image_id in Image.objects.filter(project=project).values_list("id", flat=True):
        for k in range(shapes_per_image):
            if k % 2:
                geometry = {"x": rng.uniform(0, 900), "y": rng.uniform(0, 600), "width": 100.0, "height": 80.0}
                kind = "box"
            else:
                geometry, kind = polygon(rng, 1024, 768, vertices=12), "polygon"
            annotations.append(Annotation(image_id=image_id, label=labels[k % 10], kind=kind, geometry=geometry))
    Annotation.objects.bulk_create(annotations, batch_size=5000)
    start = time.perf_counter()
    exported = project_export(project=project, format_key="coco")
    seconds = time.perf_counter() - start
    assert exported.summary.shapes == images * shapes_per_image
    rows.append(
        [
            f"export COCO: {images:,} images, {images * shapes_per_image:,} shapes",
            f"{seconds:.1f} s",
            f"{len(exported.content) / 1e6:.0f} MB",
        ]
    )


def csv_import(rows: list, count: int) -> None:
    from annotations.models import Classification
    from annotations.services.transfers import project_import
    from projects.models import Image
    from tests.factories import UserFactory, make_project

    owner = UserFactory()
    project = make_project(owner=owner, name="import")
    Image.objects.bulk_create(
        (
            Image(
                project=project,
                name=f"photo_{i:06}.jpg",
                width=640,
                height=480,
                uploaded_by=owner,
                sha256=hashlib.sha256(f"c{i}".encode()).hexdigest(),
                file=f"y/{i}.jpg",
                thumbnail=f"y/{i}.webp",
            )
            for i in range(count)
        ),
        batch_size=10000,
    )
    content = "".join(
        f"photo_{i:06}.jpg,{'cat' if i % 3 else 'dog'}{',outdoor' if i % 2 else ''}\n" for i in range(count)
    ).encode()
    start = time.perf_counter()
    summary = project_import(project=project, user=owner, format_key="csv", content=content)
    seconds = time.perf_counter() - start
    assert summary.images == count
    assert Classification.objects.filter(image__project=project).count() == count + count // 2
    rows.append([f"import CSV: {count:,} rows", f"{seconds:.1f} s", f"{len(content) / 1e6:.1f} MB"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, for a smoke run")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    rows: list = []
    with bench_database():
        save_and_load(rows, repeat=5 if args.quick else 20)
        coco_export(rows, images=10_000 // scale, shapes_per_image=10)
        csv_import(rows, count=200_000 // scale)
    print(f"machine: {machine()}")
    print(table(["case", "p50 / time", "p95 / size"], rows))


if __name__ == "__main__":
    main()
