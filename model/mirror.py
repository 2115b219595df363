"""Left-right mirroring of bodies and joints, for horizontal-flip augmentation.

Flipping an image horizontally mirrors the camera frame through the plane x = 0
(``M = diag(-1, 1, 1)``). A person seen in the flipped image is the mirror image of the
original: each left part takes the place of its right partner. For the parameters this
means, for every rotation (the global orientation included):

    R'_j = M R_{partner(j)} M

where the partner of a left joint is the right one of the same name, and a joint on the
body's midline is its own partner. This holds for SMPL (as SPIN's ``flip_pose``) and
for Anny (whose rig pairs ``.L`` and ``.R`` bones), because both bodies are symmetric
about their x = 0 plane in the rest pose. The shape is unchanged, the translation's x
is negated, and joint lists (COCO-17, h36m17) are permuted the same way.
"""

from __future__ import annotations

import torch

__all__ = ["MIRROR", "mirror_index", "mirror_rotations", "mirror_points"]

MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))


def _partner(name: str) -> str:
    for left, right in (("left", "right"), (".L", ".R")):
        if left in name:
            return name.replace(left, right)
        if right in name:
            return name.replace(right, left)
    return name


def mirror_index(names: list[str]) -> list[int]:
    """For each name, the index of its left-right partner in ``names`` (itself for a
    midline joint). A name whose partner is missing is an error."""
    index = []
    for name in names:
        partner = _partner(name)
        if partner not in names:
            raise ValueError(f"mirror: {name!r} has no partner {partner!r} in {names}")
        index.append(names.index(partner))
    return index


def mirror_rotations(rotmats: torch.Tensor, index: list[int]) -> torch.Tensor:
    """``rotmats [..., J, 3, 3]`` of a body -> those of its mirror image."""
    mirror = MIRROR.to(rotmats)
    return mirror @ rotmats[..., index, :, :] @ mirror


def mirror_points(points: torch.Tensor, index: list[int] | None = None) -> torch.Tensor:
    """Camera-frame ``points [..., K, 3]`` -> their mirror images (x negated), joints
    permuted by ``index`` (``None`` keeps the order, for vertices or translations)."""
    mirrored = points * MIRROR.diagonal().to(points)
    return mirrored if index is None else mirrored[..., index, :]
