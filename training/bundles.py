"""A model for offline use: one ZIP with an exported model, its label map, a README and a server script.

The model is a `torch.export` program (TorchScript is deprecated as of torch 2.14) that takes uint8
N x H x W x 3 pixels and does the normalisation and the softmax or sigmoid itself, so the bundle
needs torch, numpy and Pillow and nothing of Sightline.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path

import torch
from torch import nn

from training.downloads import safe_name
from training.ml import images as images_module
from training.models import ModelVersion
from training.predictions import classifier_load

BUNDLE_DIR = Path(__file__).resolve().parent / "bundle"


class _Packaged(nn.Module):
    def __init__(self, model: nn.Module, mean, std, multi_label: bool):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.multi_label = multi_label

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.permute(0, 3, 1, 2).float() / 255 - self.mean) / self.std
        logits = self.model(x)
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)


def model_bundle(*, model: ModelVersion, checkpoint: str) -> bytes:
    classifier = classifier_load(model.checkpoint_file(checkpoint).name)
    # A copy: the loaded classifier keeps answering predictions in other threads meanwhile.
    network = copy.deepcopy(classifier.model).cpu().to(memory_format=torch.contiguous_format)
    packaged = _Packaged(network, classifier.mean, classifier.std, model.multi_label).eval()
    example = torch.zeros(2, model.image_size, model.image_size, 3, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(packaged, (example,), dynamic_shapes={"pixels": {0: batch}})
    exported = io.BytesIO()
    torch.export.save(program, exported)
    thresholds = model.thresholds_for(checkpoint)
    meta = {
        "name": model.name,
        "project_id": model.project_id,
        "checkpoint": checkpoint,
        "task": model.task,
        "multi_label": model.multi_label,
        "labels": model.labels,
        "image_size": model.image_size,
        "thresholds": thresholds,
        "backbone": model.backbone,
    }
    readme = (
        (BUNDLE_DIR / "README.md")
        .read_text()
        .format(
            name=model.name,
            kind="multi-label" if model.multi_label else "single-label",
            backbone=model.backbone,
            image_size=model.image_size,
            checkpoint=checkpoint,
            epochs=model.epochs_trained,
            labels=", ".join(model.labels),
            project_id=model.project_id,
            count=len(model.labels),
            threshold_note="Each prediction also says whether its score reaches the label's threshold (`positive`)."
            if thresholds is not None
            else "Single-label scores add up to 1.",
        )
    )
    out = io.BytesIO()
    folder = f"{safe_name(model.name)}-{checkpoint}"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(f"{folder}/model.pt2", exported.getvalue())
        bundle.writestr(f"{folder}/model.json", json.dumps(meta, indent=2))
        bundle.writestr(f"{folder}/README.md", readme)
        bundle.writestr(f"{folder}/serve.py", (BUNDLE_DIR / "serve.py").read_text())
        bundle.writestr(f"{folder}/sightline_images.py", Path(images_module.__file__).read_text())
        bundle.writestr(f"{folder}/requirements.txt", f"torch=={torch.__version__.split('+')[0]}\nnumpy\npillow\n")
    return out.getvalue()
