"""Training and running semantic segmentation models: every pixel gets one label or background.

The network is a timm backbone (ImageNet EfficientNet-Lite0 by default) with an LR-ASPP head (MobileNetV3's:
the stride-32 features gated by their global average, added to the stride-8 features) and one refinement at
stride 4, as DeepLabV3+'s decoder does, so thin structures and edges survive. It learns from masks and from
polygons with holes and several parts, painted in the order they were drawn (a later shape covers an earlier one).

Plain torch, as detection.py: samples in, checkpoints and each image's confusion matrix out. Images are decoded
once, upright, with the longer side at the training size; their label maps are painted once at that size.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn
from torch.nn import functional

from training.ml import runtime
from training.ml.backbones import DEFAULT_BACKBONE, create_backbone, normalization
from training.ml.boxes import STRIDE, network_input, padded_shape
from training.ml.images import ReadBytes, read_file, upright_resized, upright_size
from training.ml.layers import EarlyFrozen
from training.ml.loop import Cancelled, Hooks, NetworkLoop
from training.ml.masks import segment
from training.ml.segmentation_metrics import IGNORE, confusion, scores

CHECKPOINT_FORMAT = "sightline-segmenter/1"
EVAL_BATCH = 8


@dataclass(frozen=True)
class MaskSample:
    """One image and its shapes, in the upright original's pixels: (label index, kind, geometry), in drawing order;
    kind is "polygon" ({"parts": [{"outer", "holes"}]}) or "mask" ({"rle": COCO RLE})."""

    source: str
    shapes: tuple[tuple[int, str, dict], ...]


@dataclass(frozen=True)
class SegmenterConfig:
    labels: tuple[str, ...]
    backbone: str = DEFAULT_BACKBONE
    pretrained: bool = True
    image_size: int = 416
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 0.002
    flip: bool = True
    time_limit_seconds: float | None = None
    patience_seconds: float = 0  # 0: never stop early
    seed: int = 0

    @property
    def classes(self) -> int:
        return len(self.labels) + 1  # background first


@dataclass(frozen=True)
class Scored:
    """One split scored at the training size: the confusion matrix over all its pixels (C x C, rows the truth), and
    per image and class the pixels right, true and predicted (N x 3 x C: what the galleries read, in a size that
    grows with the classes, not with their square)."""

    total: np.ndarray
    per_image: np.ndarray
    maps: list[bytes]  # each image's predicted label map as a PNG, when asked for


@dataclass
class SegmentationResult:
    best_epoch: int
    history: list[dict]
    stopped_by: str
    checkpoints: dict[str, dict]
    scored: dict[str, dict[str, Scored]]  # checkpoint -> split


# --- the model -------------------------------------------------------------------------------


def stride_level(info: list[dict], stride: int) -> int:
    """The last feature level of the backbone at `stride`."""
    found = [index for index, level in enumerate(info) if level["reduction"] == stride]
    if not found:
        raise ValueError(f"The backbone has no features at stride {stride}; choose another backbone.")
    return found[-1]


class LRASPPDecoder:
    """The head, for an nn.Module: per-class logits at stride 4 from features at strides 4, 8 and 32."""

    def decoder_build(self, low: int, middle: int, high: int, classes: int, width: int = 128, fine: int = 48) -> None:
        from torchvision.ops.misc import Conv2dNormActivation as Block

        self.high = Block(high, width, kernel_size=1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high, width, 1), nn.Sigmoid())
        self.middle = Block(middle, width, kernel_size=1)
        self.low = Block(low, fine, kernel_size=1)
        self.refine = nn.Sequential(Block(width + fine, fine, kernel_size=1), Block(fine, fine, kernel_size=3))
        self.classify = nn.Conv2d(fine, classes, 1)

    def decoded(self, low: torch.Tensor, middle: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        context = self.high(high) * self.gate(high)
        context = functional.interpolate(context, size=middle.shape[-2:], mode="bilinear", align_corners=False)
        context = functional.interpolate(
            context + self.middle(middle), size=low.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.classify(self.refine(torch.cat([context, self.low(low)], dim=1)))


class SegmentationNet(LRASPPDecoder, EarlyFrozen):
    """Backbone features at strides 4, 8 and 32 -> per-class logits at the input's size."""

    def __init__(self, body: nn.Module, classes: int):
        super().__init__()
        self.body = body
        info = body.feature_info
        self.levels = [stride_level(info, 4), stride_level(info, 8), stride_level(info, STRIDE)]
        self.decoder_build(*(info[i]["num_chs"] for i in self.levels), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(x.device):
            logits = self.decoded(*self.body.forward_intermediates(x, indices=self.levels, intermediates_only=True))
        return functional.interpolate(logits.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)


def build_model(classes: int, *, backbone: str, pretrained: bool) -> SegmentationNet:
    body = create_backbone(backbone, pretrained=pretrained, num_classes=0)
    return SegmentationNet(body, classes).to(memory_format=torch.channels_last)


# --- label maps ------------------------------------------------------------------------------


def label_map(shapes: Sequence[tuple[int, str, dict]], scale: float, height: int, width: int) -> np.ndarray:
    """height x width uint8: 0 background, i + 1 where label i's shape covers the pixel (later shapes on top).
    Polygons are scaled and rasterized at this size as pycocotools rasterizes them; masks are decoded and resized by
    nearest neighbour."""
    out = np.zeros((height, width), np.uint8)
    for index, kind, geometry in shapes:
        out[shape_mask(kind, geometry, scale, height, width)] = index + 1
    return out


def shape_mask(kind: str, geometry: dict, scale: float, height: int, width: int) -> np.ndarray:
    """One polygon (holes and parts kept) or mask as a height x width boolean array at `scale`."""
    from pycocotools import mask as coco_mask

    if kind == "mask":
        rle = geometry["rle"]
        full = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
        if full.shape == (height, width):
            return full.astype(bool)
        return np.asarray(PILImage.fromarray(full * 255).resize((width, height), PILImage.Resampling.NEAREST)) > 0
    covered = np.zeros((height, width), bool)
    for part in geometry["parts"]:
        filled = _ring(part["outer"], scale, height, width)
        for hole in part["holes"]:
            filled &= ~_ring(hole, scale, height, width)
        covered |= filled
    return covered


def _ring(ring: Sequence[Sequence[float]], scale: float, height: int, width: int) -> np.ndarray:
    from pycocotools import mask as coco_mask

    flat = [float(v) * scale for point in ring for v in point]
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([flat], height, width))).astype(bool)


