"""Spec 004's ML Mode model: one network with a detection head and a segmentation head, each switched on or off.

With only one head on, it is the detector (detection.py) or the semantic segmentation model (segmentation.py). With
both, it is instances.BoxesAndPixels: FCOS over the backbone's feature pyramid learns boxes from the geometric shapes
(rectangles and polygons), and a semantic head over the same backbone learns every pixel's label from the painted
masks; one pass through the backbone feeds both, in training and in prediction.

An image the head has no paint on teaches the semantic head nothing (its boxes may cover objects that are painted
elsewhere), unless it has no object at all: then it is background. Validation scores both heads: COCO's box mAP@0.5
and the segmentation's mIoU, and the best epoch is the one with the highest mean of the two.

The checkpoint is a detector's (detection.CHECKPOINT_FORMAT: the detector's weights under "state_dict", so anything
that takes a detector takes it, boxes only) with the semantic head's weights beside them ("segmentation_head").
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from training.ml import runtime
from training.ml.backbones import normalization
from training.ml.boxes import network_input, rows_xywh
from training.ml.detection import (
    CHECKPOINT_FORMAT,
    EVAL_SCORE,
    NMS_DEFAULT,
    BoxImages,
    DetectorConfig,
    MapLoop,
    augment,
    saved_built,
)
from training.ml.detection import checkpoint as detector_checkpoint
from training.ml.detection_dense import fcos_decoded
from training.ml.detection_metrics import coco_map
from training.ml.images import ReadBytes, read_file, upright_resized, upright_size
from training.ml.instances import BoxesAndPixels, semantic_loss
from training.ml.loop import Hooks
from training.ml.masks import segment
from training.ml.segmentation import Scored, Segmentation, label_map, padded_batches, png_bytes
from training.ml.segmentation_metrics import confusion, scores

HEAD_KEY = "segmentation_head"  # the checkpoint's semantic head weights

HeadsConfig = DetectorConfig  # the detector's settings: the segmentation head adds none


@dataclass(frozen=True)
class HeadsSample:
    """One image: its boxes (x, y, width, height in original pixels, label index), its painted shapes (label index,
    kind, geometry, in drawing order), and which heads learn from it: the detection head where its boxes are known
    (`boxed`), the segmentation head where its pixels are (`painted`)."""

    source: str
    boxes: tuple[tuple[float, float, float, float, int], ...]
    shapes: tuple[tuple[int, str, dict], ...]
    painted: bool
    boxed: bool = True


@dataclass
class HeadsResult:
    best_epoch: int
    history: list[dict]
    stopped_by: str
    checkpoints: dict[str, dict]
    boxes: dict[str, dict[str, list[np.ndarray]]]  # checkpoint -> split -> per image, K x 6 (x y w h label score)
    scored: dict[str, dict[str, Scored]]  # checkpoint -> split: the segmentation head's pixels


class DenseHeads(nn.Module):
    """Normalised pixels padded to a multiple of 32 in; per pyramid level every location's box and scores (as
    detection_dense.DenseFCOS) and the semantic logits at the input's size out."""

    def __init__(self, model: BoxesAndPixels):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        features, semantic = self.model.features(x)
        boxes, scores = fcos_decoded(self.model.detector, list(features.values()), x)
        return boxes, scores, semantic


def build_model(labels: int, *, backbone: str, pretrained: bool, model_size: str, image_size: int) -> BoxesAndPixels:
    return BoxesAndPixels(
        labels, backbone=backbone, pretrained=pretrained, model_size=model_size, image_size=image_size
    ).to(memory_format=torch.channels_last)


def heads_predict(
    model: BoxesAndPixels, pixels: Sequence[np.ndarray], norm: tuple, device, *, score: float, nms: float
):
    """Images decoded at the network's size -> per image, its corner rows at that size (boxes_select's) and its
    semantic logits (1 x C x h x w, padding cut off). Images are batched only with others of their padded shape, so
    an image's answer never depends on its neighbours."""
    from training.ml.boxes import boxes_select

    dense = DenseHeads(model)
    out: list = [None] * len(pixels)
    for chosen in padded_batches(pixels, range(len(pixels))):
        level_boxes, level_scores, semantic = dense(network_input([pixels[i] for i in chosen], *norm).to(device))
        for row, index in enumerate(chosen):
            height, width = pixels[index].shape[:2]
            corners = boxes_select(
                [b[row] for b in level_boxes], [s[row] for s in level_scores], height, width, score=score, nms=nms
            )
            out[index] = (corners, semantic[row : row + 1, :, :height, :width])
    return out


