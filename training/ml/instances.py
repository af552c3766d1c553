"""Training and running instance segmentation models: every object its own mask, label, score and box.

The network is the detector (detection.py: a timm backbone, a feature pyramid and torchvision's FCOS head) with
Mask R-CNN's mask branch beside it: RoIAlign over the pyramid at each box, a small FCN (torchvision's
MaskRCNNHeads) and a 28 x 28 mask per label (MaskRCNNPredictor), pasted into the image at its box. FCOS has no
proposals to train the mask branch on, so it learns on the true boxes and on a jittered copy of each (a detector's
box is never exact); at prediction it runs on the boxes FCOS keeps.

Plain torch, as detection.py: samples in (segmentation.MaskSample: each polygon or mask one instance), checkpoints
and every image's predicted instances out. Images are decoded once at the training size with their instances'
masks (stored as RLE, decoded per batch); the truth for scoring is each instance's mask at the upright original's
size, where predicted masks are pasted too, so mask mAP is COCOeval's on the image as it was labeled.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn
from torch.nn import functional

from training.ml import runtime
from training.ml.backbones import normalization
from training.ml.boxes import network_input, padded_shape
from training.ml.detection import (
    EVAL_SCORE,
    MIN_BOX_PIXELS,
    MODEL_SIZES,
    NMS_DEFAULT,
    DetectorConfig,
    MapLoop,
    saved_built,
)
from training.ml.detection import (
    build_model as detector_build,
)
from training.ml.detection_metrics import coco_map
from training.ml.images import ReadBytes, read_file, upright_guide, upright_resized, upright_size
from training.ml.instance_masks import Instances, instances_found, roi_pool
from training.ml.instances_dense import DenseInstances, MaskBranch
from training.ml.layers import EarlyFrozen
from training.ml.loop import Cancelled, Hooks
from training.ml.segmentation import LRASPPDecoder, MaskSample, dice_loss, shape_mask, stride_level
from training.ml.segmentation_metrics import IGNORE

CHECKPOINT_FORMAT = "sightline-instances/1"
JITTER = 0.1  # of a true box's side: how far each edge of its jittered copy moves, at most
EVAL_BATCH = 8

InstanceConfig = DetectorConfig  # the same settings: the mask branch adds none


@dataclass
class InstanceResult:
    best_epoch: int
    history: list[dict]
    stopped_by: str
    checkpoints: dict[str, dict]
    predictions: dict[str, dict[str, list[Instances]]]  # checkpoint -> split -> per image
    skipped: int  # instances with no pixel, left out


# --- the model -------------------------------------------------------------------------------


class SemanticHead(LRASPPDecoder, nn.Module):
    """The semantic segmentation model's head (segmentation.LRASPPDecoder) on the detector's backbone."""

    def __init__(self, low: int, middle: int, high: int, classes: int):
        super().__init__()
        self.decoder_build(low, middle, high, classes)


class BoxesAndPixels(nn.Module):
    """The detector (FCOS over a feature pyramid) and a semantic head over the backbone's features at strides 4, 8
    and 32, both from one pass through the backbone: what the instance model builds on, and spec 004's model with a
    detection head and a segmentation head (heads.py)."""

    def __init__(self, labels: int, *, backbone: str, pretrained: bool, model_size: str, image_size: int):
        super().__init__()
        self.detector = detector_build(
            labels, backbone=backbone, pretrained=pretrained, model_size=model_size, image_size=image_size
        )
        pyramid = self.detector.backbone
        info = pyramid.body.feature_info
        self.low_level = stride_level(info, 4)
        low, middle, high = (info[i]["num_chs"] for i in (self.low_level, pyramid.levels[0], pyramid.levels[2]))
        self.semantic = SemanticHead(low, middle, high, labels + 1)

    @property
    def backbone(self) -> EarlyFrozen:
        return self.detector.backbone

    def features(self, x: torch.Tensor) -> tuple[OrderedDict, torch.Tensor]:
        """The pyramid (as the detector's backbone gives it) and the semantic logits at the input's size, from one
        pass through the backbone."""
        pyramid = self.detector.backbone
        x = x.contiguous(memory_format=torch.channels_last)
        indices = [self.low_level, *pyramid.levels]
        with runtime.autocast(x.device):
            low, *levels = pyramid.body.forward_intermediates(x, indices=indices, intermediates_only=True)
            found = pyramid.fpn(OrderedDict((str(i), f) for i, f in enumerate(levels)))
            semantic = self.semantic.decoded(low, levels[0], levels[2])
        semantic = functional.interpolate(semantic.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return OrderedDict((name, level.float()) for name, level in found.items()), semantic

    def detection_losses(self, images: list[torch.Tensor], targets: list[dict], boxed: Sequence[bool] | None = None):
        """FCOS's losses (its own forward, step by step, to keep the pyramid) over the images whose boxes are known
        (`boxed`; all by default), and what the other heads learn from: the batch (FCOS's transform of it), its
        targets there, the pyramid and the semantic logits."""
        fcos = self.detector
        batch, targets = fcos.transform(images, targets)
        features, semantic = self.features(batch.tensors)
        levels = list(features.values())
        anchors = fcos.anchor_generator(batch, levels)
        counts = [level.size(2) * level.size(3) for level in levels]
        outputs = fcos.head(levels)
        known = [i for i in range(len(targets)) if boxed is None or boxed[i]]
        if not known:  # no image to learn boxes from: FCOS's losses are zero, its graph kept
            zero = sum(output.sum() for output in outputs.values()) * 0
            losses = {name: zero for name in ("classification", "bbox_regression", "bbox_ctrness")}
        elif len(known) < len(targets):
            index = torch.tensor(known, device=semantic.device)
            chosen = {name: output[index] for name, output in outputs.items()}
            losses = fcos.compute_loss([targets[i] for i in known], chosen, [anchors[i] for i in known], counts)
        else:
            losses = fcos.compute_loss(targets, outputs, anchors, counts)
        return losses, batch, targets, features, semantic


def semantic_loss(semantic: torch.Tensor, label_maps: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """Cross-entropy and Dice of the semantic logits against each image's label map (None: an image the head does
    not learn from), padding ignored."""
    truth = torch.full(semantic.shape[:1] + semantic.shape[2:], IGNORE, dtype=torch.long, device=semantic.device)
    for index, painted in enumerate(label_maps):
        if painted is not None:
            truth[index, : painted.shape[0], : painted.shape[1]] = painted
    if not (truth != IGNORE).any():  # cross-entropy over no pixel is NaN
        return semantic.sum() * 0
    return functional.cross_entropy(semantic, truth, ignore_index=IGNORE) + dice_loss(semantic, truth)


class InstanceNet(BoxesAndPixels):
    """FCOS, a mask branch over its pyramid's three finest levels (strides 8, 16, 32), and a semantic head over the
    backbone's features at strides 4, 8 and 32. An instance's mask is its box's coarse mask where the semantic head
    gives its label the pixel: the coarse mask tells instances apart, the semantic head draws edges and thin
    structures finer than a 28 x 28 grid over the box can."""

    def __init__(self, labels: int, *, backbone: str, pretrained: bool, model_size: str, image_size: int):
        super().__init__(labels, backbone=backbone, pretrained=pretrained, model_size=model_size, image_size=image_size)
        from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

        width = MODEL_SIZES[model_size].width
        self.pool = roi_pool()
        self.mask_head = MaskRCNNHeads(width, [width] * 4, 1, norm_layer=nn.BatchNorm2d)  # as Mask R-CNN v2
        self.mask_predictor = MaskRCNNPredictor(width, width, labels)

    def mask_logits(self, features: dict, boxes: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
        """Per box (corners at the input's pixels, one list entry per image of the batch): 28 x 28 logits per label."""
        pooled = self.pool(features, boxes, [shape] * len(boxes))
        return self.mask_predictor(self.mask_head(pooled))

    def losses(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        """FCOS's losses and Mask R-CNN's mask loss on the true boxes and a jittered copy of each, and the semantic
        head's loss."""
        from torchvision.models.detection.roi_heads import maskrcnn_loss

        losses, batch, targets, features, semantic = self.detection_losses(images, targets)
        proposals, matched = [], []
        for target in targets:
            boxes = target["boxes"]
            sides = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
            moved = boxes + (torch.rand_like(boxes) * 2 - 1) * JITTER * sides
            height, width = batch.tensors.shape[-2:]
            moved = torch.stack(
                [moved[:, 0].clamp(0, width), moved[:, 1].clamp(0, height), moved[:, 2], moved[:, 3]], dim=1
            )
            moved[:, 2:] = torch.maximum(moved[:, 2:], moved[:, :2] + 1)
            proposals.append(torch.cat([boxes, moved]))
            matched.append(torch.arange(len(boxes), device=boxes.device).repeat(2))
        shape = (batch.tensors.shape[-2], batch.tensors.shape[-1])
        logits = self.mask_logits(features, proposals, shape)
        losses["mask"] = maskrcnn_loss(
            logits, proposals, [t["masks"] for t in targets], [t["labels"] for t in targets], matched
        )
        losses["semantic"] = semantic_loss(semantic, [t["label_map"] for t in targets])
        return losses


def build_model(labels: int, *, backbone: str, pretrained: bool, model_size: str, image_size: int) -> InstanceNet:
    return InstanceNet(
        labels, backbone=backbone, pretrained=pretrained, model_size=model_size, image_size=image_size
    ).to(memory_format=torch.channels_last)


# --- masks -----------------------------------------------------------------------------------


def rle_encode(mask: np.ndarray) -> dict:
    """A height x width boolean array as COCO RLE with str counts."""
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def truth_instances(
    shapes: Sequence[tuple[int, str, dict]], height: int, width: int
) -> tuple[np.ndarray, list[dict], list[int]]:
    """An image's shapes as instances at its upright size: K x 5 rows (the mask's x, y, w, h and the label index),
    each mask as RLE, and which shapes they are. A shape that covers no pixel is left out."""
    from pycocotools import mask as coco_mask

    rows, masks, kept = [], [], []
    for position, (index, kind, geometry) in enumerate(shapes):
        mask = shape_mask(kind, geometry, 1.0, height, width)
        if not mask.any():
            continue
        rle = rle_encode(mask)
        rows.append([*(float(v) for v in coco_mask.toBbox(rle)), index])
        masks.append(rle)
        kept.append(position)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5), masks, kept


def _resized(stack: np.ndarray, width: int, height: int) -> np.ndarray:
    """H x W x N masks resized by nearest neighbour (OpenCV takes at most 512 channels at once)."""
    import cv2

    if not stack.shape[2]:
        return np.zeros((height, width, 0), np.uint8)
    parts = []
    for start in range(0, stack.shape[2], 256):
        part = cv2.resize(stack[:, :, start : start + 256], (width, height), interpolation=cv2.INTER_NEAREST)
        parts.append(part.reshape(height, width, -1))
    return np.concatenate(parts, axis=2)


def augment(image: np.ndarray, masks: np.ndarray, rng: np.random.Generator, *, flip: bool):
    """Detection's scale jitter (a crop enlarged, or the image shrunk onto a grey canvas), colour jitter and a
    flip; the masks (H x W x N) follow every change. Returns the image, the masks, and by how much each mask's
    area should have grown (what a mask mostly cut off is measured against)."""
    height, width = image.shape[:2]
    grown = 1.0
    choice = rng.random()
    if choice < 1 / 3:
        factor = rng.uniform(0.6, 1.0)
        crop_w, crop_h = max(1, int(width * factor)), max(1, int(height * factor))
        left, top = int(rng.integers(0, width - crop_w + 1)), int(rng.integers(0, height - crop_h + 1))
        window = (slice(top, top + crop_h), slice(left, left + crop_w))
        image = np.asarray(PILImage.fromarray(image[window]).resize((width, height), PILImage.Resampling.BILINEAR))
        masks = _resized(np.ascontiguousarray(masks[window]), width, height)
        grown = (width / crop_w) * (height / crop_h)
    elif choice < 2 / 3:
        factor = rng.uniform(0.6, 1.0)
        small_w, small_h = max(1, int(width * factor)), max(1, int(height * factor))
        left, top = int(rng.integers(0, width - small_w + 1)), int(rng.integers(0, height - small_h + 1))
        canvas = np.full_like(image, 127)
        canvas[top : top + small_h, left : left + small_w] = np.asarray(
            PILImage.fromarray(image).resize((small_w, small_h), PILImage.Resampling.BILINEAR)
        )
        image = canvas
        placed = np.zeros_like(masks)
        placed[top : top + small_h, left : left + small_w] = _resized(masks, small_w, small_h)
        masks = placed
        grown = (small_w / width) * (small_h / height)
    pixels = image.astype(np.float32)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * rng.uniform(0.7, 1.3)
    pixels = pixels.mean() + (pixels - pixels.mean()) * rng.uniform(0.8, 1.2)
    image = (pixels * rng.uniform(0.8, 1.2)).clip(0, 255).astype(np.uint8)
    if flip and rng.random() < 0.5:
        image, masks = image[:, ::-1], masks[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(masks), grown


def _boxes_of(masks: np.ndarray, before: np.ndarray, grown: float) -> tuple[np.ndarray, np.ndarray]:
    """Each mask's box (corners; a pixel spans [x, x + 1)) and which masks to train on: those with a box of at
    least MIN_BOX_PIXELS a side and 40% of the area they had (a mask mostly cropped away teaches little)."""
    columns, rows = masks.any(axis=0), masks.any(axis=1)  # W x N, H x N
    boxes = np.zeros((masks.shape[2], 4), np.float32)
    keep = np.zeros(masks.shape[2], bool)
    areas = masks.sum(axis=(0, 1))
    for n in range(masks.shape[2]):
        xs, ys = np.flatnonzero(columns[:, n]), np.flatnonzero(rows[:, n])
        if not len(xs):
            continue
        boxes[n] = xs[0], ys[0], xs[-1] + 1, ys[-1] + 1
        sides = boxes[n, 2:] - boxes[n, :2]
        keep[n] = (sides >= MIN_BOX_PIXELS).all() and areas[n] >= 0.4 * before[n] * grown
    return boxes, keep


# --- training --------------------------------------------------------------------------------


class _Images:
    """Every sample decoded once at the training size with its instances' masks there (RLE), and its truth at the
    upright original's size. With `guides` (the validation images, predicted every epoch), each image's guide for
    its masks (images.upright_guide) is kept too; otherwise it is read again when the split is predicted."""

    def __init__(
        self, samples: Sequence[MaskSample], size: int, read: ReadBytes, hooks: Hooks, progress, *, guides: bool
    ):
        from pycocotools import mask as coco_mask

        self.samples, self.size, self.read = samples, size, read
        self.guides: list[np.ndarray] | None = [] if guides else None
        self.pixels, self.scales, self.sizes = [], [], []
        self.masks, self.areas, self.classes = [], [], []
        self.truth_rows, self.truth_masks = [], []
        self.skipped = self.too_small = 0
        for index, sample in enumerate(samples):
            data = read(sample.source)
            image, scale = upright_resized(data, size)
            width, height = upright_size(data)
            rows, masks, kept = truth_instances(sample.shapes, height, width)
            self.skipped += len(sample.shapes) - len(kept)
            small, labels = [], []
            for position in kept:
                label, kind, geometry = sample.shapes[position]
                mask = shape_mask(kind, geometry, scale, *image.shape[:2])
                if mask.any():
                    small.append(mask)
                    labels.append(label)
            self.too_small += len(kept) - len(small)
            stack = np.stack(small, axis=2) if small else np.zeros((*image.shape[:2], 0), bool)
            self.pixels.append(image)
            if self.guides is not None:
                self.guides.append(upright_guide(data, size))
            self.scales.append(scale)
            self.sizes.append((height, width))
            self.masks.append(coco_mask.encode(np.asfortranarray(stack.astype(np.uint8))))
            self.areas.append(stack.sum(axis=(0, 1)).astype(np.float64))
            self.classes.append(np.asarray(labels, np.int64))
            self.truth_rows.append(rows)
            self.truth_masks.append(masks)
            progress(index + 1)
            if hooks.stop():
                raise Cancelled("Cancelled while reading the images.")

    def __len__(self) -> int:
        return len(self.pixels)

    def guide(self, index: int) -> np.ndarray | None:
        """The image's guide, kept or read again; None (masks unrefined) when it can no longer be read: an image
        deleted while the model trained must not cost the finished run."""
        if self.guides is not None:
            return self.guides[index]
        try:
            return upright_guide(self.read(self.samples[index].source), self.size)
        except OSError:  # gone from storage, or no longer an image (PIL's UnidentifiedImageError is one)
            return None

    def masks_at(self, index: int) -> np.ndarray:
        """H x W x N uint8: the image's instances at the training size."""
        from pycocotools import mask as coco_mask

        if not len(self.classes[index]):
            return np.zeros((*self.pixels[index].shape[:2], 0), np.uint8)
        return coco_mask.decode(self.masks[index]).reshape(*self.pixels[index].shape[:2], -1)


def train(
    config: InstanceConfig,
    train_samples: Sequence[MaskSample],
    valid_samples: Sequence[MaskSample],
    *,
    hooks: Hooks | None = None,
    read: ReadBytes = read_file,
    device=None,
) -> InstanceResult:
    """Train; keep the best (validation mask mAP@0.5) and the last weights; predict every image with both."""
    run = _Run(config, train_samples, valid_samples, hooks or Hooks(), read, device or runtime.device_choose())
    return run.finish(run.run())


class _Run(MapLoop):
    metric = "mask mAP@0.5"

    def __init__(self, config: InstanceConfig, train_samples, valid_samples, hooks: Hooks, read: ReadBytes, device):
        size = config.size
        super().__init__(
            config, train=len(train_samples), valid=len(valid_samples), size=size, hooks=hooks, device=device
        )
        self.images = {
            "train": _Images(train_samples, size, read, hooks, self.prepared(0), guides=False),
            "valid": _Images(valid_samples, size, read, hooks, self.prepared(len(train_samples)), guides=True),
        }
        self.skipped = sum(images.skipped for images in self.images.values())
        if self.skipped:
            hooks.log(f"{self.skipped} empty instance(s) (no pixel in their image) were skipped.")
        too_small = sum(images.too_small for images in self.images.values())
        if too_small:
            hooks.log(f"{too_small} instance(s) cover no pixel at {size} px: trained without them, scored with them.")
        self.network_start(build_model)

    def _order(self) -> list[int]:
        self.model.train()
        return self.rng.permutation(len(self.images["train"])).tolist()

    def _step(self, indices: list[int], epoch: int) -> dict[str, float]:
        source = self.images["train"]
        images, targets = [], []
        for i in indices:
            image, masks, grown = augment(source.pixels[i], source.masks_at(i), self.rng, flip=self.config.flip)
            boxes, keep = _boxes_of(masks, source.areas[i], grown)
            images.append(torch.from_numpy(image).permute(2, 0, 1).to(self.device).float().div_(255))
            painted = np.zeros(masks.shape[:2], np.int64)  # every instance, cropped or not, later ones on top
            for n, label in enumerate(source.classes[i]):
                painted[masks[:, :, n] > 0] = label + 1
            targets.append(
                {
                    "label_map": torch.from_numpy(painted).to(self.device),
                    "boxes": torch.from_numpy(boxes[keep]).to(self.device),
                    "labels": torch.from_numpy(source.classes[i][keep]).to(self.device),
                    "masks": torch.from_numpy(np.ascontiguousarray(masks[:, :, keep].transpose(2, 0, 1))).to(
                        self.device
                    ),
                }
            )
        parts = self.model.losses(images, targets)
        loss = sum(part.float() for part in parts.values())
        self.optimise(loss, epoch)
        return {"loss": float(loss.detach()), **{name: float(part.detach()) for name, part in parts.items()}}

    def predict(self, split: str) -> list[Instances]:
        self.model.eval()
        images = self.images[split]
        with torch.inference_mode():
            return instances_predict(
                self.model,
                images.pixels,
                images.scales,
                images.sizes,
                self.normalization,
                self.device,
                score=EVAL_SCORE,
                nms=NMS_DEFAULT,
                guide_of=images.guide,
            )

    def valid_map(self, predicted: list[Instances]) -> dict:
        images = self.images["valid"]
        return coco_map(
            images.truth_rows,
            [p.rows for p in predicted],
            len(self.config.labels),
            masks=(images.truth_masks, [p.masks for p in predicted]),
        )

    def finish(self, stopped_by: str) -> InstanceResult:
        last_state, predictions = self.predictions_finished()
        return InstanceResult(
            best_epoch=self.best_epoch,
            history=self.history,
            stopped_by=stopped_by,
            checkpoints={"best": checkpoint(self.config, self.best_state), "last": checkpoint(self.config, last_state)},
            predictions=predictions,
            skipped=self.skipped,
        )


# --- prediction ------------------------------------------------------------------------------


def instances_predict(
    model: InstanceNet,
    pixels: Sequence[np.ndarray],
    scales: Sequence[float],
    sizes: Sequence[tuple[int, int]],
    norm: tuple,
    device,
    *,
    score: float,
    nms: float,
    guide_of: Callable[[int], np.ndarray | None],
) -> list[Instances]:
    """Images decoded at the network's size -> their instances at the upright original's size (`sizes`, height and
    width), through the steps the offline bundle takes too (instance_masks.instances_found), each image's masks
    refined by its guide (`guide_of(index)`: images.upright_guide). Images are batched only with others of their
    padded shape, so an image's instances never depend on its neighbours."""
    dense, branch = DenseInstances(model), MaskBranch(model)
    out: list[Instances | None] = [None] * len(pixels)
    groups: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(pixels):
        groups.setdefault(padded_shape(image), []).append(index)
    for members in groups.values():
        for start in range(0, len(members), EVAL_BATCH):
            chosen = members[start : start + EVAL_BATCH]
            batch = network_input([pixels[i] for i in chosen], *norm).to(device)
            found = instances_found(
                dense(batch),
                branch,
                [pixels[i].shape[:2] for i in chosen],
                [scales[i] for i in chosen],
                [sizes[i] for i in chosen],
                score=score,
                nms=nms,
                guides=[guide_of(i) for i in chosen],
            )
            for index, instances in zip(chosen, found, strict=True):
                out[index] = instances
    return out


# --- checkpoints and inference ---------------------------------------------------------------


def checkpoint(config: InstanceConfig, state: dict) -> dict:
    """Everything needed to predict, in types torch.load(weights_only=True) accepts."""
    return {
        "format": CHECKPOINT_FORMAT,
        "backbone": config.backbone,
        "labels": list(config.labels),
        "model_size": config.model_size,
        "image_size": config.size,
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }


class InstanceSegmenter:
    """A loaded checkpoint that turns image bytes into instances."""

    def __init__(self, saved: dict, device=None):
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("This file is not a Sightline instance segmentation checkpoint.")
        self.labels: list[str] = list(saved["labels"])
        self.image_size = int(saved["image_size"])
        self.device = device or runtime.device_choose()
        model = saved_built(build_model, saved)
        model.load_state_dict(saved["state_dict"])
        self.network = model.to(self.device).eval()
        self.normalization = normalization(saved["backbone"])

    def predict(self, images: Sequence[bytes], *, score: float, nms: float = NMS_DEFAULT) -> list[Instances]:
        decoded = [upright_resized(data, self.image_size) for data in images]
        sizes = [upright_size(data)[::-1] for data in images]
        with torch.inference_mode():
            return instances_predict(
                self.network,
                [pixels for pixels, _ in decoded],
                [scale for _, scale in decoded],
                sizes,
                self.normalization,
                self.device,
                score=score,
                nms=nms,
                guide_of=lambda index: upright_guide(images[index], self.image_size),
            )
