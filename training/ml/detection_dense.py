"""A trained FCOS as Sightline predicts with it and the offline bundle exports it: the network without its transform
and its selection (DenseFCOS), images batched by their padded shape, a copy that torch.export takes with any
input size, and that program in ONNX, which ONNX Runtime runs twice as fast as torch on one CPU thread."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from training.ml.boxes import MIN_SIDE, STRIDE, boxes_select, network_input, padded_shape

EVAL_BATCH = 8


class DenseFCOS(nn.Module):
    """A trained FCOS without its transform and its selection: normalised pixels padded to a multiple of 32 in; per
    pyramid level, every location's decoded box (corners at the input's pixels) and per-label scores out. What the
    offline bundle exports, and what Sightline predicts with, so both select boxes from the same numbers
    (training.ml.boxes.boxes_select)."""

    def __init__(self, fcos: nn.Module):
        super().__init__()
        self.backbone, self.head = fcos.backbone, fcos.head
        self.anchor_generator, self.box_coder = fcos.anchor_generator, fcos.box_coder

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return self.decoded(list(self.backbone(x).values()), x)

    def decoded(self, features: list[torch.Tensor], x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return fcos_decoded(self, features, x)


def fcos_decoded(fcos: nn.Module, features: list[torch.Tensor], x: torch.Tensor):
    """An FCOS head (`fcos`: its head, anchor generator and box coder) over the pyramid's levels (the backbone's
    output for `x`) -> per level, every location's decoded box and per-label scores."""
    from torchvision.models.detection.image_list import ImageList

    outputs = fcos.head(features)
    size = (x.shape[-2], x.shape[-1])
    anchors = fcos.anchor_generator(ImageList(x[:1], [size]), features)[0]  # the same for every image
    boxes = fcos.box_coder.decode(outputs["bbox_regression"], anchors)
    scores = torch.sqrt(torch.sigmoid(outputs["cls_logits"]) * torch.sigmoid(outputs["bbox_ctrness"]))
    counts = [f.shape[2] * f.shape[3] for f in features]
    return list(boxes.split(counts, dim=1)), list(scores.split(counts, dim=1))


class _FixedSamePadding(nn.Module):
    """A TF-"same" convolution of timm's, with the padding it computes for inputs whose sides are multiples of its
    stride: then the padding is the same for every input size, the same numbers as the original computes."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        pads = [
            max((k - 1) * d + 1 - s, 0) for k, s, d in zip(conv.kernel_size, conv.stride, conv.dilation, strict=True)
        ]
        self.padding = (pads[1] // 2, pads[1] - pads[1] // 2, pads[0] // 2, pads[0] - pads[0] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        return nn.functional.conv2d(
            nn.functional.pad(x, self.padding), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups
        )


def exportable(network: nn.Module) -> nn.Module:
    """A copy of a network over a timm backbone (a DenseFCOS, a segmentation network) for torch.export with any input
    height and width (multiples of 32): timm's TF-"same" padding, computed from each input's size, would make the
    exporter reason about every layer's size; fixed, it need not."""
    from timm.layers.conv2d_same import Conv2dSame

    # Contiguous weights: torch.export saves channels-last ones with a warning that they may not load right.
    copied = copy.deepcopy(network).cpu().to(memory_format=torch.contiguous_format).eval()
    for module in list(copied.modules()):
        for name, child in module.named_children():
            if isinstance(child, Conv2dSame):
                setattr(module, name, _FixedSamePadding(child))
    return copied


def exported_program(network: nn.Module, image_size: int) -> torch.export.ExportedProgram:
    """The network (one input, `x`) as a torch.export program for any batch and any height and width that are
    multiples of 32 from 160 up to the image size (rounded up to 32)."""
    most, least = -(-image_size // STRIDE), MIN_SIDE // STRIDE
    height, width = torch.export.Dim("height", min=least, max=most), torch.export.Dim("width", min=least, max=most)
    example = torch.zeros(2, 3, STRIDE * most, STRIDE * (most - 1))
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=256), 2: STRIDE * height, 3: STRIDE * width}}
    with torch.no_grad(), warnings.catch_warnings():  # not inference_mode: torch.onnx cannot take inference tensors
        # torchvision's anchor generator keeps its per-level cell anchors as plain attributes: constants, as wanted.
        warnings.filterwarnings("ignore", message="The tensor attributes self.anchor_generator.cell_anchors")
        return torch.export.export(exportable(network), (example,), dynamic_shapes=shapes)


def onnx_exports(networks: Sequence[DenseFCOS], image_size: int) -> list[bytes]:
    """Networks of one architecture (a run's best and last) as optimised ONNX models with the exported program's
    dynamic sizes. Exporting and translating take about a minute on 2 cores, so it happens once, for the first
    network; each network's weights then go into a copy of the unoptimised graph, which is optimised (constant
    folding, batch norm into convolutions) on its own: the optimised graph no longer has the weights' names."""
    import onnx_ir
    import torch.onnx

    program = exported_program(networks[0], image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        translated = torch.onnx.export(program, dynamo=True, optimize=False, verbose=False, input_names=["x"])
    used = set(translated.model.graph.initializers)  # not the backbone's unused head, nor batch counters
    out = []
    for network in networks:
        translated.apply_weights({k: v for k, v in exportable(network).state_dict().items() if k in used})
        optimised = torch.onnx.ONNXProgram(onnx_ir.from_proto(translated.model_proto), None)
        optimised.optimize()
        out.append(optimised.model_proto.SerializeToString())
    return out


class OnnxDense:
    """An ONNX export of a DenseFCOS in ONNX Runtime on the CPU, called as the network is: the same outputs (within
    float rounding: 1e-3 px), in half the time on one thread."""

    def __init__(self, model: bytes, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if threads > 1:  # spinning threads would take cores from the web's other processes and from training
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        outputs = [torch.from_numpy(o) for o in self.session.run(None, {"x": x.numpy()})]
        levels = len(outputs) // 2
        return outputs[:levels], outputs[levels:]


def dense_predict(
    network: DenseFCOS | Callable, pixels: Sequence[np.ndarray], mean, std, device, *, score: float, nms: float
) -> list[np.ndarray]:
    """Images decoded at the network's size -> per image, K x 6 corner rows at that size (boxes_select's). Images
    are batched only with others of their padded shape, so an image's boxes never depend on its neighbours."""
    out: list[np.ndarray | None] = [None] * len(pixels)
    groups: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(pixels):
        groups.setdefault(padded_shape(image), []).append(index)
    for members in groups.values():
        for start in range(0, len(members), EVAL_BATCH):
            chosen = members[start : start + EVAL_BATCH]
            batch = network_input([pixels[i] for i in chosen], mean, std).to(device)
            level_boxes, level_scores = network(batch)
            for row, index in enumerate(chosen):
                height, width = pixels[index].shape[:2]
                out[index] = boxes_select(
                    [b[row] for b in level_boxes], [s[row] for s in level_scores], height, width, score=score, nms=nms
                )
    return out
