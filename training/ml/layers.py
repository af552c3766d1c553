"""Cutting a timm classifier into a frozen front and a trainable back, so the front runs once per image.

On a CPU a full fine-tune of EfficientNet-Lite0 at 224 px trains about 10 images a second on two
cores; computing the frozen stages once and training the last two stages and the head trains about
90 a second, and the head alone far more. `fine_tune` picks the cut:
- "all": nothing frozen; images are augmented every epoch (best on a GPU).
- "top": the last two stages (EfficientNet, MobileNet) or the last stage (ResNet) and the head train.
- "head": only the classifier trains, on pooled features (any timm backbone).
"""

from __future__ import annotations

import torch
from torch import nn

from training.ml.backbones import FINE_TUNE_CHOICES


class UnsupportedCut(ValueError):
    """This backbone cannot be cut where asked; the message names the choices that work."""


class _Front(nn.Module):
    def __init__(self, model: nn.Module, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        return x


class _Back(nn.Module):
    """The trainable stages, then the model's head rebuilt from its own modules: pooling, dropout, classifier."""

    def __init__(self, model: nn.Module, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.pool = model.global_pool
        self.dropout = nn.Dropout(getattr(model, "drop_rate", 0.0))
        self.classifier = model.get_classifier()

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        return self.classifier(self.dropout(self.pool(x)))


class _PooledFeatures(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


def supports_top(model: nn.Module) -> bool:
    return _top_stages(model) is not None


def _top_stages(model: nn.Module) -> tuple[list[nn.Module], list[nn.Module]] | None:
    if all(
        hasattr(model, name) for name in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")
    ):  # EfficientNet, MobileNet
        blocks = list(model.blocks)
        return [model.conv_stem, model.bn1, *blocks[:-2]], [*blocks[-2:], model.conv_head, model.bn2]
    if all(hasattr(model, name) for name in ("conv1", "bn1", "act1", "maxpool", "layer3", "layer4")):  # ResNet
        front = [model.conv1, model.bn1, model.act1, model.maxpool, model.layer1, model.layer2, model.layer3]
        return front, [model.layer4]
    return None


def split(model: nn.Module, fine_tune: str) -> tuple[nn.Module | None, nn.Module]:
    """(frozen front or None, trainable back); front then back computes the model's logits."""
    if fine_tune == "all":
        return None, model
    if fine_tune == "head":
        return _PooledFeatures(model), model.get_classifier()
    if fine_tune == "top":
        stages = _top_stages(model)
        if stages is None:
            raise UnsupportedCut(
                f"fine_tune=top works with EfficientNet, MobileNet and ResNet backbones, not {type(model).__name__}; "
                "choose all or head."
            )
        return _Front(model, stages[0]), _Back(model, stages[1])
    raise UnsupportedCut(f"fine_tune must be one of {', '.join(FINE_TUNE_CHOICES)}.")


def freeze(front: nn.Module | None, back: nn.Module) -> None:
    """Gradients only for the back; the front stays in eval mode, so its batch-norm statistics stay ImageNet's."""
    if front is None:
        return
    for parameter in front.parameters():
        parameter.requires_grad_(False)
    front.eval()
    for parameter in back.parameters():
        parameter.requires_grad_(True)


def trainable_parameters(back: nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in back.parameters() if p.requires_grad]


class EarlyFrozen(nn.Module):
    """A network around a timm backbone (`self.body`, created with features) whose earliest stages can be frozen.

    Detectors and segmenters take the backbone's feature levels; their pretrained early stages stay as ImageNet
    trained them (as Detectron's FREEZE_AT=2), and the backbone's batch norm keeps its ImageNet statistics."""

    pretrained_norms = False  # set by freeze_early

    def freeze_early(self) -> int:
        """Freeze the stages at strides 2 and 4: their ImageNet features are generic, and their backward pass, at
        the highest resolution, is the costliest. Returns the tensors frozen."""
        info = self.body.feature_info
        first_trained = info[2]["module"] + "." if len(info) > 2 else None
        frozen = 0
        for name, parameter in self.body.named_parameters():
            if first_trained is None or name.startswith(first_trained):
                break
            parameter.requires_grad_(False)
            frozen += 1
        self.pretrained_norms = True
        return frozen

    def train(self, mode: bool = True):
        """A pretrained backbone's batch norm keeps its ImageNet statistics: batches of a few images estimate them
        badly."""
        super().train(mode)
        if self.pretrained_norms:
            for module in self.body.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self
