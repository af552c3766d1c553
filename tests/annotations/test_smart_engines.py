"""The smart tool's engines without Django: prompt checking, GrabCut on generated shapes, SAM's loading,
embedding and decoding against segment-anything's own predictor."""

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor, sam_model_registry

from annotations.assist.grabcut import grabcut_segment
from annotations.assist.prompts import PromptError, prompt_parse, stroke_points
from annotations.assist.sam import SamCheckpointError, SamEngine, checkpoint_check, checkpoint_read
from tests.annotations.sam_tiny import TINY, tiny_checkpoint
from tests.annotations.smart_scenes import SHAPES, iou, scene


@pytest.mark.parametrize(
    ("box", "foreground", "message"),
    [
        (
            {"x": 0, "y": 0, "width": 3, "height": 50},
            [],
            "The work area must be at least 4x4 pixels inside the 64x48 image.",
        ),
        (
            {"x": 0, "y": 0, "w": 10, "h": 10},
            [],
            'The work area ("box") must be {"x": ..., "y": ..., "width": ..., "height": ...}.',
        ),
        ({"x": "a", "y": 0, "width": 10, "height": 10}, [], "box.x must be a number."),
        (None, [[70, 10]], "foreground[0] goes outside the 64x48 image."),
        (None, [[[1, 1], [2]]], "foreground[0] is neither a click [x, y] nor a stroke [[x, y], ...]."),
        (None, [[]], "foreground[0] is neither a click [x, y] nor a stroke [[x, y], ...]."),
        (None, [[True, 3]], "foreground[0] is neither a click [x, y] nor a stroke [[x, y], ...]."),
        (None, {"x": 1}, "foreground must be a list of clicks [x, y] or strokes [[x, y], ...]."),
        (None, [[1, 1]] * 501, "Send at most 500 marks."),
    ],
)
def test_bad_prompts_say_what_is_wrong(box, foreground, message):
    with pytest.raises(PromptError) as error:
        prompt_parse(box, foreground, [], width=64, height=48)
    assert str(error.value) == message


def test_a_prompt_clips_its_work_area_to_the_image_and_keeps_clicks_and_strokes():
    prompt = prompt_parse(
        {"x": -5.5, "y": 10.2, "width": 100, "height": 20}, [[3, 4], [[5, 6], [7, 8]]], None, width=64, height=48
    )
    assert prompt.box == (0, 10, 64, 31)
    assert [m.tolist() for m in prompt.foreground] == [[[3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]
    assert prompt.background == ()


def test_stroke_points_are_evenly_spaced_along_the_stroke():
    points = stroke_points(np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]), 5.0)
    assert points.tolist() == [[0, 0], [5, 0], [10, 0], [10, 5], [10, 10]]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_grabcut_finds_generated_shapes_from_a_few_scribbles(shape, seed):
    s = scene(shape, seed)
    mask = grabcut_segment(s.rgb, prompt_parse(s.box, s.foreground, s.background, width=640, height=480))
    assert iou(mask, s.truth) >= 0.9


def test_grabcut_scales_a_large_work_area_down_and_the_mask_back_up():
    s = scene("star", 3, width=1600, height=1200)
    prompt = prompt_parse(s.box, s.foreground, s.background, width=1600, height=1200)
    mask = grabcut_segment(s.rgb, prompt, max_side=256)
    assert mask.shape == (1200, 1600)
    assert iou(mask, s.truth) >= 0.9


def test_grabcut_asks_for_foreground_when_the_marks_leave_none():
    s = scene("ellipse")
    everything = [[[0.0, y], [640.0, y]] for y in range(0, 481, 2)]
    with pytest.raises(PromptError, match="mark some foreground"):
        grabcut_segment(s.rgb, prompt_parse(None, [], everything, width=640, height=480))


# --- SAM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["vit_b", "vit_l", "vit_h"])
def test_the_official_architectures_are_recognised_from_their_tensor_shapes(variant):
    with torch.device("meta"):  # shapes only: no memory, no weights
        state = sam_model_registry[variant]().state_dict()
    assert checkpoint_check(state).name == variant


@pytest.fixture
def tiny(tmp_path):
    return tiny_checkpoint(tmp_path / "sam_tiny.pth")


