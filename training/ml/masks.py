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

BILINEAR_MAX_VALUES = 48_000_000  # classes x pixels of logits enlarged at once (192 MB of floats); beyond, nearest


def segment(logits: torch.Tensor, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """1 x C x h x w logits of one image (its padding cut off) -> a height x width label map (0 background, i + 1
    label i) and, per class, the mean probability over the pixels given that class at the network's size.

    The logits are enlarged to the original size before the argmax, for smooth edges, while that stays within
    BILINEAR_MAX_VALUES; a larger image gets the label map of the network's size, enlarged by nearest neighbour."""
    classes = logits.shape[1]
    probability, small = logits.softmax(dim=1)[0].max(dim=0)
    small = small.to(torch.uint8).cpu().numpy()
    sums = np.bincount(small.ravel(), weights=probability.float().cpu().numpy().ravel(), minlength=classes)
    confidence = np.divide(sums, np.maximum(np.bincount(small.ravel(), minlength=classes), 1))
    if classes * width * height <= BILINEAR_MAX_VALUES:
        enlarged = functional.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        labels = enlarged[0].argmax(dim=0).to(torch.uint8).cpu().numpy()
    else:
        labels = np.asarray(PILImage.fromarray(small).resize((width, height), PILImage.Resampling.NEAREST))
    return labels, confidence


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
