"""A detector's last steps, shared by Sightline and the offline bundle (shipped beside it as sightline_boxes.py), so
that both answer the same boxes: the network's input from decoded pixels, and the boxes kept from its dense output.

Needs torch, torchvision and numpy, and nothing of Sightline. The selection is torchvision FCOS's own
(`FCOS.postprocess_detections`): per pyramid level the top candidates above the score, then non-maximum suppression
per label, at most `max_detections` boxes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

STRIDE = 32  # inputs are padded to a multiple of the coarsest backbone stride, as torchvision's detection transform
MIN_SIDE = 5 * STRIDE  # and to at least this: the coarsest level (stride 128) then has 2 cells, as the export assumes
TOPK_CANDIDATES = 1000  # per level, as FCOS
MAX_DETECTIONS = 100  # per image, as COCO's maxDets


def network_input(pixels: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Images of one padded shape (HxWx3 uint8) -> Nx3xH'xW' float, normalised, then padded with zeros at the bottom
    and right to multiples of STRIDE (as torchvision's GeneralizedRCNNTransform batches them) of at least MIN_SIDE."""
    batch = torch.zeros((len(pixels), 3, *padded_shape(pixels[0])))
    mean_t, std_t = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    for index, image in enumerate(pixels):
        h, w = image.shape[:2]
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
        batch[index, :, :h, :w] = (tensor - mean_t) / std_t
    return batch


def padded_shape(pixels: np.ndarray) -> tuple[int, int]:
    """The input size network_input gives an image: images of one padded shape can share a batch."""
    height, width = pixels.shape[:2]
    return max(MIN_SIDE, -(-height // STRIDE) * STRIDE), max(MIN_SIDE, -(-width // STRIDE) * STRIDE)


def boxes_select(
    level_boxes: Sequence[torch.Tensor],
    level_scores: Sequence[torch.Tensor],
    height: int,
    width: int,
    *,
    score: float,
    nms: float,
    max_detections: int = MAX_DETECTIONS,
) -> np.ndarray:
    """One image's dense output (per level: A x 4 corner boxes, A x C scores) -> K x 6 rows of x1, y1, x2, y2, label
    index and score, best first, clipped to the height x width of the image inside the padding."""
    from torchvision.ops import boxes as box_ops

    kept_boxes, kept_scores, kept_labels = [], [], []
    for boxes, scores in zip(level_boxes, level_scores, strict=True):
        classes = scores.shape[-1]
        flat = scores.flatten()
        keep = flat > score
        candidates = torch.where(keep)[0]
        top, order = flat[keep].topk(min(TOPK_CANDIDATES, candidates.numel()))
        candidates = candidates[order]
        chosen = boxes[torch.div(candidates, classes, rounding_mode="floor")]
        kept_boxes.append(box_ops.clip_boxes_to_image(chosen, (height, width)))
        kept_scores.append(top)
        kept_labels.append(candidates % classes)
    boxes, scores, labels = torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels)
    keep = box_ops.batched_nms(boxes, scores, labels, nms)[:max_detections]
    return torch.cat([boxes[keep], labels[keep, None].float(), scores[keep, None]], dim=1).float().cpu().numpy()


def rows_xywh(corners: np.ndarray, scale: float) -> np.ndarray:
    """K x 6 rows of corners at the network's size -> x, y, width, height in original pixels, label, score."""
    if not len(corners):
        return np.zeros((0, 6), np.float32)
    boxes = corners[:, :4] / scale
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2], corners[:, 4:]], axis=1).astype(np.float32)


def boxes_answer(rows: np.ndarray, labels: Sequence[str], thresholds: Sequence[float]) -> list[dict]:
    """x, y, w, h, label, score rows -> the predict endpoint's boxes: those that reach their label's threshold."""
    return [
        {
            "label": labels[int(label)],
            "score": round(float(score), 6),
            "x": round(float(x), 2),
            "y": round(float(y), 2),
            "width": round(float(w), 2),
            "height": round(float(h), 2),
        }
        for x, y, w, h, label, score in rows
        if score >= thresholds[int(label)]
    ]
