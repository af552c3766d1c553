"""What every training run shares, whatever it learns: epochs of batches, a stop between batches, a time limit
that keeps room to score every image at the end, progress with an ETA, and the answer to why it stopped.

A run subclasses Loop and supplies `_step` (one batch: its losses and anything else to average) and
`_end_epoch` (validate, record, keep the best weights).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    fraction: float  # of the whole run, 0..1
    epoch: int  # epochs completed
    epochs: int
    loss: float | None = None
    eta_seconds: float | None = None
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None


@dataclass
class Hooks:
    """progress() is called often (callers throttle); stop() is asked between batches."""

    progress: Callable[[Progress], None] = lambda progress: None
    stop: Callable[[], bool] = lambda: False
    log: Callable[[str], None] = lambda line: None


class Cancelled(Exception):
    """Stopped before the first epoch finished: there is no model to keep."""


class Loop:
    prep_share = 0.0  # of the progress bar, for the work before the first epoch

    def __init__(self, *, epochs: int, batch_size: int, time_limit_seconds: float | None, hooks: Hooks, train: int):
        self.epochs, self.batch_size, self.time_limit = epochs, batch_size, time_limit_seconds
        self.hooks, self.train_count = hooks, train
        self.started = time.monotonic()
        self.history: list[dict] = []
        self.best_epoch = 0
        self.seconds_per_image = 0.0  # inference, measured on validation: time kept to score every image at the end
        self.image_count = train
        self.steps_per_epoch = max(1, math.ceil(train / batch_size))

    def run(self) -> str:
        """Every epoch, unless something stops it; returns what did ("epochs", "early stopping", ...)."""
        for epoch in range(1, self.epochs + 1):
            interrupted = self.epoch(epoch)
            if interrupted:
                return interrupted
            reason = self._stop_early()
            if reason and epoch < self.epochs:
                self.hooks.log(reason)
                return "early stopping"
        return "epochs"

    def _stop_early(self) -> str | None:
        """Why training should stop early now (a line for the log), or None."""
        return None

    def cosine_schedule(self, optimizer):
        """A linear warm-up over two epochs (at most a tenth of the steps), then a cosine down to 1% of the rate.
        Call it when training starts: a run cut by its time limit follows the clock instead of the steps."""
        import torch

        self.steps = self.steps_per_epoch * self.epochs
        self.training_started = time.monotonic()
        warmup = min(self.steps_per_epoch * 2, max(1, self.steps // 10))
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: min(1.0, (step + 1) / warmup) * max(0.01, 0.5 * (1 + math.cos(math.pi * self._done(step)))),
        )

    def _done(self, step: int) -> float:
        """How far the cosine schedule has come: by steps, or by time when the time limit ends training first, so
        a run cut by its limit still ends at a low learning rate (then the run is repeatable only by steps)."""
        done = min(step, self.steps) / self.steps
        if self.time_limit:
            budget = 0.95 * max(1.0, self.time_limit - (self.training_started - self.started))
            done = max(done, (time.monotonic() - self.training_started) / budget)
        return min(done, 1.0)

    def _order(self) -> list[int]:
        raise NotImplementedError

    def _step(self, indices: list[int], epoch: int) -> dict[str, float]:
        """Train on one batch; "loss" and any other numbers, each a mean over the batch."""
        raise NotImplementedError

    def _end_epoch(self, epoch: int, means: dict[str, float], partial: bool, started: float) -> None:
        raise NotImplementedError

    def epoch(self, epoch: int) -> str | None:
        """Train one epoch and validate; returns why training must stop now, if it must."""
        started, order = time.monotonic(), self._order()
        seen, sums, interrupted = 0, {}, None
        for step, start in enumerate(range(0, len(order), self.batch_size)):
            indices = order[start : start + self.batch_size]
            for name, value in self._step(indices, epoch).items():
                sums[name] = sums.get(name, 0.0) + value * len(indices)
            seen += len(indices)
            self._report(
                ((epoch - 1) + (step + 1) / self.steps_per_epoch) / self.epochs, epoch - 1, sums["loss"] / seen
            )
            if self.hooks.stop():
                interrupted = "cancelled"
            elif self._out_of_time():
                interrupted = "time limit"
            if interrupted:
                break
        partial = seen < len(order)
        if interrupted == "cancelled" and partial and not self.history:
            raise Cancelled("Cancelled before the first epoch finished.")
        self._end_epoch(epoch, {name: value / max(seen, 1) for name, value in sums.items()}, partial, started)
        return interrupted

    def _out_of_time(self) -> bool:
        """Past the time limit, less the time scoring every image twice will take at the measured speed."""
        if self.time_limit is None:
            return False
        reserve = self.seconds_per_image * self.image_count * 2
        return time.monotonic() - self.started + reserve >= self.time_limit

    def _report(self, fraction: float, epoch: int, loss: float | None) -> None:
        elapsed = time.monotonic() - self.started
        self.hooks.progress(
            Progress(
                fraction=self.prep_share + (1 - self.prep_share) * fraction,
                epoch=epoch,
                epochs=self.epochs,
                loss=loss,
                history=self.history,
                best_epoch=self.best_epoch or None,
                eta_seconds=eta(elapsed, fraction, self.time_limit),
            )
        )


class NetworkLoop(Loop):
    """A Loop that trains one network (`self.model`) with AdamW on the cosine schedule, with a gradient scaler on a GPU,
    keeps the weights of the best validation score, and stops early after `patience_seconds` without a better one.
    A subclass builds its model, then calls optimiser_start."""

    prep_share = 0.1  # reading and resizing every image once
    metric = "score"  # what the early-stopping line names
    bytes_per_pixel = 3  # what the decoded images (and their targets) take in memory
    pixel_budget = 4 * 1024**3

    def __init__(self, config, *, train: int, valid: int, size: int, hooks: Hooks, device):
        """`config` has epochs, batch_size, time_limit_seconds and seed; refuses a run whose decoded images at
        `size` would not fit the pixel budget."""
        import numpy as np
        import torch

        super().__init__(
            epochs=config.epochs,
            batch_size=config.batch_size,
            time_limit_seconds=config.time_limit_seconds,
            hooks=hooks,
            train=train,
        )
        self.config, self.device = config, device
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        total = self.image_count = train + valid
        needed = total * size * size * self.bytes_per_pixel
        if needed > self.pixel_budget:
            raise MemoryError(
                f"{total} images at {size} px need {needed / 1024**3:.1f} GiB of memory while training: choose a "
                "smaller image size, or train on fewer images."
            )

    def prepared(self, done_before: int):
        """The progress callback for reading images, `done_before` of them already read."""
        return lambda done: self._report_prep((done_before + done) / max(self.image_count, 1))

    def optimiser_start(self, *, learning_rate: float, patience_seconds: float, device) -> None:
        import torch

        from training.ml import runtime

        self.learning_rate, self.patience_seconds = learning_rate, patience_seconds
        self.best_score, self.best_state, self.best_at = -math.inf, None, time.monotonic()
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=1e-4)
        self.schedule = self.cosine_schedule(self.optimizer)
        self.scaler = runtime.grad_scaler(device)

    def optimise(self, loss, epoch: int) -> None:
        """One step down `loss`: refused when it is no longer finite (training diverged), gradients clipped."""
        import torch

        if not torch.isfinite(loss):
            raise ValueError(
                f"The loss became {float(loss.detach())} in epoch {epoch}: training diverged. "
                f"Lower the learning rate (it is {self.learning_rate:g})."
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()

    def keep_if_best(self, epoch: int, score: float) -> None:
        """Keep this epoch's weights when its score is the best so far (or nothing is kept yet)."""
        import copy

        if score > self.best_score or self.best_state is None:
            self.best_score, self.best_epoch, self.best_at = score, epoch, time.monotonic()
            self.best_state = copy.deepcopy(self.model.state_dict())

    def _stop_early(self) -> str | None:
        waited, patience = time.monotonic() - self.best_at, self.patience_seconds
        if patience and waited >= patience:
            return f"No better validation {self.metric} for {waited / 60:.1f} minutes (patience {patience / 60:g}): stopping early."
        return None

    def _report_prep(self, fraction: float) -> None:
        self.hooks.progress(Progress(fraction=self.prep_share * fraction, epoch=0, epochs=self.epochs))


def eta(elapsed: float, fraction: float, limit: float | None) -> float | None:
    if fraction <= 0:
        return None
    remaining = elapsed / fraction * (1 - fraction)
    if limit is not None:
        remaining = min(remaining, max(0.0, limit - elapsed))
    return round(remaining, 1)
