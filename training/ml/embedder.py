"""Image embeddings for similarity search: EfficientNet-Lite0's pooled 1280-d ImageNet features, unit length.

No labels or training needed: the pretrained features already place a crop of a cat near the cat
and far from other photos (cosine 0.96 against 0.12-0.17, DESIGN.md). Plain torch, no Django.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# torch is imported where it is used: Django models read DIMENSIONS from here without loading it.

EMBEDDER_NAME = "tf_efficientnet_lite0-imagenet-224"
DIMENSIONS = 1280
IMAGE_SIZE = 224
BATCH = 32  # fastest on the CPU (see classification.EVAL_BATCH)


class Embedder:
    def __init__(self, device=None):
        import torch

        from training.ml import runtime
        from training.ml.backbones import DEFAULT_BACKBONE, create_backbone, normalization

        self.device = device or runtime.device_choose()
        self.mean, self.std = normalization(DEFAULT_BACKBONE)
        model = create_backbone(DEFAULT_BACKBONE, pretrained=True, num_classes=0)
        self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()

    def embed(self, images: Sequence[bytes]) -> np.ndarray:
        """N x 1280 float32 rows of unit length, so a dot product is the cosine similarity."""
        import torch

        from training.ml import runtime
        from training.ml.images import decode_rgb, to_tensor

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), BATCH):
                pixels = [decode_rgb(data, IMAGE_SIZE) for data in images[start : start + BATCH]]
                with runtime.autocast(self.device):
                    features = self.model(to_tensor(pixels, self.mean, self.std).to(self.device)).float()
                out.append(torch.nn.functional.normalize(features, dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, DIMENSIONS), np.float32)


def top_pairs(vectors: np.ndarray, *, threshold: float, limit: int, block: int = 1024, progress=None) -> list[tuple]:
    """The `limit` most similar pairs (i < j) with cosine >= threshold, best first, by blocked matrix products.

    Each block of rows is multiplied with itself and every later row, so the whole N x N matrix is
    never held; only pairs above the threshold are kept, and only the best `limit` of those.
    """
    import torch

    matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    count = len(matrix)
    found_i, found_j, found_s = [], [], []
    kept = 0
    for start in range(0, count, block):
        rows = matrix[start : start + block]
        scores = rows @ matrix[start:].T  # this block against itself and every later row
        # Within the block, keep i < j only (the diagonal is each image with itself).
        square = scores[:, : len(rows)]
        square.masked_fill_(torch.ones_like(square, dtype=torch.bool).tril(), -2.0)
        hits = (scores >= threshold).nonzero()
        if len(hits):
            values = scores[hits[:, 0], hits[:, 1]]
            found_i.append(hits[:, 0] + start)
            found_j.append(hits[:, 1] + start)
            found_s.append(values)
            kept += len(values)
            if kept > 4 * limit:  # keep memory bounded: only the best `limit` can be answered
                found_i, found_j, found_s = _best(found_i, found_j, found_s, limit)
                kept = len(found_s[0])
        if progress:
            progress(min(1.0, (start + len(rows)) / count))
    if not found_s:
        return []
    (i,), (j,), (s,) = _best(found_i, found_j, found_s, limit)
    return [(int(a), int(b), float(c)) for a, b, c in zip(i.tolist(), j.tolist(), s.tolist(), strict=True)]


def _best(found_i, found_j, found_s, limit):
    import torch

    i, j, s = torch.cat(found_i), torch.cat(found_j), torch.cat(found_s)
    order = torch.argsort(s, descending=True, stable=True)[:limit]
    return [i[order]], [j[order]], [s[order]]
