"""Training and running image classifiers, single-label (softmax) or multi-label (sigmoid per label).

Plain torch: samples in, checkpoints and per-image scores out. The caller passes hooks that
report progress and say when to stop; nothing here knows about jobs or databases.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from training.ml import layers, runtime
from training.ml.backbones import DEFAULT_BACKBONE, create_backbone, normalization
from training.ml.images import ReadBytes, Sample, augment, decode_rgb, read_file, to_tensor
from training.ml.loop import Cancelled, Hooks, Loop, Progress

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
class TrainResult:
    best_epoch: int
    history: list[dict]
    stopped_by: str  # "epochs", "early stopping", "time limit" or "cancelled"
    checkpoints: dict[str, dict]  # "best" / "last" -> a checkpoint dict (torch.save it)
    scores: dict[str, dict[str, np.ndarray]]  # checkpoint -> split -> N x C probabilities


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
    run = _Run(config, train_samples, valid_samples, hooks or Hooks(), read, device or runtime.device_choose())
    run.prepare()
    return run.finish(run.run())


class _Run(Loop):
    """One training run: the model cut in two, its inputs (cached features or pixels), the optimiser, the history."""

    def __init__(self, config: ClassifierConfig, train_samples, valid_samples, hooks: Hooks, read: ReadBytes, device):
        super().__init__(
            epochs=config.epochs,
            batch_size=config.batch_size,
            time_limit_seconds=config.time_limit_seconds,
            hooks=hooks,
            train=len(train_samples),
        )
        self.config, self.device = config, device
        self.samples = {"train": train_samples, "valid": valid_samples}
        self.image_count = len(train_samples) + len(valid_samples)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.model = build_model(config).to(device).to(memory_format=torch.channels_last)
        self.front, self.back = layers.split(self.model, config.fine_tune)
        layers.freeze(self.front, self.back)
        self.mean, self.std = normalization(config.backbone)
        self.targets = {
            split: target_tensor(samples, len(config.labels), config.multi_label)
            for split, samples in self.samples.items()
        }
        budget = CACHE_BUDGET_BYTES // 2
        self.pixels = {
            split: _Pixels(samples, config.image_size, read, budget) for split, samples in self.samples.items()
        }
        self.features: dict[str, torch.Tensor | None] = {"train": None, "valid": None}
        self.prep_share = 0.15 if self.front is not None else 0.0
        self.best_loss, self.best_state, self.since_best = math.inf, None, 0
        self.criterion = loss_function(config.multi_label)
        steps_per_epoch = self.steps_per_epoch
        total = steps_per_epoch * config.epochs
        warmup = min(steps_per_epoch, max(1, total // 10))
        self.optimizer = torch.optim.AdamW(
            layers.trainable_parameters(self.back), lr=config.learning_rate, weight_decay=1e-4
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)),
        )
        self.scaler = runtime.grad_scaler(device)

    # inputs

    def images(self, split: str, indices: Sequence[int], augmented: bool) -> torch.Tensor:
        batch = [self.pixels[split].get(i) for i in indices]
        if augmented:
            batch = [augment(image, self.rng, flip=self.config.flip) for image in batch]
        return to_tensor(batch, self.mean, self.std).to(self.device)

    def inputs(self, split: str, indices: Sequence[int], training: bool = False) -> torch.Tensor:
        cached = self.features[split]
        if cached is not None:
            return cached[indices].to(self.device, non_blocking=True).float()
        return self.images(split, indices, training and self.config.augment and self.front is None)

    def prepare(self) -> None:
        """With a frozen front, run it once over every image; the decoded pixels are not needed after that."""
        if self.front is None:
            return
        total, done = sum(len(s) for s in self.samples.values()), 0
        for split, samples in self.samples.items():
            self.features[split], done = _front_outputs(
                self.front,
                lambda idx, s=split: self.images(s, idx, False),
                len(samples),
                self.device,
                self.hooks,
                done,
                total,
                self.prep_share,
                self.config,
            )
            self.pixels[split].cache = None
        self.hooks.log(f"Frozen stages computed once for {total} images in {time.monotonic() - self.started:.1f} s.")

    # training

    def _stop_early(self) -> str | None:
        if self.config.patience and self.since_best >= self.config.patience:
            return f"No better validation loss for {self.config.patience} epochs: stopping early."
        return None

    def _order(self) -> list[int]:
        self.back.train()
        return torch.randperm(len(self.samples["train"])).tolist()

    def _step(self, indices: list[int], epoch: int) -> dict[str, float]:
        x, y = self.inputs("train", indices, training=True), self.targets["train"][indices].to(self.device)
        with runtime.autocast(self.device):
            logits = self.back(x)
            loss = self.criterion(logits.float(), y)
        if not torch.isfinite(loss):
            raise ValueError(
                f"The loss became {float(loss.detach())} in epoch {epoch}: training diverged. "
                f"Lower the learning rate (it is {self.config.learning_rate:g})."
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        right = correct_count(logits.detach().float(), y, self.config.multi_label)
        return {"loss": float(loss.detach()), "accuracy": right / len(indices)}

    def _end_epoch(self, epoch: int, means: dict[str, float], partial: bool, started: float) -> None:
        """Validate, record the epoch, and keep the weights if they are the best so far.

        An epoch cut short (stop, time limit) is recorded as partial; it becomes the best model only
        when no full epoch exists, so a stopped run always has one.
        """
        valid_started = time.monotonic()
        valid_loss, valid_accuracy = _evaluate_loss(
            self.back, self.inputs, self.targets["valid"], self.criterion, self.config, self.device
        )
        if len(self.samples["valid"]):
            self.seconds_per_image = (time.monotonic() - valid_started) / len(self.samples["valid"])
        stats = EpochStats(
            epoch=epoch,
            train_loss=means.get("loss", 0.0),
            train_accuracy=means.get("accuracy", 0.0),
            valid_loss=valid_loss,
            valid_accuracy=valid_accuracy,
            learning_rate=self.schedule.get_last_lr()[0],
            seconds=time.monotonic() - started,
        )
        self.history.append({**asdict(stats), "partial": partial})
        score = valid_loss if valid_loss is not None else stats.train_loss
        if (score < self.best_loss and not partial) or self.best_state is None:
            self.best_loss, self.best_epoch, self.since_best = score, epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.since_best += 1
        self.hooks.log(_epoch_line(stats, self.best_epoch == epoch) + (" (cut short)" if partial else ""))
        self._report(epoch / self.config.epochs, epoch, stats.train_loss)

    # the end

    def finish(self, stopped_by: str) -> TrainResult:
        """Score every image with the last and the best weights (once, when they are the same epoch)."""
        last_state = copy.deepcopy(self.model.state_dict())
        scores = {"last": self._scores_all()}
        if self.best_epoch == len(self.history):
            scores["best"] = scores["last"]
        else:
            self.model.load_state_dict(self.best_state)
            scores["best"] = self._scores_all()
        return TrainResult(
            best_epoch=self.best_epoch,
            history=self.history,
            stopped_by=stopped_by,
            scores=scores,
            checkpoints={"best": checkpoint(self.config, self.best_state), "last": checkpoint(self.config, last_state)},
        )

    def _scores_all(self) -> dict[str, np.ndarray]:
        return {
            split: _scores(self.back, self.inputs, split, len(samples), self.config, self.device)
            for split, samples in self.samples.items()
        }


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
            hooks.progress(Progress(fraction=share * done / total, epoch=0, epochs=config.epochs))
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
        "format": CHECKPOINT_FORMAT,
        "backbone": config.backbone,
        "labels": list(config.labels),
        "multi_label": config.multi_label,
        "image_size": config.image_size,
        "mean": list(mean),
        "std": list(std),
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }


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
