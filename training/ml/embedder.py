"""Image embeddings for similarity search: EfficientNet-Lite0's pooled 1280-d ImageNet features, unit length.

No labels or training needed: the pretrained features already place a crop of a cat near the cat
and far from other photos (cosine 0.96 against 0.12-0.17, DESIGN.md). Plain torch, no Django.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# torch is imported where it is used: Django models read DIMENSIONS from here without loading it.

EMBEDDER_NAME = "tf_efficientnet_lite0-imagenet-224"
PRECISION = "float32"  # as stored: pgvector's vector type; a halfvec index would record "float16"
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
    never held. Once `limit` pairs are in hand, only scores above the worst of them can enter, so
    later blocks yield few hits however low the threshold: memory stays at one block of scores.
    """
    import torch

    matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    count = len(matrix)
    best_s = torch.empty(0)
    best_i = torch.empty(0, dtype=torch.long)
    best_j = torch.empty(0, dtype=torch.long)
    floor = threshold
    for start in range(0, count, block):
        rows = matrix[start : start + block]
        scores = rows @ matrix[start:].T  # this block against itself and every later row
        keep = scores >= floor
        keep[:, : len(rows)].triu_(diagonal=1)  # within the block, i < j only (not each image with itself)
        passing = int(keep.sum())
        if passing > limit:  # many hits (a low floor, early on): the block's best, without listing every hit
            values, flat = scores.masked_fill_(~keep, float("-inf")).view(-1).topk(limit)
            hits = torch.stack([flat // scores.shape[1], flat % scores.shape[1]], dim=1)
        elif passing:
            hits = keep.nonzero()
            values = scores[hits[:, 0], hits[:, 1]]
        if passing:
            best_s = torch.cat([best_s, values])
            best_i = torch.cat([best_i, hits[:, 0] + start])
            best_j = torch.cat([best_j, hits[:, 1] + start])
            if len(best_s) >= limit:
                best_s, chosen = best_s.topk(limit)
                best_i, best_j = best_i[chosen], best_j[chosen]
                floor = max(threshold, float(best_s[-1]))  # the worst pair kept: nothing below it can enter
        if progress:
            progress(min(1.0, (start + len(rows)) / count))
    order = torch.argsort(best_s, descending=True, stable=True)
    return [
        (int(i), int(j), float(v))
        for i, j, v in zip(best_i[order].tolist(), best_j[order].tolist(), best_s[order].tolist(), strict=True)
    ]
