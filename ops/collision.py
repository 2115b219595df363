"""Interpenetration between people: the training loss (paper Eq. 2-3) and the
evaluation volume (Table 4).

For people i != j, ``phi_i`` (:mod:`ops.sdf`) is sampled at person j's vertices:
``P_ij = sum_{v in M_j} phi_i(v)`` is zero when j does not enter i and grows with how
deep j's vertices are inside i. Only pairs whose 3D bounding boxes overlap are
considered, and only people in such a pair are voxelised (every pair is tested on its
own; the official code dropped a person that failed to overlap *any one* other person,
a quirk not reproduced).
"""

from __future__ import annotations

import torch

from ops._warp import check_mesh_inputs
from ops.sdf import (
    SDF_PADDING,
    SDFGrid,
    bounding_boxes,
    penetration_depth,
    person_cubes,
    sample_phi,
    sdf_grid,
)

__all__ = ["collision_loss", "collision_volume", "overlapping_pairs", "geman_mcclure"]

ROBUST_FORMS = ("paper", "official")


def geman_mcclure(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """rho(x) = x^2 / (x^2 + sigma^2): ~x^2/sigma^2 for small x, saturating at 1."""
    return x.square() / (x.square() + sigma**2)


def overlapping_pairs(vertices: torch.Tensor) -> torch.Tensor:
    """``[P, P]`` bool: do the axis-aligned 3D boxes of people i and j overlap (i != j)?"""
    low, high = bounding_boxes(vertices)  # [P, 3]
    overlap = ((low[:, None] <= high[None]) & (low[None] <= high[:, None])).all(dim=-1)
    overlap.fill_diagonal_(False)
    return overlap


def collision_loss(vertices: torch.Tensor, faces: torch.Tensor, grid_size: int = 32,
                   sigma: float = 0.2, robust: str = "paper",
                   sdf: SDFGrid | None = None) -> torch.Tensor:
    """Interpenetration loss of the people of one image.

    Args:
        vertices: ``[P, V, 3]`` camera-frame meshes (metres) of the people of one image.
        faces: ``[F, 3]`` shared topology (closed components).
        grid_size: voxels per axis of each ``phi`` grid.
        sigma: Geman-McClure scale.
        robust: ``"paper"`` -- Eq. 3, ``sum_j rho(sum_{i != j} P_ij)`` with ``phi`` in
            metres; ``"official"`` -- the released code, ``rho`` per vertex on ``phi``
            in units of person i's cube half-size, ``sum_i sum_{j != i} sum_v rho(.) / n^2``
            with n the number of people in overlapping pairs.
        sdf: every person's ``phi`` grid (``grid_size`` voxels a side) when it is already
            known, e.g. :func:`ops.sdf.moved` for people that moved only rigidly since it
            was computed; ``None`` voxelises the people in overlapping pairs now.
    Returns:
        scalar, differentiable with respect to ``vertices`` (``phi`` itself is constant);
        0 when fewer than two people or no boxes overlap.
    """
    if robust not in ROBUST_FORMS:
        raise ValueError(f"collision_loss: robust must be one of {ROBUST_FORMS}, got {robust!r}")
    check_mesh_inputs("collision_loss", vertices, faces)
    zero = vertices.sum() * 0.0  # keeps the graph (and device/dtype) when nothing collides
    if vertices.shape[0] < 2:
        return zero
    overlap = overlapping_pairs(vertices)
    involved = overlap.any(dim=1).nonzero().flatten()
    if involved.numel() == 0:
        return zero
    grid, slot = _grids(vertices, faces, involved, grid_size, sdf)
    penetration = {}  # (i, j) -> phi_i at the vertices of j, [V]
    for i, j in overlap.nonzero().tolist():
        penetration[i, j] = sample_phi(grid, slot[i], vertices[j])
    if robust == "paper":
        per_person = {}
        for (_, j), phi in penetration.items():
            per_person[j] = per_person.get(j, zero) + phi.sum()
        return zero + sum(geman_mcclure(total, sigma) for total in per_person.values())
    total = zero
    for (i, _), phi in penetration.items():
        total = total + geman_mcclure(phi / grid.half[slot[i]], sigma).sum()
    return total / involved.numel() ** 2


def _grids(vertices: torch.Tensor, faces: torch.Tensor, involved: torch.Tensor,
           grid_size: int, sdf: SDFGrid | None) -> tuple[SDFGrid, dict[int, int]]:
    """The ``phi`` grids of the ``involved`` people (the given ``sdf``, else voxelised
    now), and where each person's grid is in them."""
    if sdf is None:
        slot = {int(person): k for k, person in enumerate(involved)}
        return sdf_grid(vertices[involved], faces, grid_size), slot
    if sdf.phi.shape[:2] != (vertices.shape[0], grid_size):
        raise ValueError(f"collision_loss: sdf must hold {vertices.shape[0]} people's "
                         f"{grid_size}^3 grids, got phi {list(sdf.phi.shape)}")
    return sdf, {int(person): int(person) for person in involved}


@torch.no_grad()
def collision_volume(vertices: torch.Tensor, faces: torch.Tensor,
                     grid_size: int = 64) -> torch.Tensor:
    """Pairwise intersection volume (m^3) of the people of one image, for evaluation.

    For each overlapping pair, the voxels of person i's N^3 grid (the cube of
    :func:`ops.sdf.sdf_grid`) inside both i and j are counted, each standing for a cell
    of side ``2 half_i / (N - 1)``; the estimate from i's grid and the one from j's grid
    are averaged, so the result is symmetric. Both inside tests are exact mesh queries.
    Only voxels inside both people's bounding boxes can count, so only those are tested
    (the same count as testing the whole grid, for a fraction of the queries).

    Args:
        vertices: ``[P, V, 3]`` metres; faces: ``[F, 3]``; grid_size: N (official: 64).
    Returns:
        ``[P, P]`` float64, symmetric, zero diagonal.
    """
    check_mesh_inputs("collision_volume", vertices, faces)
    num_people = vertices.shape[0]
    volume = torch.zeros(num_people, num_people, dtype=torch.float64, device=vertices.device)
    overlap = overlapping_pairs(vertices) if num_people > 1 else volume.bool()
    vertices = vertices.detach().float()
    low, high = bounding_boxes(vertices)
    center, half = person_cubes(vertices, SDF_PADDING)
    axis = torch.linspace(-1.0, 1.0, grid_size, device=vertices.device)
    for i in overlap.any(dim=1).nonzero().flatten().tolist():
        neighbours = overlap[i].nonzero().flatten().tolist()
        # 1. Voxels of i's grid inside i's box and some neighbour's box, then inside i.
        voxels = _voxels_in_boxes(center[i] + half[i] * axis[:, None], low[i], high[i],
                                  low[neighbours], high[neighbours])
        inside_i = voxels[penetration_depth(vertices[i], faces, voxels) > 0]
        cell = (2 * half[i].double() / (grid_size - 1)) ** 3
        # 2. Of those, the ones inside each neighbour j.
        for j in neighbours:
            candidates = inside_i[((inside_i >= low[j]) & (inside_i <= high[j])).all(dim=1)]
            hits = int((penetration_depth(vertices[j], faces, candidates) > 0).sum())
            volume[i, j] += 0.5 * hits * cell
    return volume + volume.T


def _voxels_in_boxes(coordinates: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                     lows: torch.Tensor, highs: torch.Tensor) -> torch.Tensor:
    """Centres ``[M, 3]`` of the voxels of a grid with per-axis ``coordinates [N, 3]``
    (voxel ``(ix, iy, iz)`` at ``(x[ix], y[iy], z[iz])``) inside the box ``low, high``
    and inside at least one of the boxes ``lows, highs [B, 3]``."""
    chosen = torch.zeros(len(coordinates), len(coordinates), len(coordinates), dtype=torch.bool,
                         device=coordinates.device)  # [iz, iy, ix]
    for box_low, box_high in zip(lows.maximum(low), highs.minimum(high), strict=True):
        axis_in = (coordinates >= box_low) & (coordinates <= box_high)  # [N, 3]
        chosen |= axis_in[:, 2, None, None] & axis_in[None, :, 1, None] & axis_in[None, None, :, 0]
    iz, iy, ix = chosen.nonzero(as_tuple=True)
    return torch.stack([coordinates[ix, 0], coordinates[iy, 1], coordinates[iz, 2]], dim=1)
