"""Training parameters per task: defaults, ranges and checks, shared by the API and the training form.

Ranges follow spec 004's ML Mode (epochs 1-500, batch 1-64, learning rate 0.00001-0.1, image sizes
224-640) and spec 000 (validation %, user-defined validation set, time limit, early stopping).
Defaults are chosen so a classification model trains in minutes on a CPU (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from training.ml.backbones import DEFAULT_BACKBONE, DETECTOR_SIZES, FINE_TUNE_CHOICES, weights_file

IMAGE_SIZES = (224, 320, 416, 512, 640)
SAVE_MARGIN_SECONDS = 600  # after the time limit: the last validation, scoring every image, saving


@dataclass(frozen=True)
class Parameter:
    name: str
    default: Any
    help: str
    kind: type = int
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    advanced: bool = False

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def widget(self) -> str:
        """How the training form asks for it."""
        if self.kind is bool:
            return "checkbox"
        if self.choices:
            return "select"
        return "text" if self.kind is str else "number"


CLASSIFICATION = [
    Parameter("epochs", 6, "Passes over the training images.", int, 1, 500),
    Parameter("batch_size", 32, "Images per training step; lower it if memory runs out.", int, 1, 64, advanced=True),
    Parameter(
        "learning_rate",
        0.001,
        "Step size of the optimizer (AdamW, cosine schedule).",
        float,
        0.00001,
        0.1,
        advanced=True,
    ),
    Parameter("image_size", 224, "Images are resized to this square size.", int, choices=IMAGE_SIZES, advanced=True),
    Parameter(
        "validation_percent",
        20,
        "Share of images held out for validation, stratified by label.",
        int,
        5,
        50,
        advanced=True,
    ),
    Parameter(
        "use_validation_set",
        False,
        "Validate on the images marked 'validation' instead of a percentage.",
        bool,
        advanced=True,
    ),
    Parameter("time_limit_minutes", 60, "Training stops after this long and keeps what it has.", float, 1, 10080),
    Parameter(
        "patience", 3, "Stop when validation loss has not improved for this many epochs (0: never).", int, 0, 100
    ),
    Parameter("backbone", DEFAULT_BACKBONE, "A timm model name.", str, advanced=True),
    Parameter("pretrained", True, "Start from ImageNet weights.", bool, advanced=True),
    Parameter(
        "fine_tune",
        "top",
        "top: train the last stages and the head on features computed once (fast on a CPU); "
        "all: train every layer with augmentation (best on a GPU); head: the classifier only.",
        str,
        choices=FINE_TUNE_CHOICES,
        advanced=True,
    ),
    Parameter("augment", True, "Random crops while training (fine_tune=all).", bool, advanced=True),
    Parameter("flip", True, "Random horizontal flips too (turn off for text, digits, arrows).", bool, advanced=True),
    Parameter("seed", 0, "Seeds the split and the training, for repeatable runs.", int, 0, 2**31 - 1, advanced=True),
]

MODEL_SIZE_CHOICES = tuple(DETECTOR_SIZES)
DETECTION = [
    Parameter("epochs", 30, "Passes over the training images.", int, 1, 500),
    Parameter("batch_size", 8, "Images per training step; lower it if memory runs out.", int, 1, 64, advanced=True),
    Parameter(
        "learning_rate",
        0.002,
        "Step size of the optimizer (AdamW, cosine schedule).",
        float,
        0.00001,
        0.1,
        advanced=True,
    ),
    Parameter(
        "model_size",
        "medium",
        "The input's longer side and the head's width. On 2 CPU cores a training step costs about: small (320 px) "
        "0.2 s, medium (416 px) 0.4 s, large (512 px) 0.75 s per image; large finds small objects best.",
        str,
        choices=MODEL_SIZE_CHOICES,
    ),
    Parameter(
        "image_size",
        0,
        "The longer side images are resized to; 0 takes the model size's.",
        int,
        choices=(0, *IMAGE_SIZES),
        advanced=True,
    ),
    *[p for p in CLASSIFICATION if p.name in ("validation_percent", "use_validation_set", "time_limit_minutes")],
    Parameter(
        "patience_minutes",
        15,
        "Stop when validation mAP@0.5 has not improved for this long (0: never).",
        float,
        0,
        10080,
    ),
    Parameter("backbone", DEFAULT_BACKBONE, "A timm model name.", str, advanced=True),
    Parameter("pretrained", True, "Start from ImageNet weights.", bool, advanced=True),
    Parameter("flip", True, "Random horizontal flips (turn off for text, digits, arrows).", bool, advanced=True),
    Parameter("seed", 0, "Seeds the split and the training, for repeatable runs.", int, 0, 2**31 - 1, advanced=True),
]

SEMANTIC_SEGMENTATION = [
    *[p for p in DETECTION if p.name in ("epochs", "batch_size", "learning_rate")],
    Parameter(
        "image_size",
        416,
        "The longer side images are resized to. On 2 CPU cores a training step costs about 0.05 s per image at "
        "224 px, 0.2 s at 416 px and 0.5 s at 640 px; larger keeps thin structures.",
        int,
        choices=IMAGE_SIZES,
    ),
    *[p for p in CLASSIFICATION if p.name in ("validation_percent", "use_validation_set", "time_limit_minutes")],
    Parameter(
        "patience_minutes",
        15,
        "Stop when validation mIoU has not improved for this long (0: never).",
        float,
        0,
        10080,
    ),
    *[p for p in DETECTION if p.name in ("backbone", "pretrained", "flip", "seed")],
]

INSTANCE_SEGMENTATION = [
    *[p for p in DETECTION if p.name not in ("patience_minutes", "backbone", "pretrained", "flip", "seed")],
    Parameter(
        "patience_minutes",
        15,
        "Stop when validation mask mAP@0.5 has not improved for this long (0: never).",
        float,
        0,
        10080,
    ),
    *[p for p in DETECTION if p.name in ("backbone", "pretrained", "flip", "seed")],
]

SEGMENTATION_HEAD = Parameter(
    "segmentation_head",
    False,
    "Spec 004's second head: a segmentation head on the detector's backbone learns every pixel's label from the "
    "painted masks, while the detection head learns boxes from rectangles and polygons. One model answers both.",
    bool,
    advanced=True,
)

LEARN_FROM_CHOICES = ("all", "shapes", "painted")
DETECTION_LEARN_FROM = Parameter(
    "learn_from",
    "all",
    "The objects whose boxes it learns: all (rectangles, polygons and painted masks), shapes (rectangles and "
    "polygons: spec 004's detection head) or painted (brush masks).",
    str,
    choices=LEARN_FROM_CHOICES,
    advanced=True,
)
SEMANTIC_LEARN_FROM = Parameter(
    "learn_from",
    "all",
    "The objects whose pixels it learns: all (polygons and painted masks), shapes (polygons) or painted (brush "
    "masks: spec 004's segmentation head).",
    str,
    choices=LEARN_FROM_CHOICES,
    advanced=True,
)

TASK_PARAMETERS = {
    "classification": CLASSIFICATION,
    "detection": [*DETECTION, DETECTION_LEARN_FROM, SEGMENTATION_HEAD],
    "semantic-segmentation": [*SEMANTIC_SEGMENTATION, SEMANTIC_LEARN_FROM],
    "instance-segmentation": INSTANCE_SEGMENTATION,
}


def input_size(parameters: dict) -> int:
    """The image size training runs at: the parameter, or (detection, 0) the model size's."""
    return parameters["image_size"] or DETECTOR_SIZES[parameters["model_size"]][0]  # detection's 0: its model size


