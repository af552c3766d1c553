"""GrabCut (OpenCV) as the smart tool without weights: scribbles are definite seeds inside the work area.

The work area is cut out, with a margin of the image around it that is taken as definite
background, and scaled down so its longer side is at most `max_side` pixels: GrabCut's cost
grows with the pixel count, and a 512-pixel area answers in a few hundred milliseconds. Inside
the work area every pixel starts as "probably foreground"; the person's marks override that.
"""

from __future__ import annotations

import cv2
import numpy as np

from annotations.assist.prompts import Prompt, PromptError

MARGIN = 0.1  # of the work area's size, on each side, as background the model learns from


def grabcut_segment(rgb: np.ndarray, prompt: Prompt, *, max_side: int = 512, iterations: int = 2) -> np.ndarray:
    """A boolean mask the size of `rgb` (HxWx3 uint8), true on the foreground. The margin is definite
    background, so only the smooth scaling back can reach a pixel past the work area; the caller bounds it."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = prompt.box
    mx, my = round(prompt.width * MARGIN), round(prompt.height * MARGIN)
    cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(width, x1 + mx), min(height, y1 + my)
    scale = min(1.0, max_side / max(cx1 - cx0, cy1 - cy0))
    size = (max(1, round((cx1 - cx0) * scale)), max(1, round((cy1 - cy0) * scale)))
    crop = rgb[cy0:cy1, cx0:cx1]
    small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if scale < 1 else np.ascontiguousarray(crop)

    def local(points: np.ndarray) -> np.ndarray:
        return np.round((points - (cx0, cy0)) * scale).astype(np.int32)

    seeds = np.full(small.shape[:2], cv2.GC_BGD, np.uint8)
    inner = local(np.array([[x0, y0], [x1, y1]], dtype=np.float64))
    seeds[inner[0, 1] : inner[1, 1], inner[0, 0] : inner[1, 0]] = cv2.GC_PR_FGD
    if not (seeds == cv2.GC_BGD).any():
        # The work area is the whole image: its border is the background guess, not a certainty.
        seeds[[0, -1], :] = cv2.GC_PR_BGD
        seeds[:, [0, -1]] = cv2.GC_PR_BGD
    brush = max(1, round(max(size) / 100))
    for strokes, value in ((prompt.background, cv2.GC_BGD), (prompt.foreground, cv2.GC_FGD)):
        for stroke in strokes:
            cv2.polylines(seeds, [local(stroke)], False, int(value), thickness=brush)
            for x, y in local(stroke):
                cv2.circle(seeds, (int(x), int(y)), brush, int(value), -1)
    if not np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        raise PromptError("Nothing in the work area can be foreground: mark some foreground.")

    background_model, foreground_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(small, seeds, None, background_model, foreground_model, iterations, cv2.GC_INIT_WITH_MASK)
    chosen = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    if scale < 1:
        # Scaled back smoothly and cut at one half, so edges are not blocky at full resolution.
        chosen = cv2.resize(chosen, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
    mask = np.zeros((height, width), bool)
    mask[cy0:cy1, cx0:cx1] = chosen >= 0.5
    return mask
