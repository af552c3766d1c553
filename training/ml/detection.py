"""Training and running object detectors: a timm backbone (ImageNet EfficientNet-Lite0 by default), a feature
pyramid, and torchvision's FCOS head, which is anchor-free and takes a custom backbone.

Plain torch, as classification.py: samples with boxes in, checkpoints and every image's predicted boxes out;
hooks report progress and say when to stop. Images are decoded once, upright, with the longer side at the
training size, and kept in memory; boxes travel with them through flips, scale jitter and colour changes.
Every box that leaves here is in the pixels of the original image, turned upright by its EXIF orientation.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn

from training.ml import runtime
from training.ml.backbones import DEFAULT_BACKBONE, DETECTOR_SIZES, create_backbone, normalization
from training.ml.boxes import MAX_DETECTIONS, rows_xywh
from training.ml.detection_dense import DenseFCOS, OnnxDense, dense_predict, onnx_exports
from training.ml.detection_metrics import coco_map
from training.ml.images import ReadBytes, read_file, upright_resized
from training.ml.layers import EarlyFrozen
from training.ml.loop import Cancelled, Hooks, NetworkLoop

CHECKPOINT_FORMAT = "sightline-detector/1"
EVAL_SCORE = 0.05  # the lowest score kept for statistics: precision-recall curves reach down to it
NMS_DEFAULT = 0.40  # spec 004's default
MIN_BOX_PIXELS = 2.0  # at the training size: smaller boxes are dropped from a batch, not fed to the loss


@dataclass(frozen=True)
class ModelSize:
    image_size: int
    width: int  # channels of the feature pyramid and the head
    convs: int  # convolutions in each branch of the head


MODEL_SIZES = {name: ModelSize(*values) for name, values in DETECTOR_SIZES.items()}


@dataclass(frozen=True)
class BoxSample:
    """One image and its boxes: x, y, width, height in original pixels, and a label index."""

    source: str
    boxes: tuple[tuple[float, float, float, float, int], ...]


@dataclass(frozen=True)
class DetectorConfig:
    labels: tuple[str, ...]
    backbone: str = DEFAULT_BACKBONE
    pretrained: bool = True
    model_size: str = "medium"
    image_size: int = 0  # 0: the model size's
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 0.002
    flip: bool = True
    time_limit_seconds: float | None = None
    patience_seconds: float = 0  # 0: never stop early
    seed: int = 0

    @property
    def size(self) -> int:
        return self.image_size or MODEL_SIZES[self.model_size].image_size


@dataclass
class DetectionResult:
    best_epoch: int
    history: list[dict]
    stopped_by: str  # "epochs", "early stopping", "time limit" or "cancelled"
    checkpoints: dict[str, dict]  # "best" / "last" -> a checkpoint dict (torch.save it)
    predictions: dict[str, dict[str, list[np.ndarray]]]  # checkpoint -> split -> per image, K x 6 (x y w h label score)


# --- the model -------------------------------------------------------------------------------


class FeaturePyramid(EarlyFrozen):
    """The backbone's last three feature levels (strides 8, 16, 32), a feature pyramid over them, and two more
    levels above (P6, P7), as FCOS expects."""

    def __init__(self, body: nn.Module, width: int):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelP6P7

        self.body = body
        info = body.feature_info
        self.levels = [len(info) - 3, len(info) - 2, len(info) - 1]
        channels = [info[i]["num_chs"] for i in self.levels]
        self.fpn = FeaturePyramidNetwork(channels, width, extra_blocks=LastLevelP6P7(width, width))
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> OrderedDict:
        """Mixed precision on a GPU for the backbone and the pyramid only: the head's outputs, the boxes decoded from
        them and the losses stay in float32 (in bfloat16, box edges past 256 px would snap to 2 px steps)."""
        x = x.contiguous(memory_format=torch.channels_last)  # the layout CPU convolutions run fastest in
        with runtime.autocast(x.device):
            features = self.body.forward_intermediates(x, indices=self.levels, intermediates_only=True)
            pyramid = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))
        return OrderedDict((name, level.float()) for name, level in pyramid.items())


def build_model(labels: int, *, backbone: str, pretrained: bool, model_size: str, image_size: int) -> nn.Module:
    """FCOS over the pyramid, one sigmoid output per label (FCOS needs no background class: a location that no
    box claims is trained towards zero on every label)."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.fcos import FCOSHead

    size = MODEL_SIZES[model_size]
    body = create_backbone(backbone, pretrained=pretrained, num_classes=0)
    mean, std = normalization(backbone)
    head = FCOSHead(size.width, num_anchors=1, num_classes=labels, num_convs=size.convs)
    model = FCOS(
        FeaturePyramid(body, size.width),
        num_classes=labels,
        min_size=image_size,
        max_size=image_size,
        image_mean=list(mean),
        image_std=list(std),
        head=head,
        score_thresh=EVAL_SCORE,
        nms_thresh=NMS_DEFAULT,
        detections_per_img=MAX_DETECTIONS,
    )
    # Channels-last weights and activations: a training step on 2 CPU cores takes 2.0 s instead of 3.3 s (medium,
    # 8 images); the layout changes no number a convolution computes beyond rounding.
    return model.to(memory_format=torch.channels_last)