def parameters_clean(task: str, raw: dict) -> dict:
    """Every parameter of the task, defaults filled in; a 400-ready ValidationError names each bad one."""
    if task not in TASK_PARAMETERS:
        available = " or ".join(TASK_PARAMETERS)
        raise ValidationError({"task": [f"Training {task!r} models is not available yet; use {available}."]})
    spec = {p.name: p for p in TASK_PARAMETERS[task]}
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(raw) - set(spec))
    for name in unknown:
        errors[name] = [f"Unknown parameter; {task} takes {', '.join(spec)}."]
    out = {}
    for name, parameter in spec.items():
        value = raw.get(name, parameter.default)
        try:
            out[name] = _coerce(parameter, value)
        except ValueError as exc:
            errors[name] = [str(exc)]
    if not errors:
        errors.update(_check_time_limit(out))
        for name, messages in _check_server_limits(out).items():
            errors.setdefault(name, messages)
    if not errors:
        errors.update(backbone_check(out))
    if not errors and out.get("segmentation_head") and out["learn_from"] != "all":
        errors["learn_from"] = [
            "A detector with a segmentation head learns from all objects: its detection head from rectangles and "
            "polygons, its segmentation head from painted masks. Leave learn_from at all."
        ]
    if not errors and (task in ("semantic-segmentation", "instance-segmentation") or out.get("segmentation_head")):
        errors.update(_strides_check(out["backbone"]))
    if errors:
        raise ValidationError(errors)
    return out


