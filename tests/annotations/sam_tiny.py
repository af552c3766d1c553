"""A tiny Segment Anything (about 0.1 M parameters, random weights) built from segment-anything's own
classes and saved as a checkpoint, so tests run the real loading, embedding and decoding code."""

from pathlib import Path

import torch

from annotations.assist.sam import SamArchitecture, sam_build

TINY = SamArchitecture(
    embed_dim=32,
    depth=2,
    num_heads=2,
    global_attn_indexes=(1,),
    window_size=7,
    mlp_ratio=4.0,
    image_size=256,
    patch_size=16,
    prompt_dim=32,
    mask_in_chans=16,
    decoder_depth=2,
    decoder_mlp_dim=64,
    iou_head_depth=3,
    iou_head_hidden_dim=32,
    multimask_outputs=3,
)


def tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    torch.save(sam_build(TINY).state_dict(), path)
    return path
