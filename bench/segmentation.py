"""Segmentation benchmark: the default semantic segmentation model trained on generated scenes, validation mIoU as
training/ml/segmentation_metrics computes it (checked against a numpy reference in the tests), and inference time
for a 640 px image.

Scenes: 640x480, a textured background (soft blobs and noise, as bench/detection.py's), 3-7 objects of four
kinds in shades of their colour, drawn in order so later ones cover earlier ones:
- ring: a disc with a hole (a polygon with a hole), 24-180 px across;
- leaf: a rotated ellipse, sometimes in two parts (one polygon of two parts);
- wire: a thin curve 3-7 px wide (a brush mask);
- tile: a square with a square hole off its centre (a polygon with a hole).
Each object's label pixels are exactly the pixels its colour was painted on: polygons are rasterized as pycocotools
rasterizes them (as training paints its label maps), masks are the brush's own pixels.

The target: validation mIoU >= 0.85 within 10 minutes of training with the default parameters on a 2-core CPU.

Run: .venv/bin/python bench/segmentation.py [--train 240] [--valid 60] [--minutes 10] [--image-size 416]
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

KINDS = ("ring", "leaf", "wire", "tile")
HUES = {"ring": (210, 50, 50), "leaf": (50, 190, 70), "wire": (240, 220, 60), "tile": (60, 80, 215)}


def _polygon_mask(parts: list[dict], width: int, height: int) -> np.ndarray:
    from annotations.geometry import decode_mask, rasterize

    return decode_mask(rasterize("polygon", {"parts": parts}, width=width, height=height)["rle"])


def _circle(cx: float, cy: float, rx: float, ry: float, turn: float, points: int = 40, reverse: bool = False):
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    ring = [
        [
            round(float(cx + rx * np.cos(a) * np.cos(turn) - ry * np.sin(a) * np.sin(turn)), 2),
            round(float(cy + rx * np.cos(a) * np.sin(turn) + ry * np.sin(a) * np.cos(turn)), 2),
        ]
        for a in angles
    ]
    return ring[::-1] if reverse else ring


def _object(kind: str, rng: np.random.Generator, width: int, height: int) -> tuple[str, dict, np.ndarray]:
    """One object: its annotation kind and geometry, and the pixels it covers."""
    from annotations.geometry import encode_mask

    size = float(np.exp(rng.uniform(np.log(24), np.log(180))))
    cx, cy = rng.uniform(size / 2, width - size / 2), rng.uniform(size / 2, height - size / 2)
    if kind == "ring":
        r = size / 2
        parts = [{"outer": _circle(cx, cy, r, r, 0), "holes": [_circle(cx, cy, r * 0.5, r * 0.5, 0, reverse=True)]}]
    elif kind == "leaf":
        turn = rng.uniform(0, np.pi)
        parts = [{"outer": _circle(cx, cy, size / 2, size / 4, turn), "holes": []}]
        if rng.random() < 0.4:  # a second part beside it
            dx, dy = size * 0.7 * np.cos(turn + np.pi / 2), size * 0.7 * np.sin(turn + np.pi / 2)
            x2, y2 = (
                float(np.clip(cx + dx, size / 4, width - size / 4)),
                float(np.clip(cy + dy, size / 4, height - size / 4)),
            )
            parts.append({"outer": _circle(x2, y2, size / 4, size / 8, turn), "holes": []})
    elif kind == "tile":
        half, hole = size / 2, size / 5
        hx, hy = cx + rng.uniform(-half / 3, half / 3), cy + rng.uniform(-half / 3, half / 3)
        outer = [[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half], [cx - half, cy + half]]
        inner = [[hx - hole, hy - hole], [hx - hole, hy + hole], [hx + hole, hy + hole], [hx + hole, hy - hole]]
        parts = [
            {
                "outer": [[round(x, 2), round(y, 2)] for x, y in outer],
                "holes": [[[round(x, 2), round(y, 2)] for x, y in inner]],
            }
        ]
    else:  # wire: a thin curve, painted with a brush
        brush = PILImage.new("L", (width, height), 0)
        start = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        heading, points = rng.uniform(0, 2 * np.pi), [tuple(start)]
        for _ in range(int(rng.integers(4, 9))):
            heading += rng.uniform(-0.6, 0.6)
            start = np.clip(start + size / 3 * np.array([np.cos(heading), np.sin(heading)]), 0, [width - 1, height - 1])
            points.append(tuple(start))
        ImageDraw.Draw(brush).line(points, fill=255, width=int(rng.integers(3, 8)), joint="curve")
        covered = np.asarray(brush) > 0
        return "mask", {"rle": encode_mask(covered)}, covered
    return "polygon", {"parts": parts}, _polygon_mask(parts, width, height)


def scene(seed: int, width: int = 640, height: int = 480) -> tuple[bytes, list[tuple]]:
    """PNG bytes and the shapes in drawing order: (label index, kind, geometry)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 190, 3)
    image = PILImage.new("RGB", (width, height), tuple(int(v) for v in base))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(10, 120)
        colour = tuple(int(v) for v in np.clip(base + rng.integers(-50, 50, 3), 0, 255))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(6))
    pixels = np.clip(np.asarray(image).astype(int) + rng.integers(-18, 18, (height, width, 3)), 0, 255)
    shapes = []
    for _ in range(int(rng.integers(3, 8))):
        label = int(rng.integers(len(KINDS)))
        kind, geometry, covered = _object(KINDS[label], rng, width, height)
        if not covered.any():
            continue
        colour = np.clip(np.array(HUES[KINDS[label]]) + rng.integers(-35, 35, 3), 0, 255)
        shade = rng.integers(-12, 12, (height, width, 1))
        pixels[covered] = np.clip(colour + shade[covered], 0, 255)
        shapes.append((label, kind, geometry))
    out = io.BytesIO()
    PILImage.fromarray(pixels.astype(np.uint8)).save(out, "PNG")
    return out.getvalue(), shapes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--valid", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--image-size", type=int, default=None, help="default: the parameter's")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--task", choices=("semantic", "instance"), default="semantic")
    parser.add_argument("--save", help="instance: where to save the best checkpoint, for looking into it later")
    args = parser.parse_args()

    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from training.ml import runtime, segmentation
    from training.parameters import SEMANTIC_SEGMENTATION

    defaults = {p.name: p.default for p in SEMANTIC_SEGMENTATION}
    files: dict[str, bytes] = {}

    def samples(seeds) -> list:
        out = []
        for seed in seeds:
            files[f"scene{seed}"], shapes = scene(seed)
            out.append(segmentation.MaskSample(f"scene{seed}", tuple(shapes)))
        return out

    train = samples(range(args.train))
    valid = samples(range(10_000, 10_000 + args.valid))
    if args.task == "instance":
        return instance_bench(args, train, valid, files)
    config = segmentation.SegmenterConfig(
        labels=KINDS,
        image_size=args.image_size or defaults["image_size"],
        epochs=args.epochs or defaults["epochs"],
        batch_size=defaults["batch_size"],
        learning_rate=defaults["learning_rate"],
        time_limit_seconds=args.minutes * 60,
        patience_seconds=defaults["patience_minutes"] * 60,
    )
    device = runtime.device_choose()
    started = time.perf_counter()
    result = segmentation.train(
        config,
        train,
        valid,
        hooks=segmentation.Hooks(log=lambda line: print(line, flush=True)),
        read=files.__getitem__,
        device=device,
    )
    seconds = time.perf_counter() - started
    from training.ml.segmentation_metrics import scores

    best = scores(result.scored["best"]["valid"].total, KINDS)

    segmenter = segmentation.Segmenter(result.checkpoints["best"], device=device)
    probe = [scene(20_000 + i)[0] for i in range(20)]
    segmenter.predict(probe[:1])
    times = []
    for data in probe:
        begun = time.perf_counter()
        segmenter.predict([data])
        times.append(time.perf_counter() - begun)

    print(f"\nMachine: {machine()}, {runtime.describe(device)}")
    print(
        table(
            [
                "images (train/valid)",
                "size",
                "epochs run",
                "stopped by",
                "train s",
                "best epoch",
                "mIoU",
                "label mIoU",
                "pixel acc.",
            ],
            [
                [
                    f"{len(train)}/{len(valid)}",
                    f"{config.image_size}px",
                    len(result.history),
                    result.stopped_by,
                    f"{seconds:.0f}",
                    result.best_epoch,
                    f"{best['miou']:.3f}",
                    f"{best['label_miou']:.3f}",
                    f"{best['pixel_accuracy']:.3f}",
                ]
            ],
        )
    )
    print(
        table(
            ["class", "IoU (validation)"],
            [[row["label"], "n/a" if row["iou"] is None else f"{row['iou']:.3f}"] for row in best["per_class"]],
        )
    )
    print(
        table(
            ["predict 640x480 PNG (label map at full size)", "p50 ms", "p95 ms"],
            [["Segmenter.predict", f"{percentile(times, 50) * 1000:.0f}", f"{percentile(times, 95) * 1000:.0f}"]],
        )
    )