def _coerce(parameter: Parameter, value: Any) -> Any:
    if parameter.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "on", "off", "1", "0"}:
            return value.lower() in {"true", "on", "1"}
        raise ValueError("Must be true or false.")
    if parameter.kind is str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("Must be a non-empty string.")
        value = value.strip()
    else:
        if isinstance(value, bool):
            raise ValueError("Must be a number.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("Must be a number.") from None
        if parameter.kind is int and number != int(number):
            raise ValueError("Must be a whole number.")
        value = int(number) if parameter.kind is int else number
        if parameter.minimum is not None and not parameter.minimum <= value <= parameter.maximum:
            raise ValueError(f"Must be from {parameter.minimum:g} to {parameter.maximum:g}.")
    if parameter.choices is not None and value not in parameter.choices:
        raise ValueError(f"Must be one of {', '.join(str(c) for c in parameter.choices)}.")
    return value


def _check_time_limit(parameters: dict) -> dict[str, list[str]]:
    """Training must end (and evaluate and save) well before django-q2 kills the task."""
    from django.conf import settings

    most = (settings.Q_CLUSTER["timeout"] - SAVE_MARGIN_SECONDS) / 60
    if parameters["time_limit_minutes"] > most:
        return {
            "time_limit_minutes": [
                f"At most {most:g} minutes on this server: the worker stops any task after "
                f"{settings.Q_CLUSTER['timeout'] / 60:g} minutes (SIGHTLINE_TASK_TIMEOUT)."
            ]
        }
    return {}


def _check_server_limits(parameters: dict) -> dict[str, list[str]]:
    """What one job may cost on this server (SIGHTLINE_TRAIN_MAX_*), so one job cannot hold the workers for days."""
    from django.conf import settings

    errors = {}
    if parameters["epochs"] > settings.SIGHTLINE_TRAIN_MAX_EPOCHS:
        errors["epochs"] = [
            f"At most {settings.SIGHTLINE_TRAIN_MAX_EPOCHS} epochs on this server (SIGHTLINE_TRAIN_MAX_EPOCHS)."
        ]
    size = input_size(parameters)
    pixels = parameters["batch_size"] * size**2
    if pixels > settings.SIGHTLINE_TRAIN_MAX_BATCH_PIXELS:
        errors["batch_size"] = [
            f"A batch of {parameters['batch_size']} images of {size} px is {pixels:,} pixels, "
            f"more than this server's {settings.SIGHTLINE_TRAIN_MAX_BATCH_PIXELS:,} "
            "(SIGHTLINE_TRAIN_MAX_BATCH_PIXELS): lower the batch size or the image size."
        ]
    if parameters["time_limit_minutes"] > settings.SIGHTLINE_TRAIN_MAX_MINUTES:
        errors["time_limit_minutes"] = [
            f"At most {settings.SIGHTLINE_TRAIN_MAX_MINUTES} minutes on this server (SIGHTLINE_TRAIN_MAX_MINUTES)."
        ]
    return errors


def backbone_check(parameters: dict) -> dict[str, list[str]]:
    """A backbone timm does not know, or pretrained weights this machine lacks, fail before the job starts."""
    import timm

    name = parameters["backbone"]
    if not timm.is_model(name):
        return {"backbone": [f"timm has no model named {name!r}."]}
    if parameters["pretrained"] and weights_file(name) is None:
        return {
            "pretrained": [
                f"No pretrained weights for {name} on this server: put {name}.pth or {name}.safetensors in "
                f"SIGHTLINE_WEIGHTS_DIR, choose {DEFAULT_BACKBONE}, or turn pretrained off."
            ]
        }
    from django.conf import settings

    count, top = _architecture(name)
    if count > settings.SIGHTLINE_TRAIN_MAX_PARAMETERS:
        return {
            "backbone": [
                f"{name} has {count:,} parameters, more than this server's {settings.SIGHTLINE_TRAIN_MAX_PARAMETERS:,} "
                "(SIGHTLINE_TRAIN_MAX_PARAMETERS)."
            ]
        }
    if parameters.get("fine_tune") == "top" and not top:
        return {"fine_tune": [f"{name} cannot train only its top stages; choose all or head."]}
    return {}


def _strides_check(name: str) -> dict[str, list[str]]:
    """A segmentation head reads the backbone at strides 4, 8 and 32 (training/ml/segmentation.py)."""
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    reductions = {level["reduction"] for level in getattr(model, "feature_info", [])}
    missing = [stride for stride in (4, 8, 32) if stride not in reductions]
    if missing:
        return {
            "backbone": [
                f"{name} has no features at stride {', '.join(map(str, missing))}: a segmentation model reads "
                "strides 4, 8 and 32 (ResNet, EfficientNet, MobileNet, ConvNeXt have them)."
            ]
        }
    return {}


def _architecture(name: str) -> tuple[int, bool]:
    """The backbone's parameter count and whether it can train only its top stages, from its architecture
    alone: it is built on the meta device, which allocates no weights, however large."""
    import timm
    import torch

    from training.ml.layers import supports_top

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=2)
        return sum(p.numel() for p in model.parameters()), supports_top(model)
