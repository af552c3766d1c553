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
GUIDE_RADIUS = 4  # the guided filter's window: 9 x 9 pixels at the network's size
GUIDE_EPS = 1e-4  # its regularisation: how strong an edge in the image (in [0, 1] per channel) must be to be kept


def segment(
    logits: torch.Tensor, height: int, width: int, guide: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """1 x C x h x w logits of one image (its padding cut off) -> a height x width label map (0 background, i + 1
    label i) and, per class, the mean probability over the pixels given that class at the network's size.

    With a `guide` (the image, H x W x 3 uint8, upright, at most height x width), the probabilities are refined by
    its edges (guided_probabilities) before the argmax. Without, the logits are enlarged to the original size
    before the argmax, for smooth edges, while that stays within BILINEAR_MAX_VALUES; a larger image gets the label
    map of the network's size, enlarged by nearest neighbour."""
    classes = logits.shape[1]
    probabilities = logits.float().softmax(dim=1).cpu()
    probability, small = _class_max(probabilities[0])
    small = small.to(torch.uint8).numpy()
    sums = np.bincount(small.ravel(), weights=probability.numpy().ravel(), minlength=classes)
    confidence = np.divide(sums, np.maximum(np.bincount(small.ravel(), minlength=classes), 1))
    if guide is not None:
        return _guided_labels(probabilities, guide, height, width), confidence
    if classes * width * height <= BILINEAR_MAX_VALUES:
        enlarged = functional.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        labels = _class_max(enlarged[0])[1].to(torch.uint8).cpu().numpy()
    else:
        labels = np.asarray(PILImage.fromarray(small).resize((width, height), PILImage.Resampling.NEAREST))
    return labels, confidence


def _guided_labels(probabilities: torch.Tensor, guide: np.ndarray, height: int, width: int) -> np.ndarray:
    """The height x width label map of 1 x C x h x w probabilities refined by `guide`, a few classes at a time so
    that memory does not grow with their number (each pixel keeps the first class of its highest refined
    probability, as an argmax). Refined at the guide's size, they are enlarged bilinearly to height x width while 8
    planes of that size stay within BILINEAR_MAX_VALUES; a larger image gets the label map of the guide's size,
    enlarged by nearest neighbour."""
    image, small = _guide_tensors(guide, probabilities.shape[-2:])
    guide_pixels = guide.shape[0] * guide.shape[1]
    enlarge = guide.shape[:2] != (height, width) and 8 * height * width <= BILINEAR_MAX_VALUES
    chunk = max(1, BILINEAR_MAX_VALUES // (8 * max(guide_pixels, height * width if enlarge else 0)))
    best = labels = None
    for start in range(0, probabilities.shape[1], chunk):
        refined = guided_probabilities(probabilities[:, start : start + chunk], image, small)
        if enlarge:
            refined = functional.interpolate(refined, size=(height, width), mode="bilinear", align_corners=False)
        value, index = _class_max(refined[0])
        if best is None:
            best, labels = value, index
        else:
            better = value > best
            best, labels = torch.where(better, value, best), torch.where(better, index + start, labels)
    labels = labels.to(torch.uint8).numpy()
    if labels.shape != (height, width):
        labels = np.asarray(PILImage.fromarray(labels).resize((width, height), PILImage.Resampling.NEAREST))
    return labels


def _guide_tensors(guide: np.ndarray, size) -> tuple[torch.Tensor, torch.Tensor]:
    """The guide as 1 x 3 x H x W floats in [0, 1], and resized to the network's `size`."""
    image = torch.from_numpy(np.require(guide, requirements=("C", "W"))).permute(2, 0, 1)[None].float().div_(255)
    small = functional.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return image, small


def guided_probabilities(probabilities: torch.Tensor, image: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """1 x C x h x w class probabilities at the network's size -> 1 x C x H x W at the guide's (`image`, and
    `small`, the guide at the network's size: _guide_tensors): the fast guided filter (He and Sun, 2015). Within
    each window of the network's size each class's probability is fitted as a linear function of the guide's
    colour, and those functions, enlarged, are applied to the guide at its own size. So a mask's edge moves to the
    image's edge nearby, and a thin structure (a wire two pixels wide at the network's size, a blur across a few
    pixels of the logits) is drawn as wide as it is painted."""
    coefficients = _guided_coefficients(small, probabilities, GUIDE_RADIUS, GUIDE_EPS)
    coefficients = functional.interpolate(coefficients, size=image.shape[-2:], mode="bilinear", align_corners=False)
    red, green, blue, offset = coefficients.split(probabilities.shape[1], dim=1)
    return red * image[:, 0:1] + green * image[:, 1:2] + blue * image[:, 2:3] + offset


def _guided_coefficients(image: torch.Tensor, p: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """The guided filter's (He et al., 2010, with a colour guide) per-pixel linear coefficients of `p` (1 x C x h x
    w) in the colour of `image` (1 x 3 x h x w in [0, 1]), averaged over each window: 1 x 4C x h x w, the red,
    green and blue factors of every class, then the offsets. The 3 x 3 colour covariance is inverted in closed form
    (its adjugate over its determinant), pixel by pixel."""
    classes = p.shape[1]
    r, g, b = image[:, 0:1], image[:, 1:2], image[:, 2:3]
    products = torch.cat([r * r, r * g, r * b, g * g, g * b, b * b, r * p, g * p, b * p], dim=1)
    means = _box_mean(torch.cat([image, p, products], dim=1), radius)
    mr, mg, mb, mp = means[:, 0:1], means[:, 1:2], means[:, 2:3], means[:, 3 : 3 + classes]
    rr, rg, rb, gg, gb, bb = means[:, 3 + classes : 9 + classes].split(1, dim=1)
    rp, gp, bp = means[:, 9 + classes :].split(classes, dim=1)
    vrr, vrg, vrb = rr - mr * mr + eps, rg - mr * mg, rb - mr * mb
    vgg, vgb, vbb = gg - mg * mg + eps, gb - mg * mb, bb - mb * mb + eps
    cr, cg, cb = rp - mr * mp, gp - mg * mp, bp - mb * mp
    irr, irg, irb = vgg * vbb - vgb * vgb, vgb * vrb - vrg * vbb, vrg * vgb - vgg * vrb
    igg, igb, ibb = vrr * vbb - vrb * vrb, vrb * vrg - vrr * vgb, vrr * vgg - vrg * vrg
    determinant = vrr * irr + vrg * irg + vrb * irb
    ar = (irr * cr + irg * cg + irb * cb) / determinant
    ag = (irg * cr + igg * cg + igb * cb) / determinant
    ab = (irb * cr + igb * cg + ibb * cb) / determinant
    return _box_mean(torch.cat([ar, ag, ab, mp - ar * mr - ag * mg - ab * mb], dim=1), radius)


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean over each (2 radius + 1)-pixel square window, clipped at the borders (avg_pool2d's
    count_include_pad=False), from running sums: its cost does not grow with the window."""
    height, width = x.shape[-2:]
    count = _window_sums(_window_sums(x.new_ones(1, 1, height, width), radius, 2), radius, 3)
    return _window_sums(_window_sums(x, radius, 2), radius, 3) / count


def _window_sums(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Along `dim`, each position's sum over the positions within `radius` of it (those inside the tensor)."""
    size = x.shape[dim]
    running = x.cumsum(dim)
    before = list(x.shape)
    before[dim] = radius + 1
    after = list(x.shape)
    after[dim] = radius
    running = torch.cat([x.new_zeros(before), running, running.narrow(dim, size - 1, 1).expand(after)], dim)
    return running.narrow(dim, 2 * radius + 1, size) - running.narrow(dim, 0, size)


def _class_max(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """C x H x W -> each pixel's highest score and its class (the first, on a tie), as max(dim=0) gives them, but
    over channels-last memory: a reduction across the planes is an order of magnitude slower on a CPU."""
    return scores.permute(1, 2, 0).contiguous().max(dim=-1)


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
