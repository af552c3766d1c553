"""Segment Anything from a checkpoint the user provides: load, embed an image once, decode prompts fast.

The architecture is read from the checkpoint's own tensor shapes, so the official vit_b, vit_l
and vit_h files and the tests' tiny model load through the same code. Weights are memory-mapped
(`torch.load(mmap=True)` into a model built on the meta device), so loading takes milliseconds
and processes share one copy in the page cache. Embedding (the heavy image encoder) and decoding
(the light prompt encoder and mask decoder) are separate calls: the caller caches embeddings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from segment_anything.utils.onnx import SamOnnxModel as SamOnnxModelBase

from annotations.assist.prompts import Prompt, PromptError, stroke_points

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
DECODER_HEADS = 8  # SAM's two-way transformer; head counts leave no trace in weight shapes
OFFICIAL = {(768, 12): "vit_b", (1024, 24): "vit_l", (1280, 32): "vit_h"}
MAX_POINTS_PER_SIDE = 16  # SAM was trained with few clicks; a long stroke becomes at most this many


class SamCheckpointError(RuntimeError):
    """The checkpoint cannot be used; the message says why, for the person who configured it."""


@dataclass(frozen=True)
class SamArchitecture:
    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    window_size: int
    mlp_ratio: float
    image_size: int
    patch_size: int
    prompt_dim: int
    mask_in_chans: int
    decoder_depth: int
    decoder_mlp_dim: int
    iou_head_depth: int
    iou_head_hidden_dim: int
    multimask_outputs: int

    @property
    def name(self) -> str:
        return OFFICIAL.get((self.embed_dim, self.depth), f"custom ({self.embed_dim}-d, {self.depth} blocks)")


def architecture_of(state: dict[str, torch.Tensor]) -> SamArchitecture:
    """What model these tensors belong to, from their shapes alone."""
    try:
        embed_dim, _, patch, _ = state["image_encoder.patch_embed.proj.weight"].shape
        grid = state["image_encoder.pos_embed"].shape[1]
        depth = _count(state, r"image_encoder\.blocks\.(\d+)\.")
        rel_sizes = [state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape for i in range(depth)]
        head_dim = rel_sizes[0][1]
        windows = {(size + 1) // 2 for size, _ in rel_sizes if (size + 1) // 2 != grid}
        return SamArchitecture(
            embed_dim=embed_dim,
            depth=depth,
            num_heads=embed_dim // head_dim,
            global_attn_indexes=tuple(i for i, (size, _) in enumerate(rel_sizes) if (size + 1) // 2 == grid),
            window_size=windows.pop() if windows else 0,
            mlp_ratio=state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] / embed_dim,
            image_size=grid * patch,
            patch_size=patch,
            prompt_dim=state["image_encoder.neck.0.weight"].shape[0],
            mask_in_chans=state["prompt_encoder.mask_downscaling.3.weight"].shape[0],
            decoder_depth=_count(state, r"mask_decoder\.transformer\.layers\.(\d+)\."),
            decoder_mlp_dim=state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
            iou_head_depth=_count(state, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight"),
            iou_head_hidden_dim=state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
            multimask_outputs=state["mask_decoder.mask_tokens.weight"].shape[0] - 1,
        )
    except (KeyError, IndexError) as exc:
        raise SamCheckpointError(f"This is not a Segment Anything checkpoint (no tensor {exc}).") from None


def _count(state: dict, pattern: str) -> int:
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    if not found:
        raise KeyError(pattern)
    return max(found) + 1


def sam_build(arch: SamArchitecture):
    """The model for an architecture, built from segment-anything's own classes (weights uninitialised)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = arch.image_size // arch.patch_size
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.depth,
            embed_dim=arch.embed_dim,
            img_size=arch.image_size,
            mlp_ratio=arch.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=arch.num_heads,
            patch_size=arch.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=arch.global_attn_indexes,
            window_size=arch.window_size,
            out_chans=arch.prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.image_size, arch.image_size),
            mask_in_chans=arch.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=arch.multimask_outputs,
            transformer=TwoWayTransformer(
                depth=arch.decoder_depth,
                embedding_dim=arch.prompt_dim,
                mlp_dim=arch.decoder_mlp_dim,
                num_heads=DECODER_HEADS,
            ),
            transformer_dim=arch.prompt_dim,
            iou_head_depth=arch.iou_head_depth,
            iou_head_hidden_dim=arch.iou_head_hidden_dim,
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )


def checkpoint_read(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, memory-mapped where the file allows it. Never unpickles code."""
    path = Path(path)
    if not path.is_file():
        raise SamCheckpointError(f"{path} does not exist or is not a file.")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # an old, non-zip file
    except PermissionError:
        raise SamCheckpointError(f"{path} cannot be read (permission denied).") from None
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        raise SamCheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint ({type(exc).__name__}: {exc})."
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SamCheckpointError(f"{path} holds no plain state dict of tensors.")
    return state


def checkpoint_check(state: dict[str, torch.Tensor]) -> SamArchitecture:
    """The architecture, once every tensor matches the model it implies by name and shape."""
    arch = architecture_of(state)
    with torch.device("meta"):
        expected = {k: v.shape for k, v in sam_build(arch).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k] != state[k].shape)
    for problem, keys in (("is missing", missing), ("has unexpected", unexpected), ("has wrongly shaped", wrong)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise SamCheckpointError(f"The {arch.name} checkpoint {problem} tensors: {', '.join(keys[:3])}{more}.")
    return arch


class SamEngine:
    """One loaded model. `embed` is the slow half (seconds on a CPU), `decode` the fast half."""

    def __init__(self, state: dict[str, torch.Tensor], *, device: str | torch.device = "cpu", decoder: str = ""):
        from segment_anything.utils.transforms import ResizeLongestSide

        self.arch = checkpoint_check(state)
        with torch.device("meta"):
            model = sam_build(self.arch)
        model.load_state_dict(state, assign=True)
        # Non-persistent buffers are not in the checkpoint; make them real.
        model.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), False)
        model.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), False)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.transform = ResizeLongestSide(self.arch.image_size)
        decoder = decoder or ("onnx" if self.device.type == "cpu" else "torch")
        self.decoder = decoder_onnx(self.model) if decoder == "onnx" else decoder_torch(self.model, self.device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str | torch.device = "cpu", decoder: str = "") -> SamEngine:
        return cls(checkpoint_read(path), device=device, decoder=decoder)

    @torch.inference_mode()
    def embed(self, rgb: np.ndarray) -> np.ndarray:
        """The image embedding (prompt_dim x grid x grid, float16) of an HxWx3 uint8 image."""
        resized = self.transform.apply_image(rgb)
        pixels = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)[None].float()
        features = self.model.image_encoder(self.model.preprocess(pixels))
        return features[0].to(torch.float16).cpu().numpy()

    @torch.inference_mode()
    def decode(self, features: np.ndarray, prompt: Prompt, size: tuple[int, int]) -> tuple[np.ndarray, float]:
        """The mask (bool, `size` = (height, width)) and SAM's own quality estimate, for a prompt."""
        height, width = size
        spacing = max(prompt.width, prompt.height) / MAX_POINTS_PER_SIDE
        positive = _thin([stroke_points(s, spacing) for s in prompt.foreground])
        negative = _thin([stroke_points(s, spacing) for s in prompt.background])
        whole_image = prompt.box == (0, 0, width, height)
        if whole_image and not len(positive):
            raise PromptError("Mark some foreground, or draw a work area around the object.")
        # SAM's sparse prompt: clicks labelled 1 / 0, then the box as two corners labelled 2 and 3,
        # or, with no box, a padding point labelled -1 (as its own predictor pads).
        points = np.concatenate([positive, negative, np.zeros((0, 2))])
        labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
        if whole_image:
            scaled = np.concatenate([self.transform.apply_coords(points, size), [[0.0, 0.0]]])
            labels = np.concatenate([labels, [-1]])
        else:
            corners = np.array(prompt.box, float).reshape(2, 2)
            scaled = self.transform.apply_coords(np.concatenate([points, corners]), size)
            labels = np.concatenate([labels, [2, 3]])
        low_res, quality = self.decoder(scaled[None].astype(np.float32), labels[None].astype(np.float32), features)
        # One clear prompt (a box, or a box with clicks) gets one mask; a lone click is ambiguous, so
        # SAM proposes three and the one it rates best wins (as its predictor's multimask output).
        lone_click = whole_image and len(positive) + len(negative) == 1
        best = 1 + int(quality[0, 1:].argmax()) if lone_click else 0
        return self._upscale(low_res[0, best], size), float(quality[0, best])

    def _upscale(self, logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Low-resolution logits to a full-size mask: padded square, cropped to the image, then resized."""
        height, width = size
        side = self.arch.image_size
        input_h, input_w = self.transform.get_preprocess_shape(height, width, side)
        square = cv2.resize(logits, (side, side), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(square[:input_h, :input_w], (width, height), interpolation=cv2.INTER_LINEAR) > 0


class LowResDecoder(SamOnnxModelBase):
    """Prompt encoder and mask decoder in one traceable module: (coords, labels, embedding) -> all masks' logits
    at low resolution and their predicted IoU. Upscaling is left to the caller, which needs only one mask."""

    def forward(self, point_coords: torch.Tensor, point_labels: torch.Tensor, image_embeddings: torch.Tensor):
        sparse = self._embed_points(point_coords, point_labels)
        dense = self.model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return self.model.mask_decoder.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )


def decoder_torch(model, device: torch.device):
    """Decoding with torch itself: the path on a GPU."""
    module = LowResDecoder(model, return_single_mask=False).eval()

    def run(coords: np.ndarray, labels: np.ndarray, features: np.ndarray):
        with torch.inference_mode():
            tensors = (torch.from_numpy(coords), torch.from_numpy(labels), torch.from_numpy(features)[None].float())
            masks, quality = module(*(t.to(device) for t in tensors))
        return masks.float().cpu().numpy(), quality.float().cpu().numpy()

    return run


def decoder_onnx(model):
    """Decoding with ONNX Runtime: the path on a CPU, where it is about a third faster than eager torch
    (SAM's authors export the decoder to ONNX for the same reason). Exported once, in memory."""
    import io
    import warnings

    import onnxruntime

    module = LowResDecoder(model, return_single_mask=False).eval()
    grid = model.image_encoder.img_size // model.image_encoder.patch_embed.proj.kernel_size[0]
    example = (
        torch.zeros(1, 3, 2),
        torch.tensor([[1.0, 2.0, 3.0]]),
        torch.zeros(1, model.prompt_encoder.embed_dim, grid, grid),
    )
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shapes taken as constants: they are constants
        torch.onnx.export(
            module,
            example,
            buffer,
            input_names=["point_coords", "point_labels", "image_embeddings"],
            output_names=["low_res_masks", "iou_predictions"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"point_coords": {1: "points"}, "point_labels": {1: "points"}},
        )
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def run(coords: np.ndarray, labels: np.ndarray, features: np.ndarray):
        feed = {
            "point_coords": coords,
            "point_labels": labels,
            "image_embeddings": np.asarray(features, np.float32)[None],
        }
        masks, quality = session.run(None, feed)
        return masks, quality

    return run


def _thin(groups: list[np.ndarray]) -> np.ndarray:
    """All points of one kind, evenly thinned to at most MAX_POINTS_PER_SIDE."""
    if not groups:
        return np.zeros((0, 2))
    points = np.concatenate(groups)
    if len(points) > MAX_POINTS_PER_SIDE:
        points = points[np.linspace(0, len(points) - 1, MAX_POINTS_PER_SIDE).round().astype(int)]
    return points
