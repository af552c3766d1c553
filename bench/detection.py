"""Detection benchmark: the default detector (spec 000's parameters as Sightline ships them) trained on generated
scenes, validation mAP as COCOeval computes it, and inference time for a 640 px image.

- shapes (the default): 640x480, textured backgrounds, 2-6 objects of 3 kinds (discs, squares, triangles) of
  12-200 px, in shades of their colour, overlapping at times. The target: validation mAP@0.5 >= 0.90 within
  10 minutes of training with the default parameters on a 2-core CPU.
- photos (`--scenes photos`), the harder set: a crop of one of scikit-image's photos with 2-6 objects cut from its
  other photos (a cat's head, a cup, a rocket, a face) pasted at 24-240 px, flipped, lighter or darker.
- predict: a 640x480 image through training.ml.detection.Detector (what the predict endpoint calls), p50 and p95;
  `--api-only` instead times POST /api/predict/ through Django's whole stack, in-process.

Run: .venv/bin/python bench/detection.py [--scenes shapes|photos] [--train 240] [--valid 60] [--minutes 10]
     [--model-size medium] | --api-only
"""

from __future__ import annotations

import argparse
import functools
import io
import sys
import time
from pathlib import Path

import numpy as np
from harness import machine, percentile, table
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("disc", "square", "triangle")
HUES = {"disc": (210, 50, 50), "square": (50, 190, 70), "triangle": (60, 80, 215)}


def textured_scene(seed: int, width: int = 640, height: int = 480) -> tuple[bytes, list[tuple]]:
    """A blurred field of random blobs and noise, then 2-6 objects; returns PNG bytes and x, y, w, h, label rows."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 190, 3)
    image = PILImage.new("RGB", (width, height), tuple(int(v) for v in base))
    draw = ImageDraw.Draw(image)
    for _ in range(40):  # the texture: soft blobs of nearby colours
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(10, 120)
        colour = tuple(int(v) for v in np.clip(base + rng.integers(-50, 50, 3), 0, 255))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(6))
    noise = rng.integers(-18, 18, (height, width, 3))
    image = PILImage.fromarray(np.clip(np.asarray(image).astype(int) + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    rows = []
    for _ in range(int(rng.integers(2, 7))):
        kind = KINDS[int(rng.integers(3))]
        side = int(np.exp(rng.uniform(np.log(12), np.log(200))))
        x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        colour = tuple(int(v) for v in np.clip(np.array(HUES[kind]) + rng.integers(-35, 35, 3), 0, 255))
        corners = (x, y, x + side - 1, y + side - 1)
        if kind == "disc":
            draw.ellipse(corners, fill=colour)
        elif kind == "square":
            draw.rectangle(corners, fill=colour)
        else:
            draw.polygon([(x, y + side - 1), (x + side - 1, y + side - 1), (x + side // 2, y)], fill=colour)
        rows.append((x, y, side, side, KINDS.index(kind)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), rows


# The harder set: objects cut from scikit-image's photos, pasted onto crops of its other photos.
PHOTO_OBJECTS = {  # class -> (photo, x0, y0, x1, y1) of the cut-out
    "cat": ("chelsea", 60, 30, 380, 290),
    "cup": ("coffee", 75, 15, 480, 390),
    "rocket": ("rocket", 295, 120, 345, 410),
    "face": ("astronaut", 150, 20, 310, 200),
}
PHOTO_BACKGROUNDS = (
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
    "brick",
    "grass",
    "gravel",
    "camera",
    "page",
    "coins",
)


@functools.cache
def _photo(name: str) -> PILImage.Image:
    import skimage.data

    pixels = getattr(skimage.data, name)()
    pixels = pixels[0] if isinstance(pixels, tuple) else pixels  # stereo_motorcycle: the left view
    return PILImage.fromarray(np.asarray(pixels)).convert("RGB")


def photo_scene(seed: int, width: int = 640, height: int = 480) -> tuple[bytes, list[tuple]]:
    """A crop of one real photo with 2-6 real objects pasted on it: scaled (longer side 24-240 px, log-uniform),
    flipped at times, lighter or darker, overlapping another by at most a quarter of the smaller; JPEG bytes and
    x, y, w, h, label rows."""
    rng = np.random.default_rng(seed)
    background = _photo(PHOTO_BACKGROUNDS[int(rng.integers(len(PHOTO_BACKGROUNDS)))])
    scale = rng.uniform(0.5, 1.0)
    crop_w = int(background.width * scale)
    crop_h = min(background.height, int(crop_w * height / width))
    left, top = (
        int(rng.integers(0, background.width - crop_w + 1)),
        int(rng.integers(0, background.height - crop_h + 1)),
    )
    image = background.crop((left, top, left + crop_w, top + crop_h)).resize(
        (width, height), PILImage.Resampling.BILINEAR
    )
    classes = list(PHOTO_OBJECTS)
    rows: list[tuple] = []
    for _ in range(int(rng.integers(2, 7))):
        label = int(rng.integers(len(classes)))
        name, x0, y0, x1, y1 = PHOTO_OBJECTS[classes[label]]
        cut = _photo(name).crop((x0, y0, x1, y1))
        longer = float(np.exp(rng.uniform(np.log(24), np.log(240))))
        factor = longer / max(cut.size)
        size = (max(4, round(cut.width * factor)), max(4, round(cut.height * factor)))
        cut = cut.resize(size, PILImage.Resampling.LANCZOS)
        if rng.random() < 0.5:
            cut = cut.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
        cut = PILImage.fromarray(np.clip(np.asarray(cut) * rng.uniform(0.75, 1.25), 0, 255).astype(np.uint8))
        for _attempt in range(20):
            x, y = int(rng.integers(0, width - size[0] + 1)), int(rng.integers(0, height - size[1] + 1))
            if all(_overlap((x, y, *size), row[:4]) <= 0.25 for row in rows):
                image.paste(cut, (x, y))
                rows.append((x, y, size[0], size[1], label))
                break
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue(), rows


def _overlap(a: tuple, b: tuple) -> float:
    """The intersection of two x, y, w, h boxes over the smaller one's area."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h) / min(a[2] * a[3], b[2] * b[3])


