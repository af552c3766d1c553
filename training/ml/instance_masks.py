"""An instance segmentation model's last steps, shared by Sightline and the offline bundle (shipped beside it as
sightline_instances.py), so that both answer the same instances: the detector's boxes selected from its dense
output, a 28 x 28 mask per box from the mask branch (RoIAlign over the pyramid, then the branch's network), pasted
into the image at its original size where the semantic head gives the box's label the pixel (its probabilities
refined by the image's own edges: masks.guided_probabilities), and the answer.

Needs torch, torchvision, numpy and pycocotools, and the detector's and the semantic model's last steps
(training.ml.boxes and training.ml.masks, shipped as sightline_boxes.py and sightline_masks.py); nothing else of
Sightline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional

from training.ml.boxes import boxes_select  # the bundle's copy imports sightline_boxes (training/bundles.py)
from training.ml.masks import segment  # and sightline_masks

POOLED = 14  # RoIAlign's output side; the mask branch doubles it to Mask R-CNN's 28
SAMPLING_RATIO = 2
MASK_THRESHOLD = 0.5  # of a pasted mask's probability, as Mask R-CNN
COARSE_THRESHOLD = 0.1  # of the pasted probability, where the semantic head draws the pixels: the coarse mask only
# tells instances apart (a thin structure's coarse probability is about the share of a 28 x 28 cell it covers, far
# under 0.5); 0.1 against 0.2 gave +0.003 to +0.010 mask mAP@0.5 on two models and two sets of scenes, since the
# semantic head's pixels are refined by the image's edges (docs/benchmarks.md)


@dataclass(frozen=True)
class Instances:
    """One image's instances: K x 6 rows (x, y, w, h in the upright original's pixels, label index, score), best
    first, and each row's mask there as COCO RLE (`size`, str `counts`)."""

    rows: np.ndarray
    masks: list[dict]


def roi_pool():
    """RoIAlign over the pyramid's three finest levels, each box at the level its size calls for (Mask R-CNN's)."""
    from torchvision.ops import MultiScaleRoIAlign

    return MultiScaleRoIAlign(["0", "1", "2"], POOLED, sampling_ratio=SAMPLING_RATIO)


def instances_found(
    outputs: tuple,
    mask_branch: Callable[[torch.Tensor], torch.Tensor],
    shapes: Sequence[tuple[int, int]],
    scales: Sequence[float],
    sizes: Sequence[tuple[int, int]],
    *,
    score: float,
    nms: float,
    guides: Sequence[np.ndarray | None] | None = None,
) -> list[Instances]:
    """A batch's network outputs (per level boxes and scores, the pyramid's three finest levels and the semantic
    logits, for images whose unpadded `shapes` are given at the network's size) -> each image's instances at its
    original size (`sizes`, height and width; `scales` from there to the network's). The semantic head's pixels are
    refined by each image's `guides` (images.upright_guide; masks.segment). A box whose mask keeps no pixel is
    dropped."""
    level_boxes, level_scores, pyramid, semantic = outputs
    device = semantic.device
    corners = [
        boxes_select([b[row] for b in level_boxes], [s[row] for s in level_scores], *shape, score=score, nms=nms)
        for row, shape in enumerate(shapes)
    ]
    probabilities = torch.zeros((0, 1, 1))
    if sum(len(c) for c in corners):
        boxes = [torch.from_numpy(c[:, :4]).to(device) for c in corners]
        batch_shape = (semantic.shape[-2], semantic.shape[-1])
        pooled = roi_pool()(dict(zip(("0", "1", "2"), pyramid, strict=True)), boxes, [batch_shape] * len(boxes))
        logits = mask_branch(pooled)
        labels = torch.from_numpy(np.concatenate([c[:, 4] for c in corners]).astype(np.int64)).to(device)
        probabilities = logits[torch.arange(len(labels), device=device), labels].sigmoid().float().cpu()
    out, offset = [], 0
    for row, found in enumerate(corners):
        height, width = sizes[row]
        inside = shapes[row]
        guide = guides[row] if guides is not None else None
        label_map, _ = segment(semantic[row : row + 1, :, : inside[0], : inside[1]], height, width, guide)
        rows, masks = [], []
        for k, box_row in enumerate(found):
            box = box_row[:4] / scales[row]
            mask = pasted(probabilities[offset + k], box, height, width, label_map == int(box_row[4]) + 1)
            if mask is None:
                continue
            x1, y1, x2, y2 = box.tolist()
            rows.append([x1, y1, x2 - x1, y2 - y1, box_row[4], box_row[5]])
            masks.append(mask)
        offset += len(found)
        out.append(Instances(np.asarray(rows, np.float32).reshape(-1, 6), masks))
    return out


