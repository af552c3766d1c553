"""Line charts as SVG geometry for templates: learning curves and precision-recall curves, drawn server-side.

No JavaScript charting library: the numbers become polyline points in a fixed viewBox, and the
template (training/chart.html) draws axes, lines, a legend and markers. htmx re-renders the
chart whenever its inputs change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH, HEIGHT = 520, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 36
COLORS = {"train": "#2f6fed", "valid": "#e08a00"}


@dataclass
class Series:
    name: str
    color: str
    points: str  # "x,y x,y ..." in SVG coordinates
    dots: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, title


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    markers: list[tuple[float, str]] = field(default_factory=list)  # vertical red lines: x, title
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


class _Scale:
    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]):
        (self.x0, self.x1), (self.y0, self.y1) = x_range, y_range

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1
        return round(LEFT + (value - self.x0) / span * (WIDTH - LEFT - RIGHT), 1)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1
        return round(HEIGHT - BOTTOM - (value - self.y0) / span * (HEIGHT - TOP - BOTTOM), 1)

    def points(self, pairs) -> str:
        return " ".join(f"{self.x(x)},{self.y(y)}" for x, y in pairs)


def _ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    values = [low + i * step for i in range(count)]
    return sorted({round(v) for v in values}) if integer else values


def _label(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 and abs(value) >= 1 else f"{value:.2g}"


# Enough colours for the most lines a chart draws (an instance model's six losses) before any repeats.
PALETTE = ("#2f6fed", "#e08a00", "#1f8a4c", "#9b59b6", "#c7362f", "#0f9fb3", "#b8860b", "#5a6470")


def learning_curve(history: list[dict], metric: str, *, best_epoch: int | None, title: str) -> Chart:
    """Train and validation `metric` ("loss", "accuracy", "map50") per epoch, a red line at the best epoch."""
    lines = {split: f"{split}_{metric}" for split in ("train", "valid")}
    return history_chart(history, lines, best_epoch=best_epoch, title=title, y_label=metric, unit=metric != "loss")


def history_chart(
    history: list[dict], lines: dict[str, str], *, best_epoch: int | None, title: str, y_label: str, unit: bool
) -> Chart:
    """One line per entry of `lines` (its name -> the history key, "a.b" for a nested one) against the epoch; a
    0-1 axis when `unit`, else from 0 to the largest value."""

    def value(entry: dict, key: str):
        for part in key.split("."):
            entry = entry.get(part) if isinstance(entry, dict) else None
        return entry

    epochs = [entry["epoch"] for entry in history]
    values = {
        name: [(e["epoch"], value(e, key)) for e in history if value(e, key) is not None] for name, key in lines.items()
    }
    ys = [y for pairs in values.values() for _, y in pairs]
    if unit:
        y_range = (min([*ys, 1.0]) if ys else 0.0, 1.0)
        y_range = (max(0.0, y_range[0] - 0.02), 1.0)
    else:
        y_range = (0.0, max(ys) * 1.05 if ys else 1.0)
    x_range = (1, max(epochs)) if len(epochs) > 1 else (0, max(epochs or [1]))
    scale = _Scale(x_range, y_range)
    series = [
        Series(
            name=name,
            color=COLORS.get(name, PALETTE[n % len(PALETTE)]),
            points=scale.points(pairs),
            dots=[(scale.x(x), scale.y(y), f"epoch {x}: {name} {y:.4f}") for x, y in pairs],
        )
        for n, (name, pairs) in enumerate(values.items())
        if pairs
    ]
    markers = [(scale.x(best_epoch), f"best model: epoch {best_epoch}")] if best_epoch else []
    return Chart(
        title=title,
        x_label="epoch",
        y_label=y_label,
        series=series,
        x_ticks=[(scale.x(v), _label(v)) for v in _ticks(*x_range, count=min(6, max(2, len(epochs))), integer=True)],
        y_ticks=[(scale.y(v), _label(v)) for v in _ticks(*y_range)],
        markers=markers,
    )


def detection_curves(history: list[dict], best_epoch: int | None, *, masks: bool = False) -> list[Chart]:
    """A detector's (or, `masks`, an instance segmentation model's) validation mAP (and a segmentation head's mIoU)
    and its training losses, each part of the loss a line of its own."""
    parts = sorted({name for entry in history for name in entry.get("losses", {})})
    losses = {"total": "train_loss", **{name.replace("bbox_", "box "): f"losses.{name}" for name in parts}}
    validation = {"mAP@0.5": "valid_map50", "mAP@[.5:.95]": "valid_map"}
    pixels = any("valid_miou" in entry for entry in history)  # a detector with a segmentation head (ml/heads.py)
    if pixels:
        validation["mIoU (segmentation head)"] = "valid_miou"
    return [
        history_chart(
            history,
            validation,
            best_epoch=best_epoch,
            title="Validation mask mAP" if masks else "Validation mAP and mIoU" if pixels else "Validation mAP",
            y_label="mAP",
            unit=True,
        ),
        history_chart(history, losses, best_epoch=best_epoch, title="Training losses", y_label="loss", unit=False),
    ]


def segmentation_curves(history: list[dict], best_epoch: int | None) -> list[Chart]:
    """A semantic segmentation model's validation mIoU and pixel accuracy, and its training loss."""
    return [
        history_chart(
            history,
            {"mIoU": "valid_miou", "pixel accuracy": "valid_pixel_accuracy"},
            best_epoch=best_epoch,
            title="Validation mIoU",
            y_label="mIoU",
            unit=True,
        ),
        history_chart(
            history, {"train": "train_loss"}, best_epoch=best_epoch, title="Training loss", y_label="loss", unit=False
        ),
    ]


def pr_curve(points: list[dict], *, threshold: float | None, title: str) -> tuple[Chart, list[dict]]:
    """Precision against recall; a red dashed line at the point the threshold gives.

    Also returns the points in SVG coordinates with their thresholds, for the click that picks one.
    """
    scale = _Scale((0, 1), (0, 1.02))
    pairs = [(p["recall"], p["precision"]) for p in points]
    clickable = [
        {"x": scale.x(p["recall"]), "y": scale.y(p["precision"]), "t": round(p["threshold"], 4)} for p in points
    ]
    markers = []
    if threshold is not None and points:
        at = min(points, key=lambda p: (abs(p["threshold"] - threshold), -p["recall"]))
        markers.append(
            (
                scale.x(at["recall"]),
                f"threshold {threshold:.3f}: precision {at['precision']:.3f}, recall {at['recall']:.3f}",
            )
        )
    ticks = [0, 0.25, 0.5, 0.75, 1]
    chart = Chart(
        title=title,
        x_label="recall",
        y_label="precision",
        series=[Series(name="precision-recall", color=COLORS["train"], points=scale.points(pairs))],
        x_ticks=[(scale.x(v), _label(v)) for v in ticks],
        y_ticks=[(scale.y(v), _label(v)) for v in ticks],
        markers=markers,
    )
    return chart, clickable