def instance_bench(args, train: list, valid: list, files: dict[str, bytes]) -> None:
    """The default instance segmentation model: validation mask mAP from COCOeval (segm), per label, and the time
    to predict the instances of a 640x480 image."""
    from training.ml import instances, runtime
    from training.ml.detection_metrics import coco_map
    from training.parameters import INSTANCE_SEGMENTATION

    defaults = {p.name: p.default for p in INSTANCE_SEGMENTATION}
    config = instances.InstanceConfig(
        labels=KINDS,
        model_size=defaults["model_size"],
        image_size=args.image_size or defaults["image_size"],
        epochs=args.epochs or defaults["epochs"],
        batch_size=defaults["batch_size"],
        learning_rate=defaults["learning_rate"],
        time_limit_seconds=args.minutes * 60,
        patience_seconds=defaults["patience_minutes"] * 60,
    )
    device = runtime.device_choose()
    started = time.perf_counter()
    result = instances.train(
        config,
        train,
        valid,
        hooks=instances.Hooks(log=lambda line: print(line, flush=True)),
        read=files.__getitem__,
        device=device,
    )
    seconds = time.perf_counter() - started
    truth = [instances.truth_instances(s.shapes, 480, 640) for s in valid]
    predicted = result.predictions["best"]["valid"]

    def scored(label: int | None, *, boxes: bool = False) -> dict:
        def keep(rows):
            return np.ones(len(rows), bool) if label is None else np.asarray(rows)[:, 4] == label if len(rows) else []

        truth_rows = [rows[keep(rows)] for rows, _, _ in truth]
        truth_masks = [[m for m, k in zip(masks, keep(rows), strict=True) if k] for rows, masks, _ in truth]
        rows = [p.rows[keep(p.rows)] for p in predicted]
        masks = [[m for m, k in zip(p.masks, keep(p.rows), strict=True) if k] for p in predicted]
        if boxes:  # the same objects scored by their boxes: is a miss the detector's or the mask's?
            return coco_map(truth_rows, rows, len(KINDS))
        return coco_map(truth_rows, rows, len(KINDS), masks=(truth_masks, masks))

    overall = scored(None)
    segmenter = instances.InstanceSegmenter(result.checkpoints["best"], device=device)
    probe = [scene(20_000 + i)[0] for i in range(20)]
    segmenter.predict(probe[:1], score=0.3)
    times = []
    for data in probe:
        begun = time.perf_counter()
        segmenter.predict([data], score=0.3)
        times.append(time.perf_counter() - begun)

    print(f"\nMachine: {machine()}, {runtime.describe(device)}")
    print(
        table(
            [
                "images (train/valid)",
                "size",
                "epochs run",
                "stopped by",
                "train s",
                "best epoch",
                "mask mAP@0.5",
                "mask mAP",
            ],
            [
                [
                    f"{len(train)}/{len(valid)}",
                    f"{config.size}px",
                    len(result.history),
                    result.stopped_by,
                    f"{seconds:.0f}",
                    result.best_epoch,
                    f"{overall['map50']:.3f}",
                    f"{overall['map']:.3f}",
                ]
            ],
        )
    )
    rows = []
    for index, name in enumerate(KINDS):
        found, boxed = scored(index), scored(index, boxes=True)
        rows.append([name, *(f"{s['map50']:.3f}" if s["map50"] is not None else "n/a" for s in (found, boxed))])
    print(table(["label", "mask AP@0.5 (validation)", "box AP@0.5"], rows))
    if args.save:
        import torch

        torch.save(result.checkpoints["best"], args.save)
    print(
        table(
            ["predict 640x480 PNG (instances, masks at full size)", "p50 ms", "p95 ms"],
            [
                [
                    "InstanceSegmenter.predict",
                    f"{percentile(times, 50) * 1000:.0f}",
                    f"{percentile(times, 95) * 1000:.0f}",
                ]
            ],
        )
    )


if __name__ == "__main__":
    main()
