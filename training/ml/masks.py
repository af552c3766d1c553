"""A semantic segmentation model's last steps, shared by Sightline and the offline bundle (shipped beside it as
sightline_masks.py), so that both answer the same masks: logits to a label map at the original size, and one COCO
RLE mask per label from it.

Needs torch, numpy, Pillow and pycocotools, and nothing of Sightline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image as PILImage
from torch.nn import functional

BILINEAR_MAX_PIXELS = 16_000_000  # larger originals get the label map at the network's size, enlarged as is


def segment(logits: torch.Tensor, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """1 x C x h x w logits of one image (its padding cut off) -> a height x width label map (0 background, i + 1
    label i) and, per class, the mean probability over the pixels given that class."""
    if width * height <= BILINEAR_MAX_PIXELS:
        logits = functional.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    confidence, labels = logits.softmax(dim=1)[0].max(dim=0)
    labels, confidence = labels.to(torch.uint8).cpu().numpy(), confidence.float().cpu().numpy()
    if labels.shape != (height, width):
        labels = np.asarray(PILImage.fromarray(labels).resize((width, height), PILImage.Resampling.NEAREST))
        confidence = np.asarray(PILImage.fromarray(confidence).resize((width, height), PILImage.Resampling.NEAREST))
    classes = logits.shape[1]
    sums = np.bincount(labels.ravel(), weights=confidence.ravel(), minlength=classes)
    counts = np.bincount(labels.ravel(), minlength=classes)
    return labels, np.divide(sums, np.maximum(counts, 1))


def masks_answer(label_map: np.ndarray, confidence: np.ndarray, labels: Sequence[str]) -> list[dict]:
    """One mask per label that has any pixel, most confident first: label, score, area, box and COCO RLE
    ({"size": [height, width], "counts": str})."""
    from pycocotools import mask as coco_mask

    out = []
    for index, name in enumerate(labels):
        covered = label_map == index + 1
        if not covered.any():
            continue
        rle = coco_mask.encode(np.asfortranarray(covered.astype(np.uint8)))
        x, y, width, height = (float(v) for v in coco_mask.toBbox(rle))
        out.append(
            {
                "label": name,
                "score": round(float(confidence[index + 1]), 6),
                "area": int(covered.sum()),
                "box": {"x": x, "y": y, "width": width, "height": height},
                "rle": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
            }
        )
    return sorted(out, key=lambda row: -row["score"])
