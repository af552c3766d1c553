"""Training and running image classifiers, single-label (softmax) or multi-label (sigmoid per label).

Plain torch: samples in, checkpoints and per-image scores out. The caller passes hooks that
report progress and say when to stop; nothing here knows about jobs or databases.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from training.ml import layers, runtime
from training.ml.backbones import DEFAULT_BACKBONE, create_backbone, normalization
from training.ml.images import ReadBytes, Sample, augment, decode_rgb, read_file, to_tensor

CHECKPOINT_FORMAT = "sightline-classifier/1"
CACHE_BUDGET_BYTES = 4 * 1024**3  # frozen-stage outputs kept in memory, at half precision
EVAL_BATCH = 32  # the CPU runs EfficientNet fastest at 32 (44 images/s against 36 at 64)


@dataclass(frozen=True)
class ClassifierConfig:
    labels: tuple[str, ...]
    multi_label: bool = False
    backbone: str = DEFAULT_BACKBONE
    pretrained: bool = True
    image_size: int = 224
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.001
    fine_tune: str = "top"
    augment: bool = True
    flip: bool = True
    time_limit_seconds: float | None = None
    patience: int = 5
    seed: int = 0


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float
    valid_loss: float | None
    valid_accuracy: float | None
    learning_rate: float
    seconds: float


@dataclass
class Progress:
    phase: str  # "preparing" (computing frozen features) or "training"
    fraction: float  # of the whole run, 0..1
    epoch: int  # epochs completed
    epochs: int
    loss: float | None = None
    eta_seconds: float | None = None
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    message: str = ""


@dataclass
class Hooks:
    """progress() is called often (callers throttle); stop() is asked between batches."""

    progress: Callable[[Progress], None] = lambda progress: None
    stop: Callable[[], bool] = lambda: False
    log: Callable[[str], None] = lambda line: None


@dataclass
class TrainResult:
    best_epoch: int
    history: list[dict]
    stopped_by: str  # "epochs", "early stopping", "time limit" or "cancelled"
    checkpoints: dict[str, dict]  # "best" / "last" -> a checkpoint dict (torch.save it)
    scores: dict[str, dict[str, np.ndarray]]  # checkpoint -> split -> N x C probabilities


class Cancelled(Exception):
    """Stopped before the first epoch finished: there is no model to keep."""


# --- the model and its inputs ----------------------------------------------------------------


def build_model(config: ClassifierConfig) -> nn.Module:
    return create_backbone(config.backbone, pretrained=config.pretrained, num_classes=len(config.labels))


def target_tensor(samples: Sequence[Sample], num_classes: int, multi_label: bool) -> torch.Tensor:
    if not multi_label:
        return torch.tensor([s.targets[0] for s in samples], dtype=torch.long)
    hot = torch.zeros(len(samples), num_classes)
    for row, sample in enumerate(samples):
        hot[row, list(sample.targets)] = 1.0
    return hot


def loss_function(multi_label: bool) -> nn.Module:
    return nn.BCEWithLogitsLoss() if multi_label else nn.CrossEntropyLoss()


def probabilities(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=1)


def correct_count(logits: torch.Tensor, targets: torch.Tensor, multi_label: bool) -> float:
    """Single-label: images right. Multi-label: image-label pairs right at 0.5, divided by the labels."""
    if multi_label:
        return float(((logits > 0) == (targets > 0.5)).float().mean(dim=1).sum())
    return float((logits.argmax(dim=1) == targets).sum())


class _Pixels:
    """Decoded images at the training size, kept in memory while they fit, augmented on the way out."""

    def __init__(self, samples: Sequence[Sample], size: int, read: ReadBytes, budget: int):
        self.samples, self.size, self.read = samples, size, read
        self.cache: dict[int, np.ndarray] | None = {} if len(samples) * size * size * 3 <= budget else None

    def get(self, index: int) -> np.ndarray:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        image = decode_rgb(self.read(self.samples[index].source), self.size)
        if self.cache is not None:
            self.cache[index] = image
        return image


# --- training --------------------------------------------------------------------------------


def train(
    config: ClassifierConfig,
    train_samples: Sequence[Sample],
    valid_samples: Sequence[Sample],
    *,
    hooks: Hooks | None = None,
    read: ReadBytes = read_file,
    device=None,
) -> TrainResult:
    """Train, keep the best (lowest validation loss) and last weights, and score every image with both."""
    hooks = hooks or Hooks()
    device = device or runtime.device_choose()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    started = time.monotonic()
    model = build_model(config).to(device).to(memory_format=torch.channels_last)
    front, back = layers.split(model, config.fine_tune)
    layers.freeze(front, back)
    mean, std = normalization(config.backbone)
    num_classes = len(config.labels)
    y_train = target_tensor(train_samples, num_classes, config.multi_label)
    y_valid = target_tensor(valid_samples, num_classes, config.multi_label)
    pixels = {
        "train": _Pixels(train_samples, config.image_size, read, CACHE_BUDGET_BYTES // 2),
        "valid": _Pixels(valid_samples, config.image_size, read, CACHE_BUDGET_BYTES // 2),
    }

    def images(split: str, indices: Sequence[int], augmented: bool) -> torch.Tensor:
        batch = [pixels[split].get(i) for i in indices]
        if augmented:
            batch = [augment(image, rng, flip=config.flip) for image in batch]
        return to_tensor(batch, mean, std).to(device)

    prep_share = 0.15 if front is not None else 0.0
    features: dict[str, torch.Tensor | None] = {"train": None, "valid": None}
    if front is not None:
        total = len(train_samples) + len(valid_samples)
        done = 0
        for split, samples in (("train", train_samples), ("valid", valid_samples)):
            features[split], done = _front_outputs(
                front, lambda idx, s=split: images(s, idx, False), len(samples), device, hooks, done, total, prep_share,
                config,
            )
        hooks.log(f"Frozen stages computed once for {total} images in {time.monotonic() - started:.1f} s.")

    def inputs(split: str, indices: Sequence[int], training: bool) -> torch.Tensor:
        cached = features[split]
        if cached is not None:
            return cached[indices].to(device, non_blocking=True).float()
        return images(split, indices, training and config.augment and front is None)

    parameters = layers.trainable_parameters(back)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=1e-4)
    steps_per_epoch = max(1, math.ceil(len(train_samples) / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    warmup = min(steps_per_epoch, max(1, total_steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )  # fmt: skip
    scaler = runtime.grad_scaler(device)
    criterion = loss_function(config.multi_label)

    history: list[dict] = []
    best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
    stopped_by = "epochs"
    training_started = time.monotonic()
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.monotonic()
        back.train()
        order = torch.randperm(len(train_samples)).tolist()
        seen, loss_sum, correct = 0, 0.0, 0.0
        interrupted = None
        for step, start in enumerate(range(0, len(order), config.batch_size)):
            indices = order[start : start + config.batch_size]
            x, y = inputs("train", indices, True), y_train[indices].to(device)
            with runtime.autocast(device):
                logits = back(x)
                loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            seen += len(indices)
            loss_sum += float(loss.detach()) * len(indices)
            correct += correct_count(logits.detach().float(), y, config.multi_label)
            elapsed = time.monotonic() - training_started
            fraction = ((epoch - 1) + (step + 1) / steps_per_epoch) / config.epochs
            hooks.progress(Progress(
                phase="training", fraction=prep_share + (1 - prep_share) * fraction, epoch=epoch - 1,
                epochs=config.epochs, loss=loss_sum / seen, history=history, best_epoch=best_epoch or None,
                eta_seconds=_eta(elapsed, fraction, config.time_limit_seconds),
                message=f"Epoch {epoch} of {config.epochs}",
            ))  # fmt: skip
            if hooks.stop():
                interrupted = "cancelled"
                break
            if config.time_limit_seconds is not None and time.monotonic() - started >= config.time_limit_seconds:
                interrupted = "time limit"
                break
        if interrupted == "cancelled" and seen < len(order) and not history:
            raise Cancelled("Cancelled before the first epoch finished.")
        valid_loss, valid_accuracy = _evaluate_loss(back, inputs, y_valid, criterion, config, device)
        stats = EpochStats(
            epoch=epoch, train_loss=loss_sum / max(seen, 1), train_accuracy=correct / max(seen, 1),
            valid_loss=valid_loss, valid_accuracy=valid_accuracy, learning_rate=schedule.get_last_lr()[0],
            seconds=time.monotonic() - epoch_started,
        )  # fmt: skip
        history.append(asdict(stats))
        score = valid_loss if valid_loss is not None else stats.train_loss
        if score < best_loss:
            best_loss, best_epoch, since_best = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since_best += 1
        hooks.log(_epoch_line(stats, best_epoch == epoch))
        fraction = epoch / config.epochs
        hooks.progress(Progress(
            phase="training", fraction=prep_share + (1 - prep_share) * fraction, epoch=epoch, epochs=config.epochs,
            loss=stats.train_loss, history=history, best_epoch=best_epoch,
            eta_seconds=_eta(time.monotonic() - training_started, fraction, config.time_limit_seconds),
            message=f"Epoch {epoch} of {config.epochs}",
        ))  # fmt: skip
        if interrupted:
            stopped_by = interrupted
            break
        if config.patience and since_best >= config.patience and epoch < config.epochs:
            stopped_by = "early stopping"
            hooks.log(f"No better validation loss for {config.patience} epochs: stopping early.")
            break

    last_state = copy.deepcopy(model.state_dict())
    scores = {}
    for name, state in (("last", last_state), ("best", best_state)):
        model.load_state_dict(state)
        scores[name] = {
            "train": _scores(back, inputs, "train", len(train_samples), config, device),
            "valid": _scores(back, inputs, "valid", len(valid_samples), config, device),
        }
    return TrainResult(
        best_epoch=best_epoch, history=history, stopped_by=stopped_by,
        checkpoints={"best": checkpoint(config, best_state), "last": checkpoint(config, last_state)}, scores=scores,
    )  # fmt: skip


def _front_outputs(front, images_of, count, device, hooks, done, total, share, config):
    """Run the frozen stages over every image once; half precision keeps the cache small."""
    if count == 0:
        return None, done
    probe_shape = None
    chunks = []
    with torch.inference_mode():
        for start in range(0, count, EVAL_BATCH):
            indices = list(range(start, min(count, start + EVAL_BATCH)))
            with runtime.autocast(device):
                out = front(images_of(indices)).to("cpu", torch.float16)
            if probe_shape is None:
                probe_shape = out.shape[1:]
                if count * out[0].numel() * 2 > CACHE_BUDGET_BYTES // 2:
                    raise MemoryError(
                        f"The frozen stages' outputs for {count} images need "
                        f"{count * out[0].numel() * 2 / 1024**3:.1f} GiB; use fine_tune=all or head, or a smaller image size."
                    )
            chunks.append(out.contiguous(memory_format=torch.channels_last) if out.dim() == 4 else out)
            done += len(indices)
            hooks.progress(Progress(
                phase="preparing", fraction=share * done / total, epoch=0, epochs=config.epochs,
                message=f"Preparing features: {done} of {total} images",
            ))  # fmt: skip
            if hooks.stop():
                raise Cancelled("Cancelled while preparing features.")
    return torch.cat(chunks), done


def _evaluate_loss(back, inputs, targets, criterion, config, device) -> tuple[float | None, float | None]:
    if len(targets) == 0:
        return None, None
    back.eval()
    loss_sum, correct = 0.0, 0.0
    with torch.inference_mode():
        for start in range(0, len(targets), EVAL_BATCH):
            indices = list(range(start, min(len(targets), start + EVAL_BATCH)))
            y = targets[indices].to(device)
            with runtime.autocast(device):
                logits = back(inputs("valid", indices, False)).float()
            loss_sum += float(criterion(logits, y)) * len(indices)
            correct += correct_count(logits, y, config.multi_label)
    return loss_sum / len(targets), correct / len(targets)


def _scores(back, inputs, split: str, count: int, config, device) -> np.ndarray:
    back.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, count, EVAL_BATCH):
            indices = list(range(start, min(count, start + EVAL_BATCH)))
            with runtime.autocast(device):
                logits = back(inputs(split, indices, False)).float()
            out.append(probabilities(logits, config.multi_label).cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(config.labels)), np.float32)


def _eta(elapsed: float, fraction: float, limit: float | None) -> float | None:
    if fraction <= 0:
        return None
    remaining = elapsed / fraction * (1 - fraction)
    if limit is not None:
        remaining = min(remaining, max(0.0, limit - elapsed))
    return round(remaining, 1)


def _epoch_line(stats: EpochStats, best: bool) -> str:
    valid = (
        f"valid loss {stats.valid_loss:.4f} accuracy {stats.valid_accuracy:.3f}"
        if stats.valid_loss is not None
        else "no validation images"
    )
    return (
        f"Epoch {stats.epoch}: train loss {stats.train_loss:.4f} accuracy {stats.train_accuracy:.3f}, {valid}, "
        f"{stats.seconds:.1f} s{' (best so far)' if best else ''}"
    )


# --- checkpoints and inference ---------------------------------------------------------------


def checkpoint(config: ClassifierConfig, state: dict) -> dict:
    """Everything needed to predict, in types torch.load(weights_only=True) accepts."""
    mean, std = normalization(config.backbone)
    return {
        "format": CHECKPOINT_FORMAT, "backbone": config.backbone, "labels": list(config.labels),
        "multi_label": config.multi_label, "image_size": config.image_size, "mean": list(mean), "std": list(std),
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }  # fmt: skip


class Classifier:
    """A loaded checkpoint that turns image bytes into per-label probabilities."""

    def __init__(self, saved: dict, device=None):
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("This file is not a Sightline classifier checkpoint.")
        self.labels: list[str] = list(saved["labels"])
        self.multi_label: bool = bool(saved["multi_label"])
        self.image_size: int = int(saved["image_size"])
        self.mean, self.std = tuple(saved["mean"]), tuple(saved["std"])
        self.device = device or runtime.device_choose()
        model = create_backbone(saved["backbone"], pretrained=False, num_classes=len(self.labels))
        model.load_state_dict(saved["state_dict"])
        self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()

    @classmethod
    def load(cls, path, device=None) -> Classifier:
        return cls(torch.load(path, map_location="cpu", weights_only=True), device=device)

    def predict(self, images: Sequence[bytes]) -> np.ndarray:
        """N x C probabilities (rows sum to 1 for single-label models)."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), EVAL_BATCH):
                batch = [decode_rgb(data, self.image_size) for data in images[start : start + EVAL_BATCH]]
                with runtime.autocast(self.device):
                    logits = self.model(to_tensor(batch, self.mean, self.std).to(self.device)).float()
                out.append(probabilities(logits, self.multi_label).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)
