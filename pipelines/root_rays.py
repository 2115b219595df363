"""Where a person's root is, as refinement optimises it (:mod:`pipelines.refine`): its
image ray ``(X/Z, Y/Z)`` and the log of its depth. Along its ray a person changes depth
while its 2D position stays."""

from __future__ import annotations

import torch

from model.camera import project

__all__ = ["RAY_LR_SHARE", "to_ray_depth", "from_ray_depth", "depth_free_2d"]

# The image-ray coordinates (X/Z, Y/Z) move at this share of the learning rate: at a few
# metres, a step then shifts a root sideways by about as much as a metric translation
# with the same rate would (1 cm at 4 m), while its depth moves by ``lr`` of itself.
RAY_LR_SHARE = 0.25


def depth_free_2d(joints: torch.Tensor, transl: torch.Tensor, start_depth: torch.Tensor,
                   K: torch.Tensor) -> torch.Tensor:
    """``joints [P, J, 3]``' projections ``[P, J, 2]`` as if each person had kept its
    starting depth: offsets from the projected root are scaled by depth / start depth.
    The 2D agreement then ignores a move along the root's ray (the depth-scale
    ambiguity of one image), which the depth-change penalty prices instead."""
    root = project(transl, K)[:, None]  # [P, 1, 2]
    ratio = (transl[:, 2] / start_depth)[:, None, None]
    return root + (project(joints, K) - root) * ratio


def to_ray_depth(transl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``transl [P, 3]`` (depth > 0) -> image ray ``(X/Z, Y/Z) [P, 2]`` and ``log Z [P]``."""
    depth = transl[:, 2]
    if not (depth > 0).all():
        raise ValueError("refine: every predicted person must stand in front of the camera "
                         f"(depths {depth.tolist()})")
    return (transl[:, :2] / depth[:, None]).clone(), depth.log()


def from_ray_depth(ray: torch.Tensor, log_depth: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_ray_depth`."""
    depth = log_depth.exp()[:, None]
    return torch.cat([ray * depth, depth], dim=1)