# --- training --------------------------------------------------------------------------------


def augment(image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, flip: bool):
    """A crop of 60-100% of each side enlarged back (the label map by nearest neighbour), colour jitter and a
    horizontal flip."""
    height, width = image.shape[:2]
    if rng.random() < 0.5:
        factor = rng.uniform(0.6, 1.0)
        crop_w, crop_h = max(1, int(width * factor)), max(1, int(height * factor))
        left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        window = (slice(top, top + crop_h), slice(left, left + crop_w))
        image = np.asarray(PILImage.fromarray(image[window]).resize((width, height), PILImage.Resampling.BILINEAR))
        labels = np.asarray(PILImage.fromarray(labels[window]).resize((width, height), PILImage.Resampling.NEAREST))
    pixels = image.astype(np.float32)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * rng.uniform(0.7, 1.3)
    pixels = pixels.mean() + (pixels - pixels.mean()) * rng.uniform(0.8, 1.2)
    image = (pixels * rng.uniform(0.8, 1.2)).clip(0, 255).astype(np.uint8)
    if flip and rng.random() < 0.5:
        image, labels = image[:, ::-1], labels[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def _targets(label_maps: Sequence[np.ndarray], shape: tuple[int, int]) -> torch.Tensor:
    """Label maps padded, as network_input pads their images, with IGNORE: padding is never learned or scored."""
    out = torch.full((len(label_maps), *shape), IGNORE, dtype=torch.long)
    for index, labels in enumerate(label_maps):
        out[index, : labels.shape[0], : labels.shape[1]] = torch.from_numpy(labels.astype(np.int64))
    return out


def padded_batches(pixels: Sequence[np.ndarray], indices: Sequence[int]):
    """Indices grouped by padded shape, EVAL_BATCH at a time: an image's prediction never depends on others."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index in indices:
        groups.setdefault(padded_shape(pixels[index]), []).append(index)
    for members in groups.values():
        for start in range(0, len(members), EVAL_BATCH):
            yield members[start : start + EVAL_BATCH]


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - the soft Dice coefficient, averaged over the classes: each class counts alike however few its pixels, so
    thin structures weigh as much as the background (cross-entropy alone lets them thin out)."""
    classes = logits.shape[1]
    counted = (targets != IGNORE).unsqueeze(1)
    probabilities = logits.softmax(dim=1) * counted
    truth = functional.one_hot(targets.masked_fill(~counted[:, 0], 0), classes).permute(0, 3, 1, 2) * counted
    overlap = (probabilities * truth).sum(dim=(0, 2, 3))
    total = probabilities.sum(dim=(0, 2, 3)) + truth.sum(dim=(0, 2, 3))
    return 1 - ((2 * overlap + 1) / (total + 1)).mean()


class _Images:
    """Every sample decoded once at the training size, with its label map painted at that size."""

    def __init__(self, samples: Sequence[MaskSample], size: int, read: ReadBytes, hooks: Hooks, progress):
        self.pixels, self.labels = [], []
        for index, sample in enumerate(samples):
            image, scale = upright_resized(read(sample.source), size)
            self.pixels.append(image)
            self.labels.append(label_map(sample.shapes, scale, *image.shape[:2]))
            progress(index + 1)
            if hooks.stop():
                raise Cancelled("Cancelled while reading the images.")

    def __len__(self) -> int:
        return len(self.pixels)


def train(
    config: SegmenterConfig,
    train_samples: Sequence[MaskSample],
    valid_samples: Sequence[MaskSample],
    *,
    hooks: Hooks | None = None,
    read: ReadBytes = read_file,
    device=None,
) -> SegmentationResult:
    """Train; keep the best (validation mIoU) and the last weights; score every image with both."""
    run = _Run(config, train_samples, valid_samples, hooks or Hooks(), read, device or runtime.device_choose())
    return run.finish(run.run())


class _Run(NetworkLoop):
    metric = "mIoU"
    bytes_per_pixel = 4  # the image and its label map

    def __init__(self, config: SegmenterConfig, train_samples, valid_samples, hooks: Hooks, read: ReadBytes, device):
        super().__init__(
            config,
            train=len(train_samples),
            valid=len(valid_samples),
            size=config.image_size,
            hooks=hooks,
            device=device,
        )
        size = config.image_size
        self.images = {
            "train": _Images(train_samples, size, read, hooks, self.prepared(0)),
            "valid": _Images(valid_samples, size, read, hooks, self.prepared(len(train_samples))),
        }
        self.model = build_model(config.classes, backbone=config.backbone, pretrained=config.pretrained).to(device)
        if config.pretrained:
            self.model.freeze_early()
        self.normalization = normalization(config.backbone)
        self.optimiser_start(
            learning_rate=config.learning_rate, patience_seconds=config.patience_seconds, device=device
        )

    def _order(self) -> list[int]:
        self.model.train()
        return self.rng.permutation(len(self.images["train"])).tolist()

    def _step(self, indices: list[int], epoch: int) -> dict[str, float]:
        source = self.images["train"]
        pairs = [augment(source.pixels[i], source.labels[i], self.rng, flip=self.config.flip) for i in indices]
        # One batch of one padded shape: the largest of the batch's images.
        shape = tuple(max(padded_shape(image)[axis] for image, _ in pairs) for axis in (0, 1))
        batch = torch.zeros((len(pairs), 3, *shape))
        for index, (image, _) in enumerate(pairs):
            one = network_input([image], *self.normalization)
            batch[index, :, : one.shape[2], : one.shape[3]] = one[0]
        targets = _targets([labels for _, labels in pairs], shape).to(self.device)
        logits = self.model(batch.to(self.device))
        loss = functional.cross_entropy(logits, targets, ignore_index=IGNORE) + dice_loss(logits, targets)
        self.optimise(loss, epoch)
        return {"loss": float(loss.detach())}

    def scored(self, split: str, *, maps: bool = False) -> Scored:
        """The split's pixels predicted with the weights in use, counted against the truth (and drawn, with maps)."""
        self.model.eval()
        images, classes = self.images[split], self.config.classes
        total = np.zeros((classes, classes), np.int64)
        per_image = np.zeros((len(images), 3, classes), np.int64)
        pictures: dict[int, bytes] = {}
        with torch.inference_mode():
            for chosen in padded_batches(images.pixels, range(len(images))):
                logits = self.model(
                    network_input([images.pixels[i] for i in chosen], *self.normalization).to(self.device)
                )
                predicted = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
                for row, index in enumerate(chosen):
                    truth = images.labels[index]
                    mine = predicted[row, : truth.shape[0], : truth.shape[1]]
                    matrix = confusion(truth, mine, classes)
                    total += matrix
                    per_image[index] = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
                    if maps:
                        pictures[index] = png_bytes(mine)
        return Scored(total, per_image, [pictures[index] for index in range(len(images))] if maps else [])

    def _end_epoch(self, epoch: int, losses: dict[str, float], partial: bool, started: float) -> None:
        valid_started = time.monotonic()
        miou = accuracy = None
        if len(self.images["valid"]):
            matrix = self.scored("valid").total
            self.seconds_per_image = (time.monotonic() - valid_started) / len(self.images["valid"])
            summary = scores(matrix, self.config.labels)
            miou, accuracy = summary["miou"], summary["pixel_accuracy"]
        entry = {
            "epoch": epoch,
            "train_loss": losses.get("loss", 0.0),
            "valid_miou": miou,
            "valid_pixel_accuracy": accuracy,
            "learning_rate": self.schedule.get_last_lr()[0],
            "seconds": time.monotonic() - started,
            "partial": partial,
        }
        self.history.append(entry)
        score = miou if miou is not None else -entry["train_loss"]
        self.keep_if_best(epoch, score)
        valid = f"valid mIoU {miou:.3f}, pixel accuracy {accuracy:.3f}" if miou is not None else "no validation images"
        self.hooks.log(
            f"Epoch {epoch}: train loss {entry['train_loss']:.4f}, {valid}, {entry['seconds']:.1f} s"
            + (" (best so far)" if self.best_epoch == epoch else "")
            + (" (cut short)" if partial else "")
        )
        self._report(epoch / self.config.epochs, epoch, entry["train_loss"])

    def finish(self, stopped_by: str) -> SegmentationResult:
        last_state = copy.deepcopy(self.model.state_dict())
        scored = {"last": {split: self.scored(split, maps=True) for split in self.images}}
        if self.best_epoch == len(self.history):
            scored["best"] = scored["last"]
        else:
            self.model.load_state_dict(self.best_state)
            scored["best"] = {split: self.scored(split, maps=True) for split in self.images}
        return SegmentationResult(
            best_epoch=self.best_epoch,
            history=self.history,
            stopped_by=stopped_by,
            checkpoints={"best": checkpoint(self.config, self.best_state), "last": checkpoint(self.config, last_state)},
            scored=scored,
        )


def png_bytes(label_map: np.ndarray) -> bytes:
    """A label map as a greyscale PNG (a few kilobytes: maps are mostly runs)."""
    import io

    out = io.BytesIO()
    PILImage.fromarray(label_map.astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


# --- checkpoints and inference ---------------------------------------------------------------


def checkpoint(config: SegmenterConfig, state: dict) -> dict:
    """Everything needed to predict, in types torch.load(weights_only=True) accepts."""
    return {
        "format": CHECKPOINT_FORMAT,
        "backbone": config.backbone,
        "labels": list(config.labels),
        "image_size": config.image_size,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }


@dataclass(frozen=True)
class Segmentation:
    """One image's answer: a label map at the upright original's size (0 background, i + 1 label i), and per
    class the mean probability over the pixels given that class."""

    labels: np.ndarray
    confidence: np.ndarray


class Segmenter:
    """A loaded checkpoint that turns image bytes into label maps."""

    def __init__(self, saved: dict, device=None):
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("This file is not a Sightline segmentation checkpoint.")
        self.labels: list[str] = list(saved["labels"])
        self.image_size = int(saved["image_size"])
        self.device = device or runtime.device_choose()
        model = build_model(len(self.labels) + 1, backbone=saved["backbone"], pretrained=False)
        model.load_state_dict(saved["state_dict"])
        self.network = model.to(self.device).eval()
        self.normalization = normalization(saved["backbone"])

    def predict(self, images: Sequence[bytes]) -> list[Segmentation]:
        out = []
        with torch.inference_mode():
            for data in images:
                pixels, _ = upright_resized(data, self.image_size)
                width, height = upright_size(data)
                logits = self.network(network_input([pixels], *self.normalization).to(self.device))
                out.append(Segmentation(*segment(logits[:, :, : pixels.shape[0], : pixels.shape[1]], height, width)))
        return out
