"""Which descriptors tell a near-duplicate from its neighbours: photos against 8x8 handwritten digits.

The same originals and copies as the similarity quality proof (`tests/similarity/near_duplicates.py`):
the 18 scikit-image sample photos and the first `--digits` scikit-learn digits, each with one copy
(crop 80-95% of each side, resize, rotate up to 5 degrees, re-light, JPEG 50). For each descriptor
and each group: whether every copy's best match among all other images is its original (1vN top-1),
and the best NvN the descriptor allows at any single threshold: the threshold where
min(precision, recall) over the group's pairs is highest. Descriptors:

- efficientnet: the product's embedder (EfficientNet-Lite0, pooled 1280-d ImageNet features).
- thumbnail: the grey image at 16x16, zero mean, cosine.
- multi-crop: thumbnails at 12x12 of 25 crops of each image (80-95% of each side on a 5x5 grid); a
  pair scores the best of full view against full view and any crop of one against the other.
- template: 32x32 thumbnails, the central 80% of one found in the other at five scales by normalized
  cross-correlation (OpenCV matchTemplate), the better of both ways: an alignment search per pair.

A second table applies one transform at a time to the digits and scores them with the embedder.

Run: .venv/bin/python bench/near_duplicates.py [--digits 100]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from harness import machine, table


def grey(data: bytes) -> np.ndarray:
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as opened:
        return np.asarray(opened.convert("L"), np.float32)


def centred_unit(rows: np.ndarray) -> np.ndarray:
    rows = rows - rows.mean(axis=-1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-9)


def thumbnail(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA).ravel()


def crops(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    height, width = image.shape
    out = []
    for keep in (0.78, 0.82, 0.86, 0.90, 0.94):
        crop_h, crop_w = height * keep, width * keep
        for fy in np.linspace(0, 1, 5):
            for fx in np.linspace(0, 1, 5):
                top, left = fy * (height - crop_h), fx * (width - crop_w)
                warp = np.float32([[side / crop_w, 0, -left * side / crop_w], [0, side / crop_h, -top * side / crop_h]])
                out.append(cv2.warpAffine(image, warp, (side, side), flags=cv2.INTER_AREA).ravel())
    return np.array(out)


def template_score(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    best = -1.0
    for image, other in ((a, b), (b, a)):
        inner = other[3:-3, 3:-3]
        for keep in (0.8, 0.85, 0.9, 0.95, 1.0):
            side = int(round(inner.shape[0] * keep))
            found = cv2.matchTemplate(
                image, cv2.resize(inner, (side, side), interpolation=cv2.INTER_AREA), cv2.TM_CCOEFF_NORMED
            )
            best = max(best, float(found.max()))
    return best


def scores_of(name: str, images: list[bytes]) -> np.ndarray:
    """All-pairs similarity, one row per image."""
    if name == "efficientnet":
        from similarity.services import embedder

        vectors = embedder().embed(images)
        return vectors @ vectors.T
    greys = [grey(data) for data in images]
    if name == "thumbnail":
        vectors = centred_unit(np.array([thumbnail(g, 16) for g in greys], np.float64))
        return vectors @ vectors.T
    if name == "multi-crop":
        full = centred_unit(np.array([thumbnail(g, 12) for g in greys], np.float64))
        parts = centred_unit(np.array([crops(g, 12) for g in greys], np.float64))
        crop_vs_full = np.einsum("ikd,jd->ijk", parts, full).max(axis=-1)
        return np.maximum(full @ full.T, np.maximum(crop_vs_full, crop_vs_full.T))
    small = [thumbnail(g, 32).reshape(32, 32) for g in greys]
    scores = np.eye(len(small))
    for i in range(len(small)):
        for j in range(i + 1, len(small)):
            scores[i, j] = scores[j, i] = template_score(small[i], small[j])
    return scores


def grade(scores: np.ndarray, members: np.ndarray) -> tuple[float, float, float]:
    """(1vN top-1, best min(precision, recall), its threshold) for one group; copies follow originals."""
    n = len(scores) // 2
    scores = scores.copy()
    np.fill_diagonal(scores, -np.inf)
    top1 = float(np.mean([scores[n + i].argmax() == i for i in range(n) if members[i]]))
    rows, cols = np.triu_indices(len(scores), 1)
    inside = members[rows % n] & members[cols % n]
    values, truth = scores[rows, cols][inside], (cols - rows == n)[inside]
    best = (0.0, 0.0)
    for threshold in np.unique(values[truth]):  # every threshold that changes recall
        found = values >= threshold
        hits = int((found & truth).sum())
        best = max(best, (min(hits / found.sum(), hits / truth.sum()), float(threshold)))
    return top1, *best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--digits", type=int, default=100)
    args = parser.parse_args()
    import django

    django.setup()
    from tests.similarity.near_duplicates import STEPS, near_duplicate, originals

    source = originals(args.digits)
    names = np.array([name for name, _ in source])
    digits = np.char.startswith(names, "digit")
    images = [data for _, data in source]
    copies = [near_duplicate(data, i) for i, data in enumerate(images)]
    rows = []
    for name in ("efficientnet", "thumbnail", "multi-crop", "template"):
        started = time.perf_counter()
        scores = scores_of(name, images + copies)
        seconds = time.perf_counter() - started
        for group, members in (("photos", ~digits), ("digits", digits)):
            top1, best, threshold = grade(scores, members)
            rows.append([name, group, f"{top1:.3f}", f"{best:.3f}", f"{threshold:.3f}", f"{seconds:.1f} s"])
    alone = []
    for step in STEPS:
        one = [near_duplicate(data, i, steps=(step,)) for i, data in enumerate(images)]
        top1, best, threshold = grade(scores_of("efficientnet", images + one), digits)
        alone.append([step, f"{top1:.3f}", f"{best:.3f}", f"{threshold:.3f}"])
    print(f"machine: {machine()}")
    print(table(["descriptor", "group", "1vN top-1", "best NvN min(P, R)", "at threshold", "all pairs"], rows))
    print(table(["digits, one transform", "1vN top-1", "best NvN min(P, R)", "at threshold"], alone))


if __name__ == "__main__":
    main()