SETS = {"shapes": (textured_scene, KINDS), "photos": (photo_scene, tuple(PHOTO_OBJECTS))}


def api_speed(make_scene, classes, web_threads: int) -> list[list]:
    """A detector of the default size trained through the API for one epoch on 16 scenes (its speed does not
    depend on how well it learned), then one 640x480 image per request to POST /api/predict/ through Django's
    whole stack (authentication, parsing, the image check, decoding, the model, the JSON reply), in-process, with
    the web process's torch threads."""
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django_q.conf import Conf
    from harness import bench_database, timed

    from training.ml import runtime

    settings.SIGHTLINE_DETECTOR_ONNX = True  # as deployed (the test settings turn it off)
    Conf.SYNC = True  # the training job runs in this process, exactly as a worker runs it
    with bench_database():
        from projects.models import Label
        from projects.uploads import images_upload
        from tests.conftest import client_for
        from tests.factories import UserFactory, make_project

        owner = UserFactory()
        client = client_for(owner)
        project = make_project(owner=owner, name="detection")
        labels = [Label.objects.create(project=project, name=name) for name in classes]
        for seed in range(16):
            data, rows = make_scene(seed)
            [image] = images_upload(
                project=project,
                user=owner,
                files=[SimpleUploadedFile(f"s{seed}.jpg" if data[:2] == b"\xff\xd8" else f"s{seed}.png", data)],
                labels=[],
            ).stored
            shapes = [
                {"label": labels[k].id, "kind": "box", "geometry": {"x": x, "y": y, "width": w, "height": h}}
                for x, y, w, h, k in rows
            ]
            client.put(f"/api/images/{image.id}/annotations/", {"revision": 0, "shapes": shapes}, format="json")
        job = client.post(
            f"/api/projects/{project.id}/training-jobs/",
            {"task": "detection", "name": "boxes", "parameters": {"epochs": 1}},
            format="json",
        )
        assert job.status_code == 201, job.content
        # As `manage.py serve` runs it, the web process borrows pooled connections; the test settings open one per
        # request, which is not what a deployment pays: keep this one open.
        from django.db import connection

        connection.close()
        connection.settings_dict["CONN_MAX_AGE"] = None
        runtime.threads_limit(web_threads)  # what a web process's Detector then takes (device_choose)
        probe = make_scene(30_000)[0]
        url = f"/api/predict/{project.id}/boxes/"
        assert client.post(url, probe, content_type="application/octet-stream").status_code == 200
        import io

        import torch

        from projects.files import stored_bytes
        from training.ml.detection import Detector
        from training.models import ModelVersion
        from training.predictions import detector_load

        name = ModelVersion.objects.get(name="boxes").best_checkpoint.name
        detector = detector_load(name)
        saved = torch.load(io.BytesIO(stored_bytes(name)), weights_only=True)
        saved.pop("onnx")
        by_torch = Detector(saved)
        rows = []
        for name, call in (
            ("POST /api/predict/ (Django test client)", lambda: client.post(url, probe, content_type="image/png")),
            ("Detector.predict alone (ONNX Runtime), the same image", lambda: detector.predict([probe], score=0.3)),
            ("Detector.predict alone with torch, the same image", lambda: by_torch.predict([probe], score=0.3)),
        ):
            times = timed(call, 50)
            rows.append([name, f"{percentile(times, 50):.0f}", f"{percentile(times, 95):.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--valid", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--model-size", default=None, help="small, medium or large (default: the parameter's)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--api-only", action="store_true", help="only the predict endpoint's speed")
    parser.add_argument("--web-threads", type=int, default=1, help="torch threads of the web process (--api-only)")
    parser.add_argument("--scenes", choices=SETS, default="shapes", help="shapes, or photos: the harder set")
    args = parser.parse_args()

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from training.ml import detection, runtime
    from training.parameters import DETECTION

    defaults = {p.name: p.default for p in DETECTION}
    make_scene, classes = SETS[args.scenes]
    if args.api_only:
        print(f"Machine: {machine()}")
        print(table(["predict a 640x480 image", "p50 ms", "p95 ms"], api_speed(make_scene, classes, args.web_threads)))
        return
    files: dict[str, bytes] = {}

    def samples(seeds) -> list:
        out = []
        for seed in seeds:
            files[f"scene{seed}"], rows = make_scene(seed)
            out.append(detection.BoxSample(f"scene{seed}", tuple(rows)))
        return out

    train = samples(range(args.train))
    valid = samples(range(10_000, 10_000 + args.valid))
    config = detection.DetectorConfig(
        labels=classes,
        model_size=args.model_size or defaults["model_size"],
        epochs=args.epochs or defaults["epochs"],
        batch_size=defaults["batch_size"],
        learning_rate=defaults["learning_rate"],
        time_limit_seconds=args.minutes * 60,
        patience_seconds=defaults["patience_minutes"] * 60,
    )
    lines: list[str] = []
    hooks = detection.Hooks(log=lambda line: (lines.append(line), print(line, flush=True)))
    device = runtime.device_choose()
    started = time.perf_counter()
    result = detection.train(config, train, valid, hooks=hooks, read=files.__getitem__, device=device)
    seconds = time.perf_counter() - started
    best = result.history[result.best_epoch - 1]

    detector = detection.Detector(result.checkpoints["best"], device=device)
    probe = [make_scene(20_000 + i)[0] for i in range(20)]
    detector.predict(probe[:1], score=0.3)
    times = []
    for data in probe:
        begun = time.perf_counter()
        detector.predict([data], score=0.3)
        times.append(time.perf_counter() - begun)

    print(f"\nMachine: {machine()}, {runtime.describe(device)}; scenes: {args.scenes}")
    print(
        table(
            [
                "images (train/valid)",
                "model",
                "epochs run",
                "stopped by",
                "train s",
                "best epoch",
                "mAP@0.5",
                "mAP@[.5:.95]",
            ],
            [
                [
                    f"{len(train)}/{len(valid)}",
                    f"{config.model_size} {config.size}px",
                    len(result.history),
                    result.stopped_by,
                    f"{seconds:.0f}",
                    result.best_epoch,
                    f"{best['valid_map50']:.3f}",
                    f"{best['valid_map']:.3f}",
                ]
            ],
        )
    )
    print(
        table(
            ["predict 640x480 PNG", "p50 ms", "p95 ms"],
            [["Detector.predict", f"{percentile(times, 50) * 1000:.0f}", f"{percentile(times, 95) * 1000:.0f}"]],
        )
    )


if __name__ == "__main__":
    main()
