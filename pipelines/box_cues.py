"""Depth-order evidence from one image's person boxes, for test-time refinement
(:mod:`pipelines.refine`): people stand on one ground, so the one whose box reaches
lower in the image stands nearer the camera."""

from __future__ import annotations

import torch

__all__ = ["pseudo_instances", "ranked_pairs", "overlapping_in_image"]


def pseudo_instances(depths: torch.Tensor, boxes: torch.Tensor, scale: float,
                     margin: float) -> torch.Tensor:
    """``[H, W]`` instance ids (person i + 1; 0: background or unknown) from rendered
    ``depths [P, H, W]``: a pixel covered by several people goes to the one whose box's
    bottom edge (``boxes [P, 4]``, image pixels, ``scale`` times the depth maps') is
    lowest in the image, when it is lower than every other covering person's by at least
    ``margin`` times its box height; otherwise the cue cannot tell and the pixel is 0."""
    covered = torch.isfinite(depths)  # [P, H, W]
    bottom = boxes[:, 3] * scale
    height = (boxes[:, 3] - boxes[:, 1]) * scale
    rank = torch.where(covered, bottom[:, None, None], torch.tensor(-float("inf")))
    if len(boxes) >= 2:
        top2, owner = rank.topk(2, dim=0)
        first, second, owner = top2[0], top2[1], owner[0]
    else:
        first, owner = rank.max(dim=0)
        second = torch.full_like(first, -float("inf"))
    clear = first - second >= margin * height[owner]
    return torch.where(covered.any(dim=0) & clear, owner + 1, torch.zeros_like(owner))


def ranked_pairs(boxes: torch.Tensor, margin: float) -> torch.Tensor:
    """``[M, 2]`` (nearer, farther) indices of the pairs of people the box cue orders:
    person i stands nearer the camera than j when the bottom edge of its box (``boxes
    [P, 4]`` xyxy) is lower in the image than j's by at least ``margin`` times its box
    height (people standing on one ground: feet lower in the image are nearer). A box cut
    by the image's bottom edge only hides feet lower still, so the cue keeps its sense."""
    bottom, height = boxes[:, 3], boxes[:, 3] - boxes[:, 1]
    lower_by = bottom[:, None] - bottom[None]  # [P, P]: how much lower i's box ends than j's
    return ((lower_by > 0) & (lower_by >= margin * height[:, None])).nonzero()


def overlapping_in_image(boxes: torch.Tensor) -> torch.Tensor:
    """``[P]`` bool: does person i's box overlap another person's? Only such people can
    intersect in 3D or occlude each other, so only they are refined."""
    low, high = boxes[:, :2], boxes[:, 2:]
    overlap = ((low[:, None] < high[None]) & (low[None] < high[:, None])).all(dim=-1)
    overlap.fill_diagonal_(False)
    return overlap.any(dim=1)