# --- training --------------------------------------------------------------------------------


class _Images(BoxImages):
    """Every sample decoded once at the training size: its boxes there and, where painted, its label map there."""

    def __init__(self, samples: Sequence[HeadsSample], size: int, read: ReadBytes, hooks: Hooks, progress):
        super().__init__(samples, size, read, hooks, progress)
        self.labels = [
            label_map(sample.shapes, scale, *pixels.shape[:2]) if sample.painted else None
            for sample, scale, pixels in zip(samples, self.scales, self.pixels, strict=True)
        ]


def train(
    config: HeadsConfig,
    train_samples: Sequence[HeadsSample],
    valid_samples: Sequence[HeadsSample],
    *,
    hooks: Hooks | None = None,
    read: ReadBytes = read_file,
    device=None,
) -> HeadsResult:
    """Train both heads; keep the best (the mean of validation box mAP@0.5 and mIoU) and the last weights; predict
    every image with both."""
    run = _Run(config, train_samples, valid_samples, hooks or Hooks(), read, device or runtime.device_choose())
    return run.finish(run.run())


class _Run(MapLoop):
    metric = "mean of mAP@0.5 and mIoU"
    valid_empty = {"map": None, "map50": None, "miou": None, "pixel_accuracy": None}

    def __init__(self, config: HeadsConfig, train_samples, valid_samples, hooks: Hooks, read: ReadBytes, device):
        size = config.size
        super().__init__(
            config, train=len(train_samples), valid=len(valid_samples), size=size, hooks=hooks, device=device
        )
        self.truth = {"train": train_samples, "valid": valid_samples}
        self.images = {
            "train": _Images(train_samples, size, read, hooks, self.prepared(0)),
            "valid": _Images(valid_samples, size, read, hooks, self.prepared(len(train_samples))),
        }
        self.boxes_dropped_log()
        self.network_start(build_model)

    @property
    def classes(self) -> int:
        return len(self.config.labels) + 1

    def _order(self) -> list[int]:
        self.model.train()
        return self.rng.permutation(len(self.images["train"])).tolist()

    def _step(self, indices: list[int], epoch: int) -> dict[str, float]:
        source = self.images["train"]
        images, targets = [], []
        for i in indices:
            image, boxes, classes, painted = augment(
                source.pixels[i],
                source.boxes[i],
                source.classes[i],
                self.rng,
                flip=self.config.flip,
                labels=source.labels[i],
            )
            images.append(torch.from_numpy(image).permute(2, 0, 1).to(self.device).float().div_(255))
            targets.append(
                {
                    "boxes": torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4)).to(self.device),
                    "labels": torch.from_numpy(np.asarray(classes, np.int64)).to(self.device),
                    "label_map": None
                    if painted is None
                    else torch.from_numpy(painted.astype(np.int64)).to(self.device),
                }
            )
        boxed = [self.truth["train"][i].boxed for i in indices]
        parts, _, moved, _, semantic = self.model.detection_losses(images, targets, boxed)
        parts["semantic"] = semantic_loss(semantic, [t["label_map"] for t in moved])
        loss = sum(part.float() for part in parts.values())
        self.optimise(loss, epoch)
        return {"loss": float(loss.detach()), **{name: float(part.detach()) for name, part in parts.items()}}

    def predict(self, split: str, *, maps: bool = False) -> tuple[list[np.ndarray], Scored]:
        """The split's boxes (K x 6 rows per image, in original pixels) and its painted images' pixels scored at the
        training size (an image without paint counts no pixel)."""
        self.model.eval()
        images = self.images[split]
        total = np.zeros((self.classes, self.classes), np.int64)
        per_image = np.zeros((len(images), 3, self.classes), np.int64)
        rows, pictures = [], []
        with torch.inference_mode():
            found = heads_predict(
                self.model, images.pixels, self.normalization, self.device, score=EVAL_SCORE, nms=NMS_DEFAULT
            )
        for index, (corners, logits) in enumerate(found):
            rows.append(rows_xywh(corners, images.scales[index]))
            predicted = logits[0].argmax(dim=0).to(torch.uint8).cpu().numpy()
            truth = images.labels[index]
            if truth is not None:
                matrix = confusion(truth, predicted, self.classes)
                total += matrix
                per_image[index] = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
            if maps:
                pictures.append(png_bytes(predicted))
        return rows, Scored(total, per_image, pictures)

    def valid_map(self, predicted: tuple[list[np.ndarray], Scored]) -> dict:
        """COCO's box mAP, and the segmentation head's mIoU and pixel accuracy (None without painted pixels)."""
        rows, scored = predicted
        known = [i for i, sample in enumerate(self.truth["valid"]) if sample.boxed]
        boxes = (
            coco_map([self.truth["valid"][i].boxes for i in known], [rows[i] for i in known], len(self.config.labels))
            if known
            else {"map": None, "map50": None}
        )
        pixels = scores(scored.total, self.config.labels) if scored.total.sum() else {}
        return {**boxes, "miou": pixels.get("miou"), "pixel_accuracy": pixels.get("pixel_accuracy")}

    def chosen_by(self, scores: dict) -> float | None:
        """The mean of box mAP@0.5 and mIoU, or the one of them measured."""
        measured = [value for value in (scores["map50"], scores["miou"]) if value is not None]
        return float(np.mean(measured)) if measured else None

    def valid_text(self, scores: dict) -> str:
        boxes = f"mAP@0.5 {scores['map50']:.3f} mAP@[.5:.95] {scores['map']:.3f}" if scores["map50"] is not None else ""
        pixels = f"mIoU {scores['miou']:.3f}" if scores["miou"] is not None else ""
        return "valid " + ", ".join(part for part in (boxes, pixels) if part)

    def finish(self, stopped_by: str) -> HeadsResult:
        last_state = copy.deepcopy(self.model.state_dict())
        found = {"last": {split: self.predict(split, maps=True) for split in self.images}}
        if self.best_epoch == len(self.history):
            found["best"] = found["last"]
        else:
            self.model.load_state_dict(self.best_state)
            found["best"] = {split: self.predict(split, maps=True) for split in self.images}
        return HeadsResult(
            best_epoch=self.best_epoch,
            history=self.history,
            stopped_by=stopped_by,
            checkpoints={"best": checkpoint(self.config, self.best_state), "last": checkpoint(self.config, last_state)},
            boxes={name: {split: rows for split, (rows, _) in splits.items()} for name, splits in found.items()},
            scored={name: {split: part for split, (_, part) in splits.items()} for name, splits in found.items()},
        )


