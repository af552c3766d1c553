"""A segmentation model's last steps (training/ml/masks.py): the label map from the logits, refined by the image's
own edges."""

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageDraw
from torch.nn import functional

from training.ml import masks


@pytest.mark.parametrize("radius", [1, 4, 12])
def test_box_means_are_avg_pools_clipped_at_the_borders(radius):
    x = torch.rand(1, 7, 30, 41, generator=torch.Generator().manual_seed(radius))
    expected = functional.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    assert torch.allclose(masks._box_mean(x, radius), expected, atol=1e-5)


def test_the_class_of_a_pixel_is_the_first_highest_as_argmax_gives_it():
    scores = torch.randint(0, 3, (4, 50, 60), generator=torch.Generator().manual_seed(0)).float()  # many ties
    values, classes = masks._class_max(scores)
    assert torch.equal(classes, scores.argmax(dim=0)) and torch.equal(values, scores.max(dim=0).values)


def _wire_scene() -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """A 640 x 480 image with a 3 px yellow wire on grey noise, the wire's pixels, and the logits a network at 416
    px draws for it: the wire's class across a band 4 px wide at its size (6 at the image's), softened."""
    rng = np.random.default_rng(0)
    image = PILImage.fromarray(rng.integers(90, 150, (480, 640, 3)).astype(np.uint8))
    line = [(40, 100), (300, 260), (600, 380)]
    wire = PILImage.new("L", (640, 480), 0)
    ImageDraw.Draw(wire).line(line, fill=255, width=3)
    ImageDraw.Draw(image).line(line, fill=(240, 220, 60), width=3)
    band = PILImage.new("L", (416, 312), 0)
    ImageDraw.Draw(band).line([(x * 0.65, y * 0.65) for x, y in line], fill=255, width=4)
    soft = torch.from_numpy(np.asarray(band, np.float32) / 255)[None, None]
    soft = functional.avg_pool2d(soft, 3, stride=1, padding=1)
    logits = torch.cat([4 * (0.5 - soft), 4 * (soft - 0.5)], dim=1)
    return np.asarray(image), np.asarray(wire) > 0, logits


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_a_guide_draws_a_thin_wire_as_wide_as_it_is_painted():
    image, wire, logits = _wire_scene()
    plain, confidence = masks.segment(logits, 480, 640)
    guided, guided_confidence = masks.segment(logits, 480, 640, image)
    assert plain.shape == guided.shape == (480, 640)
    assert np.array_equal(confidence, guided_confidence)  # measured at the network's size either way
    assert _iou(plain == 1, wire) < 0.6  # the band is twice as wide as the wire
    assert _iou(guided == 1, wire) > 0.9
    assert (guided == 1).sum() == pytest.approx(wire.sum(), rel=0.1)


def test_a_guide_smaller_than_the_image_refines_there_and_is_enlarged_smoothly_or_by_nearest_when_too_large(
    monkeypatch,
):
    image, wire, logits = _wire_scene()
    half = np.asarray(PILImage.fromarray(image).resize((320, 240), PILImage.Resampling.BILINEAR))
    guided, _ = masks.segment(logits, 480, 640, half)
    plain, _ = masks.segment(logits, 480, 640)
    assert _iou(guided == 1, wire) > _iou(plain == 1, wire) + 0.1  # 0.61 against the band's 0.46: the wire is
    # 1.5 px wide in a guide of half the size, so blurred there, but still nearer its width than the band
    monkeypatch.setattr(masks, "BILINEAR_MAX_VALUES", 8 * 480 * 640 - 1)  # no room to enlarge the probabilities
    at_half, _ = masks.segment(logits, 240, 320, half)
    enlarged = np.asarray(PILImage.fromarray(at_half).resize((640, 480), PILImage.Resampling.NEAREST))
    assert np.array_equal(masks.segment(logits, 480, 640, half)[0], enlarged)


def test_many_classes_are_refined_a_few_at_a_time_with_the_same_label_map(monkeypatch):
    image, _, logits = _wire_scene()
    noise = torch.randn(1, 3, *logits.shape[-2:], generator=torch.Generator().manual_seed(1))
    logits = torch.cat([logits, noise], dim=1)  # five classes, three of them noise
    at_once, _ = masks.segment(logits, 480, 640, image)
    assert set(np.unique(at_once)) == {0, 1, 2, 3, 4}
    monkeypatch.setattr(masks, "BILINEAR_MAX_VALUES", 8 * 480 * 640)  # room for one class at a time
    assert np.array_equal(masks.segment(logits, 480, 640, image)[0], at_once)
