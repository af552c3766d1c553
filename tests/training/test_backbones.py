"""The pretrained EfficientNet-Lite0 really is pretrained: it names a cat a cat and its features group crops together."""

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from training.ml.backbones import DEFAULT_BACKBONE, PretrainedWeightsUnavailable, create_backbone, normalization

CATS = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def tensor(pixels: np.ndarray, size: int = 224) -> torch.Tensor:
    mean, std = normalization(DEFAULT_BACKBONE)
    image = Image.fromarray(pixels).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    return ((x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]).unsqueeze(0)


@pytest.fixture(scope="module")
def classifier():
    return create_backbone(pretrained=True, num_classes=1000).eval()


def test_the_pretrained_classifier_sees_a_cat(classifier):
    with torch.no_grad():
        top = classifier(tensor(skimage.data.chelsea())).softmax(-1)[0].topk(3)
    assert int(top.indices[0]) in CATS
    assert float(top.values[:3][[int(i) in CATS for i in top.indices]].sum()) > 0.5


def test_features_match_a_crop_to_its_photo_and_not_to_others():
    model = create_backbone(pretrained=True, num_classes=0).eval()
    cat = skimage.data.chelsea()
    photos = [cat[30:270, 60:400], cat, skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    with torch.no_grad():
        features = torch.nn.functional.normalize(torch.cat([model(tensor(p)) for p in photos]), dim=1)
    assert features.shape == (5, 1280)
    similarity = features[0] @ features[1:].T
    assert float(similarity[0]) > 0.8
    assert float(similarity[1:].max()) < 0.5


def test_asking_for_weights_that_are_not_here_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SIGHTLINE_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(PretrainedWeightsUnavailable, match="No pretrained weights for resnet18 on this machine"):
        create_backbone("resnet18", pretrained=True, num_classes=3)
    model = create_backbone("resnet18", pretrained=False, num_classes=3)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)


def test_weights_from_the_weights_folder_load(monkeypatch, tmp_path):
    source = create_backbone("resnet18", pretrained=False, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    monkeypatch.setenv("SIGHTLINE_WEIGHTS_DIR", str(tmp_path))
    loaded = create_backbone("resnet18", pretrained=True, num_classes=1000)
    assert torch.equal(loaded.state_dict()["conv1.weight"], source.state_dict()["conv1.weight"])
