"""Detection benchmark: the default detector (spec 000's parameters as Sightline ships them) trained on generated
scenes, validation mAP as COCOeval computes it, and inference time for a 640 px image.

- scenes: 640x480, textured backgrounds, 2-6 objects of 3 kinds (discs, squares, triangles) of 12-200 px, in
  shades of their colour, overlapping at times. The target: validation mAP@0.5 >= 0.90 within 10 minutes of
  training with the default parameters on a 2-core CPU.
- predict: a 640x480 PNG through training.ml.detection.Detector (what the predict endpoint calls), p50 and p95.

Run: .venv/bin/python bench/detection.py [--train 240] [--valid 60] [--minutes 10] [--model-size medium]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--valid", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--model-size", default=None, help="small, medium or large (default: the parameter's)")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from training.ml import detection, runtime
    from training.parameters import DETECTION

    defaults = {p.name: p.default for p in DETECTION}
    files: dict[str, bytes] = {}

    def samples(seeds) -> list:
        out = []
        for seed in seeds:
            files[f"scene{seed}"], rows = textured_scene(seed)
            out.append(detection.BoxSample(f"scene{seed}", tuple(rows)))
        return out

    train = samples(range(args.train))
    valid = samples(range(10_000, 10_000 + args.valid))
    config = detection.DetectorConfig(
        labels=KINDS,
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
    probe = [textured_scene(20_000 + i)[0] for i in range(20)]
    detector.predict(probe[:1], score=0.3)
    times = []
    for data in probe:
        begun = time.perf_counter()
        detector.predict([data], score=0.3)
        times.append(time.perf_counter() - begun)

    print(f"\nMachine: {machine()}, {runtime.describe(device)}")
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