def test_a_tiny_checkpoint_loads_as_the_architecture_it_was_built_with(tiny):
    engine = SamEngine.from_checkpoint(tiny)
    assert engine.arch == TINY
    assert engine.arch.name == "custom (32-d, 2 blocks)"
    assert sum(p.numel() for p in engine.model.parameters()) == 111_660


def test_sam_embeds_and_decodes_as_segment_anythings_own_predictor(tiny):
    rgb = scene("ellipse").rgb
    engine = SamEngine.from_checkpoint(tiny)
    predictor = SamPredictor(engine.model)
    predictor.set_image(rgb)
    features = engine.embed(rgb)
    assert features.shape == (32, 16, 16) and features.dtype == np.float16
    np.testing.assert_allclose(features, predictor.features[0].numpy(), atol=2e-3)

    # A stroke shorter than the point spacing (the work area's side / 16) is sent as its two ends.
    prompt = prompt_parse(
        {"x": 100, "y": 80, "width": 400, "height": 300},
        [[320, 240], [[200, 240], [210, 245]]],
        [[120, 100]],
        width=640,
        height=480,
    )
    mask, score = engine.decode(features, prompt, (480, 640))
    points = np.array([[320, 240], [200, 240], [210, 245], [120, 100]], float)
    expected, scores, _ = predictor.predict(
        point_coords=points,
        point_labels=np.array([1, 1, 1, 0]),
        box=np.array([100, 80, 500, 380]),
        multimask_output=False,
    )
    assert mask.shape == (480, 640)
    assert iou(mask, expected[0]) >= 0.99  # only resizing differs: OpenCV here, torch there
    assert score == pytest.approx(float(scores[0]), abs=1e-3)


def test_a_lone_click_picks_the_best_of_sams_three_proposals(tiny):
    rgb = scene("ring").rgb
    engine = SamEngine.from_checkpoint(tiny)
    predictor = SamPredictor(engine.model)
    predictor.set_image(rgb)
    mask, score = engine.decode(
        engine.embed(rgb), prompt_parse(None, [[320, 240]], None, width=640, height=480), (480, 640)
    )
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[320.0, 240.0]]), point_labels=np.array([1]), multimask_output=True
    )
    best = int(np.argmax(scores))
    assert score == pytest.approx(float(scores[best]), abs=1e-3)
    assert iou(mask, masks[best]) >= 0.99


def test_the_onnx_decoder_answers_as_the_torch_decoder(tiny):
    rgb = scene("star").rgb
    onnx, eager = SamEngine.from_checkpoint(tiny, decoder="onnx"), SamEngine.from_checkpoint(tiny, decoder="torch")
    features = onnx.embed(rgb)
    prompt = prompt_parse(
        {"x": 50, "y": 50, "width": 500, "height": 400}, [[[300, 200], [340, 260]]], [[60, 60]], width=640, height=480
    )
    (a, score_a), (b, score_b) = onnx.decode(features, prompt, (480, 640)), eager.decode(features, prompt, (480, 640))
    assert int(a.sum()) > 0
    assert int((a != b).sum()) == 0
    assert score_a == pytest.approx(score_b, abs=1e-4)


def test_sam_without_a_work_area_needs_a_foreground_mark(tiny):
    engine = SamEngine.from_checkpoint(tiny)
    features = engine.embed(scene("ellipse").rgb)
    with pytest.raises(PromptError, match="Mark some foreground"):
        engine.decode(features, prompt_parse(None, [], [[5, 5]], width=640, height=480), (480, 640))


def test_unusable_checkpoints_say_why(tmp_path, tiny):
    with pytest.raises(SamCheckpointError, match="does not exist or is not a file"):
        checkpoint_read(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(SamCheckpointError, match="cannot be read as a PyTorch checkpoint"):
        checkpoint_read(garbage)
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7)}, other)
    with pytest.raises(
        SamCheckpointError, match=r"This is not a Segment Anything checkpoint \(no tensor 'image_encoder"
    ):
        checkpoint_check(checkpoint_read(other))
    state = checkpoint_read(tiny)
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 7)
    del state["prompt_encoder.not_a_point_embed.weight"]
    with pytest.raises(SamCheckpointError, match="is missing tensors: prompt_encoder.not_a_point_embed.weight"):
        checkpoint_check(state)
    state["prompt_encoder.not_a_point_embed.weight"] = torch.zeros(1, 32)
    with pytest.raises(SamCheckpointError, match="has wrongly shaped tensors: mask_decoder.iou_token.weight"):
        checkpoint_check(state)
