"""The terms of a refinement step (pipelines.refine_scene): the depth order computed on
the pixels several people share equals the whole-map references (the box cue's pseudo
instance map, the ordering mistakes and Eq. 4): the people at the wrong pixels, the
verdict, the loss and its gradients."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from ops.depth_order import depth_order_loss, ordering_mistakes
from pipelines.box_cues import pseudo_instances
from pipelines.refine_scene import order_of
from tests.test_refine import CONFIG

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))]


def random_people(generator: torch.Generator, people: int, height: int, width: int,
                  device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth maps ``[P, H, W]`` of random overlapping blobs (inf outside), and image
    boxes (twice the maps' size: render_scale 0.5), two of three or more tied at the bottom."""
    rows = torch.arange(height)[:, None].float()
    cols = torch.arange(width)[None].float()
    depths = torch.full((people, height, width), float("inf"))
    boxes = torch.zeros(people, 4)
    for person in range(people):
        extent = torch.tensor([height, width])
        centre = (0.25 + 0.5 * torch.rand(2, generator=generator)) * extent
        radius = (0.15 + 0.25 * torch.rand(2, generator=generator)) * extent
        inside = ((rows - centre[0]) / radius[0]) ** 2 + ((cols - centre[1]) / radius[1]) ** 2 < 1
        surface = 2 + 3 * torch.rand(1, generator=generator) + 0.3 * torch.rand(
            height, width, generator=generator)
        depths[person][inside] = surface[inside]
        top, bottom = (centre[0] - radius[0]) * 2, (centre[0] + radius[0]) * 2
        boxes[person] = torch.tensor([0.0, top, 2.0 * width, bottom])
    if people >= 3:
        boxes[-1, 3] = boxes[0, 3]  # a tie: the cue cannot decide between them
    return depths.to(device), boxes.to(device)


def check_order(seed: int, device: str) -> int:
    """order_of against the references on one random scene; the number of wrong pixels."""
    generator = torch.Generator().manual_seed(seed)
    plain, boxes = random_people(generator, 2 + seed % 4, 40, 56, device)
    config = dataclasses.replace(CONFIG, order_margin=0.05 * (seed % 3))
    evidence = SimpleNamespace(config=config, boxes=boxes)
    depths = plain.clone().requires_grad_(True)
    reference_depths = plain.clone().requires_grad_(True)

    order = order_of(evidence, depths)

    # the references, on every pixel of the maps
    pseudo = pseudo_instances(plain, boxes, config.render_scale, config.order_margin)
    shared = torch.isfinite(plain).sum(dim=0) >= 2
    decided = (pseudo > 0) & shared
    wrong = ordering_mistakes(plain, pseudo) & decided
    reference_loss = depth_order_loss(reference_depths, pseudo)
    # who should be in front and who is, at each wrong pixel (row by row)
    assert torch.equal(order.rightful, pseudo[wrong] - 1)
    assert torch.equal(order.visible, plain[:, wrong].argmin(dim=0))
    share = float(wrong.sum()) / max(int(decided.sum()), 1)
    assert order.ordered == (share <= config.order_tolerance)
    assert torch.equal(order.loss.detach(), reference_loss.detach())
    (order.loss * 3).backward()
    (reference_loss * 3).backward()
    assert torch.equal(depths.grad, reference_depths.grad)
    return int(wrong.sum())


@pytest.mark.parametrize("device", DEVICES)
def test_order_on_shared_pixels_equals_the_whole_map_references(device):
    wrong = [check_order(seed, device) for seed in range(12)]
    assert sum(count > 0 for count in wrong) >= 6, wrong  # the loss is exercised
