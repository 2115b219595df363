"""Ignored boxes in training targets (people only partly inside a pretraining crop): the
RPN's anchor labels and the box head's proposal labels against plain-loop references,
and the network's box head actually given them."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from model.rcnn import IgnoringRPN, ModelConfig, build_model, with_ignored_boxes
from pipelines.transforms import to_network_input
from stages.common import typed
from tests.training_setup import tiny_training_params


def iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


def random_boxes(generator: torch.Generator, count: int, size: float = 100.0) -> torch.Tensor:
    corner = torch.rand(count, 2, generator=generator) * size
    return torch.cat([corner, corner + 8 + torch.rand(count, 2, generator=generator) * 50], 1)


def jittered(boxes: torch.Tensor, copies: int, generator: torch.Generator) -> torch.Tensor:
    """``copies`` noisy copies of each box: proposals near people and ignored regions."""
    return boxes.repeat(copies, 1) + torch.randn(copies * len(boxes), 4, generator=generator) * 4


def rpn(kind: type) -> RegionProposalNetwork:
    anchors = AnchorGenerator(((16,), (32,)), ((0.5, 1.0, 2.0),) * 2)
    return kind(anchors, RPNHead(8, 3), fg_iou_thresh=0.7, bg_iou_thresh=0.3,
                batch_size_per_image=256, positive_fraction=0.5,
                pre_nms_top_n={"training": 100, "testing": 100},
                post_nms_top_n={"training": 50, "testing": 50}, nms_thresh=0.7)


@pytest.mark.parametrize("seed", range(5))
def test_rpn_ignores_the_negatives_over_ignored_boxes_as_the_reference(seed):
    generator = torch.Generator().manual_seed(seed)
    anchors = [random_boxes(generator, 300, 160) for _ in range(2)]
    people = [random_boxes(generator, 3), random_boxes(generator, 2)]
    ignore = [random_boxes(generator, 2), torch.zeros(0, 4)]
    targets = [{"boxes": p, "labels": torch.ones(len(p), dtype=torch.int64), "ignore_boxes": i}
               for p, i in zip(people, ignore, strict=True)]
    plain = rpn(RegionProposalNetwork).assign_targets_to_anchors(anchors, targets)
    ours = rpn(IgnoringRPN).assign_targets_to_anchors(anchors, targets)
    ignored = 0
    for image in range(2):
        torch.testing.assert_close(ours[1][image], plain[1][image])  # regression targets
        for a, (label, mine) in enumerate(zip(plain[0][image].tolist(), ours[0][image].tolist(),
                                              strict=True)):
            near = any(iou(box, anchors[image][a].tolist()) >= 0.3
                       for box in ignore[image].tolist())
            expected = -1.0 if label == 0.0 and near else label
            assert mine == expected, (image, a)
            ignored += label == 0.0 and near
    assert ignored > 0  # the draw does put negatives over ignored boxes


@pytest.mark.parametrize("seed", range(5))
def test_box_head_samples_no_proposal_that_matches_an_ignored_box(anny_body, seed):
    """torchvision's matcher on people plus ignored boxes (label -1): every sampled
    proposal is labelled as a plain loop over the boxes says, none matches an ignored
    box best, and the people keep their indices."""
    config = typed(ModelConfig, tiny_training_params(), "model")
    heads = build_model(config, anny_body, 0).train().roi_heads
    generator = torch.Generator().manual_seed(seed)
    people, ignore = random_boxes(generator, 3), random_boxes(generator, 2)
    proposals = [torch.cat([jittered(people, 6, generator), jittered(ignore, 8, generator),
                            random_boxes(generator, 20)])]
    target = {"boxes": people, "labels": torch.ones(3, dtype=torch.int64), "ignore_boxes": ignore}
    torch.manual_seed(seed)
    sampled, matched, labels, _ = heads.select_training_samples(
        [p.clone() for p in proposals], with_ignored_boxes([target]))
    boxes = people.tolist() + ignore.tolist()
    assert len(sampled[0]) > 0
    for proposal, index, label in zip(sampled[0].tolist(), matched[0].tolist(),
                                      labels[0].tolist(), strict=True):
        overlaps = [iou(box, proposal) for box in boxes]
        best = max(range(len(boxes)), key=lambda b: overlaps[b])
        assert overlaps[best] < 0.5 or best < 3, "a proposal on an ignored box was sampled"
        assert label == (1 if overlaps[best] >= 0.5 else 0)
        if label == 1:
            assert index == best
    assert torch.equal(with_ignored_boxes([target])[0]["labels"], torch.tensor([1, 1, 1, -1, -1]))
    assert with_ignored_boxes([{"boxes": people, "labels": target["labels"]}])[0]["boxes"] is people


def test_network_box_head_is_given_the_ignored_boxes(anny_body, monkeypatch):
    config = typed(ModelConfig, tiny_training_params(), "model")
    network = build_model(config, anny_body, 0).train()
    people = torch.tensor([[10.0, 5, 40, 70], [50, 10, 90, 75]])
    ignore = torch.tensor([[0.0, 30, 20, 80]])
    target = {"boxes": people, "labels": torch.ones(2, dtype=torch.int64), "ignore_boxes": ignore}
    seen = []
    original = network.roi_heads.select_training_samples

    def spy(proposals, targets):
        seen.append(targets)
        return original(proposals, targets)

    monkeypatch.setattr(network.roi_heads, "select_training_samples", spy)
    _, branch = network(torch.rand(1, 3, 80, 128), [target])
    assert torch.equal(seen[0][0]["boxes"], torch.cat([people, ignore]))
    assert torch.equal(seen[0][0]["labels"], torch.tensor([1, 1, -1]))
    assert int(branch.matched[0].max()) < 2  # the SMPL branch sees people only


def test_letterbox_scales_ignored_boxes_as_boxes():
    boxes = torch.tensor([[10.0, 20, 60, 100]])
    sample = {"key": "k", "image": torch.zeros(3, 100, 200, dtype=torch.uint8),
              "target": {"boxes": boxes, "ignore_boxes": boxes.clone(),
                         "keypoints": torch.zeros(1, 17, 3),
                         "K": torch.tensor([[100.0, 0, 100], [0, 100.0, 50], [0, 0, 1]])}}
    target = to_network_input(sample, 50, 100)["target"]
    torch.testing.assert_close(target["ignore_boxes"], boxes / 2)
    torch.testing.assert_close(target["ignore_boxes"], target["boxes"])
