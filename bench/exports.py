"""Export benchmarks, each in a fresh process so its peak memory is its own: a COCO export of 10,000 images
with 100,000 shapes and a classification ZIP of 2,000 JPEGs, both as the background job a large project
runs (written to storage); and the settings page of a project with 100,000 annotations.

Run: .venv/bin/python bench/exports.py [--quick]
"""

import argparse
import hashlib
import io
import json
import random
import resource
import subprocess
import sys
import time

from harness import bench_database, machine, table


def rss_mb() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries the parent's peak into a
    child across exec, and the parent that built 100,000 shapes is big."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _project(images: int, *, files: bool):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    from projects.models import Image, Label
    from tests.factories import UserFactory, make_project

    owner = UserFactory()
    project = make_project(owner=owner, name="export")
    labels = [Label.objects.create(project=project, name=f"class {k}") for k in range(10)]
    rows = []
    rng = random.Random(3)
    for i in range(images):
        name = f"x/{project.pk}/{i}.jpg"
        if files:  # a real JPEG of a photo's size, about 60 KB
            pixels = PILImage.effect_noise((640, 480), 24).convert("RGB")
            out = io.BytesIO()
            pixels.save(out, "JPEG", quality=85)
            name = default_storage.save(name, ContentFile(out.getvalue()))
        rows.append(
            Image(
                project=project,
                name=f"img_{i:06}.jpg",
                width=640 if files else 1024,
                height=480 if files else 768,
                uploaded_by=owner,
                file=name,
                thumbnail=f"x/{i}.webp",
                sha256=hashlib.sha256(f"e{i}-{rng.random()}".encode()).hexdigest(),
            )
        )
    Image.objects.bulk_create(rows, batch_size=5000)
    return owner, project, labels


def _shapes(project, labels, per_image: int) -> int:
    import math

    from annotations.models import Annotation, Classification
    from projects.models import Image

    rng = random.Random(2)
    annotations, classifications = [], []
    for image_id in Image.objects.filter(project=project).values_list("id", flat=True):
        classifications.append(Classification(image_id=image_id, label=labels[image_id % 10], is_default=True))
        for k in range(per_image):
            if k % 2:
                geometry, kind = (
                    {"x": rng.uniform(0, 900), "y": rng.uniform(0, 600), "width": 100.0, "height": 80.0},
                    "box",
                )
            else:
                cx, cy, r = rng.uniform(50, 974), rng.uniform(50, 718), rng.uniform(10, 40)
                outer = [
                    [cx + r * math.cos(2 * math.pi * v / 12), cy + r * math.sin(2 * math.pi * v / 12)]
                    for v in range(12)
                ]
                geometry, kind = {"parts": [{"outer": outer, "holes": []}]}, "polygon"
            annotations.append(Annotation(image_id=image_id, label=labels[k % 10], kind=kind, geometry=geometry))
    Annotation.objects.bulk_create(annotations, batch_size=5000)
    Classification.objects.bulk_create(classifications, batch_size=5000)
    return len(annotations)


def _export_job(owner, project, format_key: str) -> tuple[float, float, float, int]:
    """The export as a worker runs it, in a fresh process (so its memory is the job's alone): seconds, peak RSS
    and RSS before the job in MB, and the size of the file it wrote to storage."""
    from annotations.services import transfers
    from tests.workers import worker_env

    job = transfers.transfer_start(project=project, user=owner, direction="export", format_key=format_key)
    env = worker_env()
    worker = subprocess.run([sys.executable, __file__, "--job", str(job.pk)], env=env, capture_output=True, text=True)
    assert worker.returncode == 0, worker.stderr[-3000:]
    seconds, peak, before = json.loads(worker.stdout.strip().splitlines()[-1])
    job.refresh_from_db()
    assert job.status == "finished", job.error
    return seconds, peak, before, job.file.size


def run_job(job_id: int) -> None:
    import django

    django.setup()
    from jobs.runner import job_run

    before = rss_mb()
    start = time.perf_counter()
    job_run(job_id)
    print(json.dumps([time.perf_counter() - start, rss_mb(), before]))


def case_coco(scale: int) -> list:
    images = 10_000 // scale
    owner, project, labels = _project(images, files=False)
    shapes = _shapes(project, labels, 10)
    seconds, peak, before, size = _export_job(owner, project, "coco")
    return [
        f"export COCO (job): {images:,} images, {shapes:,} shapes",
        f"{seconds:.1f} s",
        f"{peak:.0f} MB",
        f"{before:.0f} MB",
        f"{size / 1e6:.0f} MB",
    ]


def case_classification_zip(scale: int) -> list:
    images = 2_000 // scale
    owner, project, labels = _project(images, files=True)
    _shapes(project, labels, 0)
    seconds, peak, before, size = _export_job(owner, project, "classification-zip")
    return [
        f"export classification ZIP (job): {images:,} JPEGs",
        f"{seconds:.1f} s",
        f"{peak:.0f} MB",
        f"{before:.0f} MB",
        f"{size / 1e6:.0f} MB",
    ]


def case_settings_page(scale: int) -> list:
    from django.test import Client

    owner, project, labels = _project(10_000 // scale, files=False)
    shapes = _shapes(project, labels, 10)
    client = Client()
    client.force_login(owner)
    url = f"/projects/{project.pk}/settings/"
    assert client.get(url).status_code == 200
    times = []
    for _ in range(10):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return [
        f"settings page, {shapes:,} annotations + {10_000 // scale:,} image labels",
        f"{times[5]:.0f} ms p50",
        "",
        "",
        "",
    ]


CASES = {"coco": case_coco, "classification-zip": case_classification_zip, "settings": case_settings_page}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, for a smoke run")
    parser.add_argument("--case", choices=list(CASES), help="run one case in this process (the parent uses it)")
    parser.add_argument("--job", type=int, help="run one job and report its time and memory (a case uses it)")
    args = parser.parse_args()
    if args.job:
        return run_job(args.job)
    scale = 10 if args.quick else 1
    if args.case:
        with bench_database():
            print(json.dumps(CASES[args.case](scale)))
        return
    rows = []
    for case in CASES:
        command = [sys.executable, __file__, "--case", case] + (["--quick"] if args.quick else [])
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print(f"machine: {machine()}")
    print(table(["case", "time", "peak RSS", "RSS before", "file"], rows))


if __name__ == "__main__":
    main()