# --- images and boxes ------------------------------------------------------------------------


def _xyxy(boxes: Sequence[Sequence[float]], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y, w, h, label rows in original pixels -> corner boxes at the training size, and their labels."""
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
    array = np.asarray(boxes, dtype=np.float64)
    corners = np.stack([array[:, 0], array[:, 1], array[:, 0] + array[:, 2], array[:, 1] + array[:, 3]], axis=1)
    return (corners * scale).astype(np.float32), array[:, 4].astype(np.int64)


def _kept(boxes: np.ndarray, classes: np.ndarray, width: int, height: int, before: np.ndarray | None = None):
    """Boxes clipped to the image; those left too small, or with under 40% of their area, are dropped."""
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    sides = clipped[:, 2:] - clipped[:, :2]
    keep = (sides >= MIN_BOX_PIXELS).all(axis=1)
    if before is not None:
        area_before = np.prod(before[:, 2:] - before[:, :2], axis=1)
        keep &= np.prod(sides, axis=1) >= 0.4 * area_before
    return clipped[keep], classes[keep]


def augment(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    rng: np.random.Generator,
    *,
    flip: bool,
    labels: np.ndarray | None = None,
):
    """Scale jitter (zoom in on a crop, or out onto a grey canvas), colour jitter and a horizontal flip; the boxes
    follow every change, and so does a label map when given (by nearest neighbour; a zoom out adds background, 0).
    Returns the image, the boxes, their classes and the label map (None without one)."""
    height, width = image.shape[:2]
    choice = rng.random()
    if choice < 1 / 3:  # zoom in: a crop of 60-100% of each side, back to full size
        factor = rng.uniform(0.6, 1.0)
        crop_w, crop_h = max(1, int(width * factor)), max(1, int(height * factor))
        left, top = rng.integers(0, width - crop_w + 1), rng.integers(0, height - crop_h + 1)
        crop = PILImage.fromarray(image[top : top + crop_h, left : left + crop_w])
        image = np.asarray(crop.resize((width, height), PILImage.Resampling.BILINEAR))
        if labels is not None:
            crop = PILImage.fromarray(labels[top : top + crop_h, left : left + crop_w])
            labels = np.asarray(crop.resize((width, height), PILImage.Resampling.NEAREST))
        moved = (boxes - np.array([left, top, left, top], np.float32)) * np.array(
            [width / crop_w, height / crop_h] * 2, np.float32
        )
        boxes, classes = _kept(moved, classes, width, height, before=moved)
    elif choice < 2 / 3:  # zoom out: 60-100% of the size, somewhere on a grey canvas
        factor = rng.uniform(0.6, 1.0)
        small_w, small_h = max(1, int(width * factor)), max(1, int(height * factor))
        left, top = rng.integers(0, width - small_w + 1), rng.integers(0, height - small_h + 1)
        canvas = np.full_like(image, 127)
        canvas[top : top + small_h, left : left + small_w] = np.asarray(
            PILImage.fromarray(image).resize((small_w, small_h), PILImage.Resampling.BILINEAR)
        )
        image = canvas
        if labels is not None:
            placed = np.zeros_like(labels)
            placed[top : top + small_h, left : left + small_w] = np.asarray(
                PILImage.fromarray(labels).resize((small_w, small_h), PILImage.Resampling.NEAREST)
            )
            labels = placed
        boxes = boxes * np.array([small_w / width, small_h / height] * 2, np.float32) + np.array(
            [left, top, left, top], np.float32
        )
        boxes, classes = _kept(boxes, classes, width, height)
    pixels = image.astype(np.float32)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * rng.uniform(0.7, 1.3)  # saturation
    pixels = pixels.mean() + (pixels - pixels.mean()) * rng.uniform(0.8, 1.2)  # contrast
    pixels = pixels * rng.uniform(0.8, 1.2)  # brightness
    image = pixels.clip(0, 255).astype(np.uint8)
    if flip and rng.random() < 0.5:
        image = image[:, ::-1]
        labels = None if labels is None else np.ascontiguousarray(labels[:, ::-1])
        boxes = boxes.copy()
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    return np.ascontiguousarray(image), boxes, classes, labels


def _tensor(image: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(device).float().div_(255)


# --- training --------------------------------------------------------------------------------


class BoxImages:
    """Every sample decoded once at the training size: pixels, the scale, and its boxes at that scale."""

    def __init__(self, samples: Sequence[BoxSample], size: int, read: ReadBytes, hooks: Hooks, progress):
        self.pixels, self.scales, self.boxes, self.classes = [], [], [], []
        self.dropped = 0
        for index, sample in enumerate(samples):
            image, scale = upright_resized(read(sample.source), size)
            boxes, classes = _xyxy(sample.boxes, scale)
            kept, kept_classes = _kept(boxes, classes, image.shape[1], image.shape[0])
            self.dropped += len(boxes) - len(kept)
            self.pixels.append(image)
            self.scales.append(scale)
            self.boxes.append(kept)
            self.classes.append(kept_classes)
            progress(index + 1)
            if hooks.stop():
                raise Cancelled("Cancelled while reading the images.")

    def __len__(self) -> int:
        return len(self.pixels)


def train(
    config: DetectorConfig,
    train_samples: Sequence[BoxSample],
    valid_samples: Sequence[BoxSample],
    *,
    hooks: Hooks | None = None,
    read: ReadBytes = read_file,
    device=None,
) -> DetectionResult:
    """Train; keep the best (validation mAP@0.5) and the last weights; predict every image with both."""
    run = _Run(config, train_samples, valid_samples, hooks or Hooks(), read, device or runtime.device_choose())
    return run.finish(run.run())


class MapLoop(NetworkLoop):
    """A run validated by COCO's mAP (of boxes, or of instance masks): a subclass gives `predict` (every image of a
    split, as its checkpoints keep them) and `valid_map` (COCOeval's {"map", "map50"} of the validation images, and
    any other score to record, as {"miou": ...}, None where it cannot be measured)."""

    metric = "mAP@0.5"
    valid_empty = {"map": None, "map50": None}  # valid_map's keys, for a run without validation images

    def network_start(self, build) -> None:
        """The network (`build`: a build_model of detection.py's family) at the run's settings on its device, its
        early stages frozen when pretrained, and the optimiser."""
        config = self.config
        self.model = build(
            len(config.labels),
            backbone=config.backbone,
            pretrained=config.pretrained,
            model_size=config.model_size,
            image_size=config.size,
        ).to(self.device)
        self.normalization = normalization(config.backbone)
        if config.pretrained:  # random early stages must learn like the rest
            self.model.backbone.freeze_early()
        self.optimiser_start(
            learning_rate=config.learning_rate, patience_seconds=config.patience_seconds, device=self.device
        )

    def boxes_dropped_log(self) -> None:
        """Say how many boxes the images' reading left out (BoxImages.dropped)."""
        dropped = sum(images.dropped for images in self.images.values())
        if dropped:
            self.hooks.log(
                f"{dropped} box(es) smaller than {MIN_BOX_PIXELS:g} px at {self.config.size} px were left out."
            )

    def predict(self, split: str) -> list:
        raise NotImplementedError

    def valid_map(self, predicted) -> dict:
        raise NotImplementedError

    def chosen_by(self, scores: dict) -> float | None:
        """What picks the best epoch, from valid_map's scores (None: nothing measured)."""
        return scores["map50"]

    def valid_text(self, scores: dict) -> str:
        named = self.metric.removesuffix("@0.5")
        return f"valid {named}@0.5 {scores['map50']:.3f} mAP@[.5:.95] {scores['map']:.3f}"

    def _end_epoch(self, epoch: int, losses: dict[str, float], partial: bool, started: float) -> None:
        """Validate (COCO mAP), record the epoch, and keep the weights when they are the best so far."""
        valid_started = time.monotonic()
        scores = dict(self.valid_empty)
        if len(self.images["valid"]):
            predicted = self.predict("valid")
            self.seconds_per_image = (time.monotonic() - valid_started) / len(self.images["valid"])
            scores = self.valid_map(predicted)
        entry = {
            "epoch": epoch,
            "train_loss": losses.get("loss", 0.0),
            "losses": {k: v for k, v in losses.items() if k != "loss"},
            **{f"valid_{name}": value for name, value in scores.items()},
            "learning_rate": self.schedule.get_last_lr()[0],
            "seconds": time.monotonic() - started,
            "partial": partial,
        }
        self.history.append(entry)
        chosen = self.chosen_by(scores)
        # Validation mAP measures an epoch cut short as well as a whole one: either can be the best.
        self.keep_if_best(epoch, chosen if chosen is not None else -entry["train_loss"])
        parts = ", ".join(f"{k} {v:.4f}" for k, v in entry["losses"].items())
        measured = any(value is not None for value in scores.values())
        valid = self.valid_text(scores) if measured else "no validation images"
        self.hooks.log(
            f"Epoch {epoch}: train loss {entry['train_loss']:.4f} ({parts}), {valid}, {entry['seconds']:.1f} s"
            + (" (best so far)" if self.best_epoch == epoch else "")
            + (" (cut short)" if partial else "")
        )
        self._report(epoch / self.config.epochs, epoch, entry["train_loss"])

    def predictions_finished(self) -> tuple[dict, dict]:
        """The last weights, and every image predicted with the last and the best weights (the model is left with
        the best)."""
        last_state = copy.deepcopy(self.model.state_dict())
        predictions = {"last": {split: self.predict(split) for split in self.images}}
        if self.best_epoch == len(self.history):
            predictions["best"] = predictions["last"]
        else:
            self.model.load_state_dict(self.best_state)
            predictions["best"] = {split: self.predict(split) for split in self.images}
        return last_state, predictions


class _Run(MapLoop):
    def __init__(self, config: DetectorConfig, train_samples, valid_samples, hooks: Hooks, read: ReadBytes, device):
        super().__init__(
            config, train=len(train_samples), valid=len(valid_samples), size=config.size, hooks=hooks, device=device
        )
        size = config.size
        self.truth = {"train": train_samples, "valid": valid_samples}
        self.images = {
            "train": BoxImages(train_samples, size, read, hooks, self.prepared(0)),
            "valid": BoxImages(valid_samples, size, read, hooks, self.prepared(len(train_samples))),
        }
        self.boxes_dropped_log()
        self.network_start(build_model)

    def _order(self) -> list[int]:
        self.model.train()
        return self.rng.permutation(len(self.images["train"])).tolist()

    def _step(self, indices: list[int], epoch: int) -> dict[str, float]:
        images, targets = [], []
        source = self.images["train"]
        for i in indices:
            image, boxes, classes, _ = augment(
                source.pixels[i], source.boxes[i], source.classes[i], self.rng, flip=self.config.flip
            )
            images.append(_tensor(image, self.device))
            targets.append(
                {
                    "boxes": torch.from_numpy(np.asarray(boxes, np.float32).reshape(-1, 4)).to(self.device),
                    "labels": torch.from_numpy(np.asarray(classes, np.int64)).to(self.device),
                }
            )
        parts = self.model(images, targets)
        loss = sum(part.float() for part in parts.values())
        self.optimise(loss, epoch)
        return {"loss": float(loss.detach()), **{name: float(part.detach()) for name, part in parts.items()}}

    def predict(self, split: str) -> list[np.ndarray]:
        """K x 6 rows per image of the split, in original pixels."""
        self.model.eval()
        images = self.images[split]
        with torch.inference_mode():
            corners = dense_predict(
                DenseFCOS(self.model),
                images.pixels,
                *self.normalization,
                self.device,
                score=EVAL_SCORE,
                nms=NMS_DEFAULT,
            )
        return [rows_xywh(rows, scale) for rows, scale in zip(corners, images.scales, strict=True)]

    def valid_map(self, predicted: list[np.ndarray]) -> dict:
        return coco_map([s.boxes for s in self.truth["valid"]], predicted, len(self.config.labels))

    def finish(self, stopped_by: str) -> DetectionResult:
        last_state, predictions = self.predictions_finished()
        return DetectionResult(
            best_epoch=self.best_epoch,
            history=self.history,
            stopped_by=stopped_by,
            checkpoints={"best": checkpoint(self.config, self.best_state), "last": checkpoint(self.config, last_state)},
            predictions=predictions,
        )


# --- checkpoints and inference ---------------------------------------------------------------


def checkpoint(config: DetectorConfig, state: dict) -> dict:
    """Everything needed to predict, in types torch.load(weights_only=True) accepts."""
    return {
        "format": CHECKPOINT_FORMAT,
        "backbone": config.backbone,
        "labels": list(config.labels),
        "model_size": config.model_size,
        "image_size": config.size,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }


def saved_built(build, saved: dict) -> nn.Module:
    """The network a checkpoint of detection.py's family describes, built by `build` (its build_model) with random
    weights, for the checkpoint's to be loaded into."""
    return build(
        len(saved["labels"]),
        backbone=saved["backbone"],
        pretrained=False,
        model_size=saved["model_size"],
        image_size=int(saved["image_size"]),
    )


def onnx_attach(checkpoints: dict[str, dict]) -> None:
    """Each checkpoint gets its network as an ONNX model ("onnx"), which a Detector on a CPU predicts with."""
    names = list(checkpoints)
    cpu = torch.device("cpu")
    networks = [Detector(checkpoints[name], device=cpu).network for name in names]
    for name, model in zip(names, onnx_exports(networks, int(checkpoints[names[0]]["image_size"])), strict=True):
        checkpoints[name]["onnx"] = model


class Detector:
    """A loaded checkpoint that turns image bytes into boxes."""

    def __init__(self, saved: dict, device=None):
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("This file is not a Sightline detector checkpoint.")
        self.labels: list[str] = list(saved["labels"])
        self.image_size = int(saved["image_size"])
        self.device = device or runtime.device_choose()
        model = saved_built(build_model, saved)
        model.load_state_dict(saved["state_dict"])
        self.network = DenseFCOS(model).to(self.device).eval()
        self.normalization = normalization(saved["backbone"])
        # What predicts: the checkpoint's ONNX export (detection_dense.onnx_exports) on a CPU, else the network.
        self.runner = (
            OnnxDense(saved["onnx"], threads=torch.get_num_threads())
            if saved.get("onnx") and self.device.type == "cpu"
            else self.network
        )

    def predict(self, images: Sequence[bytes], *, score: float, nms: float = NMS_DEFAULT) -> list[np.ndarray]:
        """Per image, K x 6 rows (x, y, w, h in original upright pixels, label index, score), best first."""
        decoded = [upright_resized(data, self.image_size) for data in images]
        with torch.inference_mode():
            corners = dense_predict(
                self.runner, [pixels for pixels, _ in decoded], *self.normalization, self.device, score=score, nms=nms
            )
        return [rows_xywh(rows, scale) for rows, (_, scale) in zip(corners, decoded, strict=True)]
