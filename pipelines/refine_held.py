"""Who moves in a phase of test-time refinement (:mod:`pipelines.refine`), and what is
kept for the others: the people the coherence check fails on move (:func:`troubled`),
the rest are held still with their depth maps (:class:`Still`); each person's SDF is
voxelised only when needed and moved along with its root (:class:`Fields`)."""

from __future__ import annotations

import torch

from ops.collision import overlapping_pairs
from ops.sdf import SDFGrid, moved, sample_phi, sdf_grid
from pipelines.refine_scene import Evidence, Order, Variables, render

__all__ = ["Fields", "Still", "troubled"]


class Fields:
    """Each person's SDF grid (:func:`ops.sdf.sdf_grid`) as last voxelised, and where
    its root was then. A person moved only rigidly since has the same field moved along
    (:func:`ops.sdf.moved`: exact); one posed anew since has a stale field until it is
    voxelised again. A person is voxelised only once it is in a pair whose 3D boxes
    overlap: only such pairs are sampled."""

    def __init__(self, faces: torch.Tensor, size: int, num_people: int,
                 device: torch.device) -> None:
        self.faces, self.size = faces, size  # [F, 3] shared topology; voxels a side
        self.phi = torch.zeros(num_people, size, size, size, device=device)
        self.center = torch.zeros(num_people, 3, device=device)
        self.half = torch.zeros(num_people, device=device)
        self.root = torch.zeros(num_people, 3, device=device)  # the roots when voxelised
        self.known = torch.zeros(num_people, dtype=torch.bool, device=device)

    def voxelise(self, people: torch.Tensor, vertices: torch.Tensor,
                 transl: torch.Tensor) -> None:
        """Voxelise ``people`` (``[P]`` bool) at ``vertices [P, V, 3]``, roots ``transl``."""
        if not bool(people.any()):
            return
        grid = sdf_grid(vertices[people], self.faces, self.size)
        self.phi[people], self.center[people], self.half[people] = grid.phi, grid.center, grid.half
        self.root[people] = transl.detach()[people]
        self.known |= people

    def at(self, vertices: torch.Tensor, transl: torch.Tensor) -> SDFGrid:
        """Everyone's fields with the roots at ``transl [P, 3]``, after voxelising the
        people at ``vertices [P, V, 3]`` in an overlapping pair and not voxelised yet."""
        self.voxelise(overlapping_pairs(vertices).any(dim=1) & ~self.known, vertices, transl)
        return moved(SDFGrid(self.phi, self.center, self.half), transl.detach() - self.root)


def troubled(evidence: Evidence, vertices: torch.Tensor, sdf: SDFGrid, collision: float,
             order: Order, log_depth: torch.Tensor) -> torch.Tensor:
    """``[P]`` bool: the people the coherence check fails on -- both people of a pair
    where one's vertices enter the other (when the interpenetration loss is above its
    tolerance), the wrongly and the rightly visible person at each wrong pixel (when the
    order check fails), and both people of a decided pair not yet ranked."""
    config = evidence.config
    trouble = torch.zeros(len(vertices), dtype=torch.bool, device=vertices.device)
    if collision > config.collision_tolerance:
        for i, j in overlapping_pairs(vertices).nonzero().tolist():
            if not (trouble[i] and trouble[j]):
                if bool((sample_phi(sdf, i, vertices[j].detach()) > 0).any()):
                    trouble[[i, j]] = True
    if not order.ordered:
        trouble[order.rightful] = True
        trouble[order.visible] = True
    if config.rank > 0 and len(evidence.pairs):
        near, far = evidence.pairs.T
        unranked = log_depth.detach()[near] >= log_depth.detach()[far]
        trouble[near[unranked]] = True
        trouble[far[unranked]] = True
    return trouble


class Still:
    """What a phase keeps fixed: it moves only the people in trouble when it begins
    (``movers``); the others keep their vertices and depth maps, computed once, and
    their variables (their gradients are zeroed before each step)."""

    def __init__(self, movers: torch.Tensor, vertices: torch.Tensor, depths: torch.Tensor,
                 fields: Fields) -> None:
        self.movers = movers  # [P] bool
        self.index = movers.nonzero().flatten()  # [M]
        self.vertices = vertices.detach()  # [P, V, 3] everyone as the phase began
        self.depths = depths.detach()  # [P, h, w]
        self.fields = fields

    def vertices_with(self, moving: torch.Tensor) -> torch.Tensor:
        """Everyone's vertices ``[P, V, 3]``, the movers' at ``moving [M, V, 3]``."""
        return self.vertices.index_put((self.index,), moving)

    def depth_maps(self, evidence: Evidence, vertices: torch.Tensor) -> torch.Tensor:
        """Everyone's depth maps ``[P, h, w]``, rendering only the movers (of ``vertices
        [P, V, 3]``)."""
        return self.depths.index_put((self.index,), render(evidence, vertices[self.index]))

    def hold(self, variables: Variables) -> None:
        """Zero the gradients of the people who stay, so that Adam leaves them be."""
        for value in (variables.rot6d, variables.shape, variables.ray, variables.log_depth):
            if value.grad is not None:
                value.grad[~self.movers] = 0.0
