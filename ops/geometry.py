"""Rotation representations and similarity Procrustes alignment.

Conventions (used everywhere in crmh):
- Rotation matrices act on column vectors: ``x' = R @ x``.
- The 6D representation (Zhou et al., CVPR 2019) is the first two *columns* of ``R``,
  concatenated: ``rot6d = [R[:, 0], R[:, 1]]``, shape ``[..., 6]``.
- Axis-angle vectors ``[..., 3]`` have the rotation angle (radians) as their norm.

The numerics are delegated to ``roma`` (a maintained rotation library, already a
dependency of Anny); this module fixes our conventions and validates shapes.
"""

from __future__ import annotations

import roma
import torch

__all__ = [
    "rot6d_to_matrix",
    "matrix_to_rot6d",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "similarity_procrustes",
    "apply_similarity",
]


def _check_last_dims(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(tensor.shape[-len(shape) :]) != shape:
        raise ValueError(f"{name}: expected shape [..., {', '.join(map(str, shape))}], "
                         f"got {list(tensor.shape)}")


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """6D rotation representation to rotation matrices by Gram-Schmidt.

    Args:
        rot6d: ``[..., 6]``, the (unnormalised) first and second columns of ``R``.
    Returns:
        ``[..., 3, 3]`` proper rotation matrices.
    """
    _check_last_dims("rot6d", rot6d, (6,))
    columns = torch.stack([rot6d[..., :3], rot6d[..., 3:]], dim=-1)  # [..., 3, 2]
    return roma.special_gramschmidt(columns)


def matrix_to_rot6d(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` to their 6D representation ``[..., 6]``."""
    _check_last_dims("rotmat", rotmat, (3, 3))
    return torch.cat([rotmat[..., :, 0], rotmat[..., :, 1]], dim=-1)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle ``[..., 3]`` to rotation matrices ``[..., 3, 3]``."""
    _check_last_dims("axis_angle", axis_angle, (3,))
    return roma.rotvec_to_rotmat(axis_angle)


def matrix_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` to axis-angle ``[..., 3]`` (angle in [0, pi])."""
    _check_last_dims("rotmat", rotmat, (3, 3))
    return roma.rotmat_to_rotvec(rotmat)


def similarity_procrustes(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched similarity alignment (Umeyama): the ``s, R, t`` minimising
    ``sum_k w_k |s R source_k + t - target_k|^2`` with ``R`` a proper rotation.

    Args:
        source: ``[N, K, 3]`` points to align.
        target: ``[N, K, 3]`` corresponding points.
        weights: optional ``[N, K]`` non-negative weights (e.g. joint visibility).
    Returns:
        ``scale [N]``, ``rotation [N, 3, 3]``, ``translation [N, 3]``.
    """
    _check_last_dims("source", source, (3,))
    if source.shape != target.shape or source.dim() != 3:
        raise ValueError(f"similarity_procrustes: source and target must both be [N, K, 3], "
                         f"got {list(source.shape)} and {list(target.shape)}")
    rotation, translation, scale = roma.rigid_points_registration(
        source, target, weights=weights, compute_scaling=True
    )
    return scale, rotation, translation


def apply_similarity(
    points: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor
) -> torch.Tensor:
    """``s R p + t`` for ``points [N, K, 3]``, ``scale [N]``, ``rotation [N, 3, 3]``,
    ``translation [N, 3]``."""
    rotated = torch.einsum("nij,nkj->nki", rotation, points)
    return scale[:, None, None] * rotated + translation[:, None, :]
