"""Soft-NMS (model.suppression) against a plain loop over Bodla et al.'s algorithm, and
the network's box head with ``model.box_suppression: soft``."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch
from torchvision.ops import box_iou

from model.rcnn import ModelConfig, build_model
from model.suppression import soft_nms
from stages.common import typed
from tests.training_setup import tiny_training_params


def reference_soft_nms(boxes, scores, sigma, threshold, limit):
    """The paper's loop, one box and one pair at a time, in float64."""
    scores = [float(s) for s in scores]
    remaining = list(range(len(boxes)))
    kept, kept_scores = [], []
    while remaining and len(kept) < limit:
        best = max(remaining, key=lambda i: scores[i])  # first of equals, as argmax
        if scores[best] < threshold:
            break
        kept.append(best)
        kept_scores.append(scores[best])
        remaining.remove(best)
        for i in remaining:
            iou = float(box_iou(boxes[best][None].double(), boxes[i][None].double()))
            scores[i] *= math.exp(-iou * iou / sigma)
    return kept, kept_scores


def crowded_boxes(generator: torch.Generator, count: int) -> torch.Tensor:
    """``count`` person-like boxes around a few centres, so many overlap."""
    centres = torch.rand(3, 2, generator=generator) * 100
    centre = centres[torch.randint(3, (count,), generator=generator)]
    centre = centre + torch.randn(count, 2, generator=generator) * 8
    size = torch.rand(count, 2, generator=generator) * torch.tensor([20.0, 50]) + 10
    return torch.cat([centre - size / 2, centre + size / 2], dim=1)


@pytest.mark.parametrize("trial", range(30))
def test_soft_nms_matches_the_reference_loop(trial):
    generator = torch.Generator().manual_seed(trial)
    count = int(torch.randint(0, 60, (1,), generator=generator))
    boxes = crowded_boxes(generator, count)
    scores = torch.rand(count, generator=generator)
    sigma = float(torch.rand(1, generator=generator)) + 0.1
    limit = int(torch.randint(5, 30, (1,), generator=generator))
    index, decayed = soft_nms(boxes, scores, sigma, 0.05, limit)
    kept, kept_scores = reference_soft_nms(boxes, scores, sigma, 0.05, limit)
    assert index.tolist() == kept
    torch.testing.assert_close(decayed.double(), torch.tensor(kept_scores, dtype=torch.float64),
                               rtol=1e-5, atol=1e-7)
    if count > 10:  # the draw does overlap: some score was lowered
        assert any(s < float(scores[i]) for i, s in zip(kept, kept_scores, strict=True))


def test_disjoint_boxes_keep_their_scores_and_copies_fall():
    boxes = torch.tensor([[0.0, 0, 10, 30], [20, 0, 30, 30], [0, 0, 10, 30]])
    index, scores = soft_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5, 0.05, 10)
    assert index.tolist() == [0, 1, 2]  # the exact copy stays, scored 0.7 * exp(-2)
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8, 0.7 * math.exp(-2.0)]))
    index, _ = soft_nms(boxes, torch.tensor([0.9, 0.8, 0.3]), 0.5, 0.05, 10)
    assert index.tolist() == [0, 1]  # 0.3 * exp(-2) = 0.04 is below the threshold


def test_scores_that_require_grad_select_alike_and_keep_their_gradient():
    boxes = torch.tensor([[0.0, 0, 10, 30], [20, 0, 30, 30], [0, 0, 10, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "converting a tensor that requires grad"
        index, decayed = soft_nms(boxes, scores, 0.5, 0.05, 10)
    assert index.tolist() == soft_nms(boxes, scores.detach(), 0.5, 0.05, 10)[0].tolist()
    decayed.sum().backward()
    torch.testing.assert_close(scores.grad, torch.tensor([1.0, 1.0, math.exp(-2.0)]))


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="sigma must be positive"):
        soft_nms(torch.zeros(1, 4), torch.zeros(1), 0.0, 0.05, 5)
    with pytest.raises(ValueError, match=r"boxes \[D, 4\] and scores \[D\]"):
        soft_nms(torch.zeros(2, 4), torch.zeros(3), 0.5, 0.05, 5)
    params = tiny_training_params()
    params["model"]["box_suppression"] = "soft-ish"
    with pytest.raises(ValueError, match="nms or soft"):
        typed(ModelConfig, params, "model")


def test_the_box_head_applies_soft_nms_to_every_box_it_scores(anny_body):
    """A network with Soft-NMS returns the reference's Soft-NMS of the boxes the same
    network returns with its suppression switched off, and the SMPL branch's outputs
    for exactly those boxes."""
    config = typed(ModelConfig, tiny_training_params(), "model")
    soft = dataclasses.replace(config, box_suppression="soft", soft_nms_sigma=0.5,
                               detections_per_image=7)
    open_ = dataclasses.replace(config, box_suppression="nms", box_nms_thresh=1.0,
                                detections_per_image=config.rpn_post_nms_test)
    image = torch.rand(1, 3, 80, 128, generator=torch.Generator().manual_seed(0))
    intrinsics = [torch.tensor([[100.0, 0, 64], [0, 100, 40], [0, 0, 1]])]
    with torch.no_grad():
        found = build_model(soft, anny_body, 0).eval()(image, intrinsics=intrinsics)[0]
        raw = build_model(open_, anny_body, 0).eval()(image, intrinsics=intrinsics)[0]
    kept, kept_scores = reference_soft_nms(raw["boxes"], raw["scores"], 0.5, 0.05, 7)
    assert len(raw["boxes"]) > 7 and len(kept) == 7  # untrained: many boxes above 0.05
    assert any(s < float(raw["scores"][i]) for i, s in zip(kept, kept_scores, strict=True))
    torch.testing.assert_close(found["boxes"], raw["boxes"][kept])
    torch.testing.assert_close(found["scores"].double(),
                               torch.tensor(kept_scores, dtype=torch.float64))
    for key in ("rotmats", "shape", "cam", "transl"):
        torch.testing.assert_close(found[key], raw[key][kept], rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_soft_nms_equals_the_cpu_one():
    generator = torch.Generator().manual_seed(7)
    boxes = crowded_boxes(generator, 80)
    scores = torch.rand(80, generator=generator)
    index, decayed = soft_nms(boxes, scores, 0.5, 0.05, 20)
    index_cuda, decayed_cuda = soft_nms(boxes.cuda(), scores.cuda(), 0.5, 0.05, 20)
    assert index_cuda.device.type == "cuda" and torch.equal(index_cuda.cpu(), index)
    torch.testing.assert_close(decayed_cuda.cpu(), decayed)
