"""Training benchmark on real labelled pixels, through the API and the real job path, default parameters.

- digits: scikit-learn's 1,797 handwritten digits (8x8, 10 classes) uploaded as PNGs, single-label.
- scenes: generated scenes holding a disc, a square and/or a bar, multi-label.
- predict: images per second of the digits model, batched in-process and one request at a time.

Run: .venv/bin/python bench/training.py [--only digits|scenes] [--scenes 600]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from harness import bench_database, machine, percentile, table, timed
from PIL import Image as PILImage


def digits_pngs() -> dict[str, list[tuple[str, bytes]]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    by_label: dict[str, list[tuple[str, bytes]]] = {}
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        out = io.BytesIO()
        PILImage.fromarray((pixels * 255 / 16).astype(np.uint8)).save(out, "PNG")
        by_label.setdefault(str(target), []).append((f"digit_{index:04}.png", out.getvalue()))
    return by_label


def scenes(count: int) -> dict[tuple[str, ...], list[tuple[str, bytes]]]:
    from tests.training.conftest import shapes_png

    rng = np.random.default_rng(7)
    kinds = ["bar", "disc", "square"]
    by_labels: dict[tuple[str, ...], list[tuple[str, bytes]]] = {}
    for index in range(count):
        chosen = tuple(k for k in kinds if rng.random() < 0.5)
        by_labels.setdefault(chosen, []).append((f"scene_{index:04}.png", shapes_png(set(chosen), index)))
    return by_labels


def upload(client, project, groups: dict, batch: int = 100) -> tuple[int, float]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    stored, started = 0, time.perf_counter()
    for labels, files in groups.items():
        names = [labels] if isinstance(labels, str) else list(labels)
        for start in range(0, len(files), batch):
            chunk = [SimpleUploadedFile(n, d) for n, d in files[start : start + batch]]
            response = client.post(
                f"/api/projects/{project.id}/images/", {"files": chunk, "labels": ",".join(names)}, format="multipart"
            )
            stored += len(response.json()["stored"])
    return stored, time.perf_counter() - started


def train(client, project, multi_label: bool) -> dict:
    response = client.post(
        f"/api/projects/{project.id}/training-jobs/",
        {"task": "classification", "multi_label": multi_label},
        format="json",
    )
    assert response.status_code == 201, response.content
    job = client.get(f"/api/training-jobs/{response.json()['id']}/").json()
    assert job["status"] == "finished", job["error"] + job["log"]
    return job


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["digits", "scenes"])
    parser.add_argument("--scenes", type=int, default=600)
    args = parser.parse_args()
    from django_q.conf import Conf

    Conf.SYNC = True  # the job runs in this process, exactly as a worker runs it
    rows, predict_rows = [], []
    with bench_database():
        from datetime import datetime

        from tests.conftest import client_for
        from tests.factories import UserFactory, make_project
        from training.models import ModelVersion

        owner = UserFactory()
        client = client_for(owner)
        cases = [("digits", False, digits_pngs)] if args.only != "scenes" else []
        if args.only != "digits":
            cases.append(("scenes", True, lambda: scenes(args.scenes)))
        for name, multi_label, make in cases:
            project = make_project(owner=owner, name=name)
            stored, upload_seconds = upload(client, project, make())
            job = train(client, project, multi_label)
            seconds = (
                datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
            ).total_seconds()
            model = ModelVersion.objects.get(pk=job["model_id"])
            valid = model.metrics["best"]["valid"]
            accuracy = (
                f"label-wise {valid['label_accuracy']:.4f}, image-wise {valid['image_accuracy']:.4f}"
                if multi_label
                else f"{valid['accuracy']:.4f}"
            )
            counts = job["dataset_version"]["counts"]
            rows.append(
                [
                    name,
                    stored,
                    f"{counts['train']}/{counts['valid']}",
                    f"{upload_seconds:.1f}",
                    job["epoch"],
                    model.best_epoch,
                    f"{seconds:.1f}",
                    accuracy,
                    job["device"],
                ]
            )
            if name == "digits":
                predict_rows = predict_speed(client, project, model)
    print(f"machine: {machine()}")
    print(
        table(
            [
                "data",
                "images",
                "train/valid",
                "upload s",
                "epochs",
                "best",
                "training s",
                "validation accuracy",
                "device",
            ],
            rows,
        )
    )
    if predict_rows:
        print(table(["prediction", "images", "seconds", "images/s", "p50 ms", "p95 ms"], predict_rows))


def predict_speed(client, project, model) -> list[list]:
    """Batched, in-process (as a pre-labelling job would), and one image per API request (as a script would)."""
    from training.predictions import classifier_load

    images = []
    for index in range(256):
        out = io.BytesIO()
        PILImage.fromarray(np.random.default_rng(index).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(out, "PNG")
        images.append(out.getvalue())
    classifier = classifier_load(model.best_checkpoint.name)
    classifier.predict(images[:32])  # warm up
    start = time.perf_counter()
    classifier.predict(images)
    batched = time.perf_counter() - start
    url = f"/api/predict/{project.id}/{model.name}/"
    times = timed(lambda: client.post(url, images[0], content_type="image/png"), 50)
    return [
        ["batched (32 per batch)", len(images), f"{batched:.1f}", f"{len(images) / batched:.1f}", "", ""],
        [
            "API, one per request",
            50,
            f"{sum(times) / 1000:.1f}",
            f"{50_000 / sum(times):.1f}",
            f"{percentile(times, 50):.1f}",
            f"{percentile(times, 95):.1f}",
        ],
    ]


if __name__ == "__main__":
    main()