# --- checkpoints and inference ---------------------------------------------------------------


def checkpoint(config: HeadsConfig, state: dict) -> dict:
    """A detector's checkpoint (the detector's weights) with the semantic head's weights beside them."""

    def part(prefix: str) -> dict:
        return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}

    return {
        **detector_checkpoint(config, part("detector.")),
        HEAD_KEY: {k: v.detach().cpu() for k, v in part("semantic.").items()},
    }


def has_segmentation_head(saved: dict) -> bool:
    return saved.get("format") == CHECKPOINT_FORMAT and HEAD_KEY in saved


class Heads:
    """A loaded checkpoint with both heads that turns image bytes into boxes and a label map."""

    def __init__(self, saved: dict, device=None):
        if not has_segmentation_head(saved):
            raise ValueError("This file is not a Sightline checkpoint with a detection and a segmentation head.")
        self.labels: list[str] = list(saved["labels"])
        self.image_size = int(saved["image_size"])
        self.device = device or runtime.device_choose()
        model = saved_built(build_model, saved)
        model.detector.load_state_dict(saved["state_dict"])
        model.semantic.load_state_dict(saved[HEAD_KEY])
        self.network = model.to(self.device).eval()
        self.normalization = normalization(saved["backbone"])

    def predict(self, images: Sequence[bytes], *, score: float, nms: float = NMS_DEFAULT):
        """Per image: K x 6 box rows (x, y, w, h in original upright pixels, label index, score), best first, and
        the segmentation (a label map at the original upright size, and per class its mean probability)."""
        decoded = [upright_resized(data, self.image_size) for data in images]
        with torch.inference_mode():
            found = heads_predict(
                self.network, [pixels for pixels, _ in decoded], self.normalization, self.device, score=score, nms=nms
            )
            out = []
            for data, (_, scale), (corners, logits) in zip(images, decoded, found, strict=True):
                width, height = upright_size(data)
                out.append((rows_xywh(corners, scale), Segmentation(*segment(logits, height, width))))
        return out