def pasted(
    probability: torch.Tensor, box: np.ndarray, height: int, width: int, labelled: np.ndarray | None = None
) -> dict | None:
    """A 28 x 28 mask probability pasted into a height x width image at its box (corners) and cut at
    MASK_THRESHOLD, as COCO RLE; None when no pixel is kept. The numbers of torchvision's paste_masks_in_image
    (the mask padded by a pixel, the box grown to match, bilinear resizing), computed within the box only: pasting
    into a whole image per instance would cost a full image's pixels several times over.

    With `labelled` (height x width: the pixels the semantic head gives the instance's label), the mask is those
    pixels where the pasted probability reaches COARSE_THRESHOLD: the coarse mask only says which pixels belong to
    this instance."""
    from pycocotools import mask as coco_mask

    side = probability.shape[-1]
    padded = functional.pad(probability[None, None], (1, 1, 1, 1))
    scale = (side + 2) / side
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * scale
    x0, y0 = (int(v) for v in torch.tensor(centre - half, dtype=torch.float32).to(torch.int64))
    x1, y1 = (int(v) for v in torch.tensor(centre + half, dtype=torch.float32).to(torch.int64))
    w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
    resized = functional.interpolate(padded, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    left, right, top, bottom = max(x0, 0), min(x1 + 1, width), max(y0, 0), min(y1 + 1, height)
    if right <= left or bottom <= top:
        return None
    window = resized[top - y0 : bottom - y0, left - x0 : right - x0]
    if labelled is None:
        crop = (window >= MASK_THRESHOLD).numpy()
    else:
        crop = (window >= COARSE_THRESHOLD).numpy() & labelled[top:bottom, left:right]
    if not crop.any():
        return None
    full = np.zeros((height, width), np.uint8, order="F")
    full[top:bottom, left:right] = crop
    rle = coco_mask.encode(full)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def instances_answer(
    found: Instances,
    labels: Sequence[str],
    thresholds: Sequence[float],
    polygonize: Callable[[dict], dict] | None = None,
) -> list[dict]:
    """An image's instances that reach their label's threshold, as the predict endpoint answers them: label, score,
    box, area, mask as COCO RLE and, given `polygonize` (Sightline's annotations.geometry.polygonize, shipped as
    sightline_geometry.py), the mask traced as polygons with their holes."""
    from pycocotools import mask as coco_mask

    out = []
    for (x, y, w, h, label, score), rle in zip(found.rows, found.masks, strict=True):
        if score < thresholds[int(label)]:
            continue
        traced = {}
        if polygonize is not None:
            try:
                traced["polygons"] = polygonize({"rle": rle})
            except ValueError:  # GeometryError, for an empty mask only, which is never answered
                traced["polygons"] = {"parts": []}
        out.append(
            {
                "label": labels[int(label)],
                "score": round(float(score), 6),
                "box": {
                    "x": round(float(x), 2),
                    "y": round(float(y), 2),
                    "width": round(float(w), 2),
                    "height": round(float(h), 2),
                },
                "area": int(coco_mask.area(rle)),
                "rle": rle,
                **traced,
            }
        )
    return out
