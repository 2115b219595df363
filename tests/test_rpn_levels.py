"""The RPN on a subset of the pyramid levels (``model.anchor_sizes`` with null entries):
the network's proposals and RPN losses against torchvision's plain RPN given only those
levels, and clear errors for a bad setting."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork

from model.rcnn import FPN_LEVELS, ModelConfig, build_model
from stages.common import typed
from tests.training_setup import tiny_training_params


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    params = tiny_training_params()
    return dataclasses.replace(typed(ModelConfig, params, "model"),
                               anchor_sizes=(None, 16, 32, 64, 128))


def reference_rpn(network, sizes: tuple[int, ...]) -> RegionProposalNetwork:
    """torchvision's RPN with the network's head and settings, anchors on ``sizes``."""
    ours = network.rpn
    plain = RegionProposalNetwork(
        AnchorGenerator(tuple((s,) for s in sizes), (ours.anchor_generator.aspect_ratios[0],)
                        * len(sizes)), ours.head, 0.7, 0.3, 256, 0.5,
        dict(ours._pre_nms_top_n), dict(ours._post_nms_top_n), ours.nms_thresh)
    return plain.train(ours.training)


@pytest.mark.parametrize("seed", range(3))
def test_rpn_uses_only_the_levels_with_anchors(anny_body, config, seed):
    network = build_model(config, anny_body, seed).train()
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 80, 128, generator=generator)
    with torch.no_grad():
        features = network.backbone((images - network.mean) / network.std)
    assert list(features) == list(FPN_LEVELS)
    corner = torch.rand(2, 3, 2, generator=generator) * 60
    targets = [{"boxes": torch.cat([c, c + 12 + torch.rand(3, 2, generator=generator) * 30], 1),
                "labels": torch.ones(3, dtype=torch.int64)} for c in corner]
    image_list = ImageList(images, [(80, 128)] * 2)
    torch.manual_seed(seed)  # the RPN's loss samples anchors at random
    proposals, losses = network.rpn(image_list, features, targets)
    coarse = OrderedDict((name, features[name]) for name in FPN_LEVELS[1:])
    torch.manual_seed(seed)
    expected, expected_losses = reference_rpn(network, (16, 32, 64, 128))(image_list, coarse,
                                                                          targets)
    for mine, theirs in zip(proposals, expected, strict=True):
        assert torch.equal(mine, theirs)
    assert losses.keys() == expected_losses.keys()
    for name in losses:
        assert torch.equal(losses[name], expected_losses[name])
    # the finest level still feeds the box and SMPL poolers
    assert network.roi_heads.box_roi_pool.featmap_names[0] == FPN_LEVELS[0]
    assert network.roi_heads.smpl_roi_pool.featmap_names[0] == FPN_LEVELS[0]


def test_bad_anchor_sizes_are_refused(config):
    with pytest.raises(ValueError, match="one size \\(or null\\) per FPN level"):
        dataclasses.replace(config, anchor_sizes=(16, 32, 64, 128))
    with pytest.raises(ValueError, match="at least one a size"):
        dataclasses.replace(config, anchor_sizes=(None,) * 5)
