"""A trained instance segmentation model as Sightline predicts with it and the offline bundle exports it: the network
up to where the boxes are chosen (DenseInstances) and the mask branch after RoIAlign (MaskBranch), each a module
that torch.export takes with dynamic sizes. What lies between and after them is instance_masks.py, shared by both.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from training.ml.detection_dense import exported_program, fcos_decoded
from training.ml.instance_masks import POOLED

if TYPE_CHECKING:
    from training.ml.instances import InstanceNet

MAX_BOXES = 4096  # per call of the mask branch: 100 boxes an image, batches of up to 8 images


class DenseInstances(nn.Module):
    """A trained model's network up to where the boxes are chosen: normalised pixels padded to a multiple of 32 in;
    per pyramid level every location's box and scores (as DenseFCOS), the pyramid's three finest levels (for the
    mask branch) and the semantic logits at the input's size out. What the offline bundle exports as model.pt2."""

    def __init__(self, model: InstanceNet):
        super().__init__()
        self.model = model  # its detector's head decodes the boxes: each weight is registered once, for torch.export

    def forward(self, x: torch.Tensor):
        features, semantic = self.model.features(x)
        levels = list(features.values())
        boxes, scores = fcos_decoded(self.model.detector, levels, x)
        return boxes, scores, levels[:3], semantic


class MaskBranch(nn.Module):
    """RoIAlign's pooled features per box -> 28 x 28 mask logits per label (the bundle's masks.pt2)."""

    def __init__(self, model: InstanceNet):
        super().__init__()
        self.head, self.predictor = model.mask_head, model.mask_predictor

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.head(pooled))


def programs(model: InstanceNet, image_size: int) -> tuple[torch.export.ExportedProgram, torch.export.ExportedProgram]:
    """The network (any batch, any padded size up to the image size, as detection_dense.exported_program) and the
    mask branch (any number of boxes from 1) as torch.export programs."""
    network = exported_program(DenseInstances(model), image_size)
    branch = copy.deepcopy(MaskBranch(model)).cpu().to(memory_format=torch.contiguous_format).eval()  # as exportable
    example = torch.zeros(2, model.detector.backbone.out_channels, POOLED, POOLED)
    boxes = torch.export.Dim("boxes", min=1, max=MAX_BOXES)
    with torch.no_grad():
        masks = torch.export.export(branch, (example,), dynamic_shapes={"pooled": {0: boxes}})
    return network, masks
