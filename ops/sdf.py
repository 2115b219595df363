"""Penetration-depth grids of closed meshes (the paper's phi, Eq. 1), on CPU or CUDA.

``phi = -min(SDF, 0)``: the distance to the surface (metres) inside the body, 0
outside. Each person gets its own axis-aligned cube: centre = centre of its bounding
box, half = (1 + padding) * max extent / 2. Voxel (ix, iy, iz) sits at
``center + half * (-1 + 2 i / (N - 1))`` per axis (the voxel *centres* span the cube,
so ``grid_sample(..., align_corners=True)`` samples exactly at them; the official CUDA
kernel was half a voxel off this convention) and is stored at ``phi[p, iz, iy, ix]``.

How it is computed (one NVIDIA Warp kernel source for CPU and CUDA; Warp ships the
BVH ray and closest-point queries, so no hand-written CUDA):
1. The mesh is split once into its closed connected components (Anny: body, mouth,
   two eyes) and each gets a BVH, kept between calls and refitted to new vertices.
2. Inside test per component: ray parity along three skewed directions, majority vote
   (robust to a ray grazing an edge). A point is inside the body if it is inside any
   component, so nested components (eyes in their sockets) do not flip the sign, as a
   whole-mesh parity would.
3. Only inside points get a closest-point query (bounded by the cube size): the
   minimum distance to any component.
``phi`` carries no gradient (as in the paper); :func:`sample_phi` is differentiable
with respect to the query points.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import warp as wp

from ops._warp import check_mesh_inputs, launch, ready, to_vec3, warp_device

__all__ = ["SDFGrid", "SDF_PADDING", "sdf_grid", "moved", "sample_phi", "penetration_depth",
           "closed_components", "bounding_boxes", "person_cubes", "clear_mesh_cache"]


@dataclass
class SDFGrid:
    """Per-person penetration-depth grids.

    Attributes:
        phi: ``[P, N, N, N]`` metres, indexed ``[p, iz, iy, ix]``.
        center: ``[P, 3]`` cube centres.
        half: ``[P]`` cube half-sizes.
    """

    phi: torch.Tensor
    center: torch.Tensor
    half: torch.Tensor


# ----------------------------------------------------------------------------
# Warp kernels

@wp.func
def _inside_component(mesh: wp.uint64, point: wp.vec3) -> bool:
    """Majority vote of ray parity along three skewed directions (the third ray is
    cast only when the first two disagree)."""
    first = wp.mesh_query_ray_count_intersections(mesh, point, wp.vec3(1.0, 0.0123, 0.0371)) % 2
    second = wp.mesh_query_ray_count_intersections(mesh, point, wp.vec3(-0.0291, 1.0, 0.0173)) % 2
    if first == second:
        return first == 1
    third = wp.mesh_query_ray_count_intersections(mesh, point, wp.vec3(0.0219, -0.0337, 1.0))
    return third % 2 == 1


@wp.func
def _in_box(point: wp.vec3, low: wp.vec3, high: wp.vec3) -> bool:
    return (point[0] >= low[0] and point[1] >= low[1] and point[2] >= low[2]
            and point[0] <= high[0] and point[1] <= high[1] and point[2] <= high[2])


@wp.func
def _penetration(meshes: wp.array2d(dtype=wp.uint64), lows: wp.array(dtype=wp.vec3),
                 highs: wp.array(dtype=wp.vec3), person: int, point: wp.vec3,
                 max_dist: float) -> float:
    """Distance to the surface if ``point`` is inside any component, else 0. A point
    outside the person's bounding box is outside every component: most of a person's
    cube, so this test spares most ray casts."""
    if not _in_box(point, lows[person], highs[person]):
        return 0.0
    inside = bool(False)  # noqa: UP018 - Warp needs a typed, mutable local
    for c in range(meshes.shape[1]):
        if _inside_component(meshes[person, c], point):
            inside = True
    if not inside:
        return 0.0
    best = max_dist
    for c in range(meshes.shape[1]):
        query = wp.mesh_query_point_no_sign(meshes[person, c], point, best)
        if query.result:
            closest = wp.mesh_eval_position(meshes[person, c], query.face, query.u, query.v)
            best = wp.min(best, wp.length(point - closest))
    return best


@wp.kernel
def _grid_kernel(meshes: wp.array2d(dtype=wp.uint64), lows: wp.array(dtype=wp.vec3),
                 highs: wp.array(dtype=wp.vec3), centers: wp.array(dtype=wp.vec3),
                 halves: wp.array(dtype=float), phi: wp.array4d(dtype=float)):
    p, iz, iy, ix = wp.tid()
    step = 2.0 / float(phi.shape[1] - 1)
    offset = wp.vec3(float(ix) * step - 1.0, float(iy) * step - 1.0, float(iz) * step - 1.0)
    phi[p, iz, iy, ix] = _penetration(meshes, lows, highs, p,
                                      centers[p] + halves[p] * offset, 4.0 * halves[p])


@wp.kernel
def _points_kernel(meshes: wp.array2d(dtype=wp.uint64), lows: wp.array(dtype=wp.vec3),
                   highs: wp.array(dtype=wp.vec3), points: wp.array(dtype=wp.vec3),
                   max_dist: float, out: wp.array(dtype=float)):
    i = wp.tid()
    out[i] = _penetration(meshes, lows, highs, 0, points[i], max_dist)


# ----------------------------------------------------------------------------
# Mesh preparation

@lru_cache(maxsize=16)
def _components_cached(faces_bytes: bytes, num_faces: int) -> tuple[np.ndarray, ...]:
    faces = np.frombuffer(faces_bytes, dtype=np.int64).reshape(num_faces, 3)
    faces = torch.from_numpy(faces.copy())
    labels = torch.arange(int(faces.max()) + 1 if num_faces else 0)
    while True:  # min-label propagation with pointer jumping
        face_min = labels[faces].amin(dim=1)
        updated = labels.scatter_reduce(0, faces.reshape(-1), face_min.repeat_interleave(3),
                                        reduce="amin")
        updated = updated[updated]
        if torch.equal(updated, labels):
            break
        labels = updated
    face_labels = labels[faces[:, 0]].numpy()
    return tuple(np.flatnonzero(face_labels == label) for label in np.unique(face_labels))


def closed_components(faces: torch.Tensor) -> list[torch.Tensor]:
    """Face indices ``[F_c]`` of each vertex-connected component (cached per topology)."""
    faces64 = faces.detach().to("cpu", torch.int64).contiguous()
    groups = _components_cached(faces64.numpy().tobytes(), faces64.shape[0])
    return [torch.from_numpy(g) for g in groups]


@dataclass
class _PersonMeshes:
    """One person slot of a :class:`_MeshPool`: the ``[V, 3]`` vertex buffer its meshes
    read, and one ``wp.Mesh`` per closed component."""

    points: torch.Tensor
    meshes: list[wp.Mesh]


class _MeshPool:
    """``wp.Mesh`` objects kept between calls for one topology on one device.

    Building a mesh's BVH costs about 8 ms per Anny person on this CPU; refitting an
    existing one to moved vertices costs under 1 ms, and every caller (the training
    loss, refinement, evaluation) poses the same topology again and again. Slots grow to
    the largest number of people seen. The inside tests give what fresh meshes give;
    distances agree to float rounding (where two faces are equally near, another tree
    may return the other one: a last-bit difference, enough to make a fine-tune differ
    from one trained with rebuilt trees).
    """

    def __init__(self, faces: torch.Tensor, device: torch.device) -> None:
        faces32 = faces.to(device=device, dtype=torch.int32)
        self.component_faces = [
            wp.from_torch(faces32[idx.to(device)].reshape(-1).contiguous())
            for idx in closed_components(faces)]
        self.slots: list[_PersonMeshes] = []

    def meshes_for(self, vertices: torch.Tensor) -> wp.array:
        """Point the first P slots at ``vertices [P, V, 3]`` (float32) and return their
        mesh ids as a ``[P, C]`` array, valid until the next call on this pool."""
        for person, slot in enumerate(self.slots[:len(vertices)]):
            slot.points.copy_(vertices[person])
            for mesh in slot.meshes:
                mesh.refit()
        for person in range(len(self.slots), len(vertices)):
            points = vertices[person].clone().contiguous()
            self.slots.append(_PersonMeshes(points, [
                wp.Mesh(points=wp.from_torch(points, dtype=wp.vec3), indices=indices)
                for indices in self.component_faces]))
        ids = np.array([[mesh.id for mesh in slot.meshes] for slot in self.slots[:len(vertices)]],
                       dtype=np.uint64).reshape(len(vertices), len(self.component_faces))
        return wp.array(ids, dtype=wp.uint64, device=warp_device(vertices))


_POOLS: dict[tuple, _MeshPool] = {}
_TOPOLOGY_KEYS: dict[int, tuple[weakref.ref, int, tuple]] = {}  # id(faces) -> (ref, version, key)


def clear_mesh_cache() -> None:
    """Forget the kept meshes (:class:`_MeshPool`): the next call builds every BVH anew."""
    _POOLS.clear()


def _topology_key(faces: torch.Tensor) -> tuple:
    """A key of the faces' contents, computed once per faces tensor (again only after an
    in-place change): hashing them costs about 0.5 ms for Anny, and on CUDA a copy to the
    host that waits for the GPU."""
    entry = _TOPOLOGY_KEYS.get(id(faces))
    if entry is not None and entry[0]() is faces and entry[1] == faces._version:
        return entry[2]
    faces64 = faces.detach().to("cpu", torch.int64).contiguous()
    key = (hash(faces64.numpy().tobytes()), faces64.shape[0])
    identity = id(faces)
    forget = weakref.ref(faces, lambda _: _TOPOLOGY_KEYS.pop(identity, None))
    _TOPOLOGY_KEYS[identity] = (forget, faces._version, key)
    return key


def _component_meshes(vertices: torch.Tensor, faces: torch.Tensor) -> wp.array:
    """Mesh ids ``[P, C]`` of each (person, closed component) of ``vertices [P, V, 3]``,
    from the pool of this topology and device (see :class:`_MeshPool`)."""
    ready()
    key = (*_topology_key(faces), vertices.shape[1], str(vertices.device))
    if key not in _POOLS:
        _POOLS[key] = _MeshPool(faces, vertices.device)
    vertices = vertices.detach().float().contiguous()
    if vertices.device.type == "cuda":  # refit on PyTorch's stream, after the vertices
        with wp.ScopedStream(wp.stream_from_torch(vertices.device)):
            return _POOLS[key].meshes_for(vertices)
    return _POOLS[key].meshes_for(vertices)


def _boxes(vertices: torch.Tensor) -> tuple[wp.array, wp.array]:
    """Each person's bounding box, ``lows`` and ``highs`` ``[P]`` of ``vec3``."""
    return tuple(to_vec3(corner) for corner in bounding_boxes(vertices))


# ----------------------------------------------------------------------------
# Public ops

def bounding_boxes(vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each person's axis-aligned bounding box: ``vertices [P, V, 3]`` -> ``low``, ``high``
    ``[P, 3]`` (no gradient)."""
    # Reduced over a copy with the vertices last: over the middle, strided dimension the
    # same reduction is about three times slower on a CPU.
    points = vertices.detach().transpose(1, 2).contiguous()  # [P, 3, V]
    return points.amin(dim=-1), points.amax(dim=-1)


def person_cubes(vertices: torch.Tensor, padding: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cube ``center [P, 3]`` and ``half [P]`` around each person's bounding box."""
    low, high = bounding_boxes(vertices)
    return (low + high) / 2, (1 + padding) * (high - low).amax(dim=-1) / 2


SDF_PADDING = 0.2  # relative margin of each person's cube around its bounding box


@torch.no_grad()
def sdf_grid(vertices: torch.Tensor, faces: torch.Tensor, grid_size: int = 32,
             padding: float = SDF_PADDING) -> SDFGrid:
    """Penetration-depth grid of each person's closed mesh.

    Args:
        vertices: ``[P, V, 3]`` metres (any frame), finite.
        faces: ``[F, 3]`` long, shared by all people, closed components.
        grid_size: N voxels per axis (the paper: 32 for the loss, 64 for evaluation).
        padding: relative margin of the cube around the bounding box.
    Returns:
        :class:`SDFGrid` with ``phi [P, N, N, N]`` (no gradient).
    """
    check_mesh_inputs("sdf_grid", vertices, faces)
    if grid_size < 2:
        raise ValueError(f"sdf_grid: grid_size must be >= 2, got {grid_size}")
    vertices = vertices.detach().float()
    num_people = vertices.shape[0]
    phi = torch.zeros(num_people, grid_size, grid_size, grid_size, device=vertices.device)
    if num_people == 0:
        return SDFGrid(phi, vertices.new_zeros(0, 3), vertices.new_zeros(0))
    center, half = person_cubes(vertices, padding)
    ids = _component_meshes(vertices, faces)
    launch(_grid_kernel, tuple(phi.shape), [ids, *_boxes(vertices), to_vec3(center),
           wp.from_torch(half.contiguous()), wp.from_torch(phi)], like=vertices)
    return SDFGrid(phi, center, half)


def moved(grid: SDFGrid, offsets: torch.Tensor) -> SDFGrid:
    """``grid`` of people translated by ``offsets [P, 3]`` (metres) since it was computed.
    A translated mesh's penetration depth is its field translated along, so this is exact
    (up to float rounding) and voxelises nothing: the cube centres move, ``phi`` stays."""
    if offsets.shape != grid.center.shape:
        raise ValueError(f"moved: offsets must be {list(grid.center.shape)} (one per person "
                         f"of the grid), got {list(offsets.shape)}")
    return SDFGrid(grid.phi, grid.center + offsets.detach(), grid.half)


@torch.no_grad()
def penetration_depth(vertices: torch.Tensor, faces: torch.Tensor,
                      points: torch.Tensor) -> torch.Tensor:
    """Exact ``phi`` of one closed mesh ``vertices [V, 3]`` at ``points [M, 3]`` -> ``[M]``
    (distance to the surface inside, 0 outside)."""
    check_mesh_inputs("penetration_depth", vertices[None], faces)
    out = torch.zeros(points.shape[0], device=vertices.device)
    if points.shape[0] == 0 or faces.shape[0] == 0:
        return out
    ids = _component_meshes(vertices[None], faces)
    extent = float((vertices.amax(0) - vertices.amin(0)).amax())
    launch(_points_kernel, points.shape[0],
           [ids, *_boxes(vertices[None].float()), to_vec3(points), 2.0 * extent + 1e-6,
            wp.from_torch(out)], like=vertices)
    return out


def sample_phi(grid: SDFGrid, person: int, points: torch.Tensor) -> torch.Tensor:
    """Trilinear sample of person ``person``'s ``phi`` at ``points [M, 3]`` -> ``[M]``.

    Differentiable with respect to ``points``; 0 outside the person's cube.
    """
    if points.dim() != 2 or points.shape[-1] != 3:
        raise ValueError(f"sample_phi: points must be [M, 3], got {list(points.shape)}")
    local = (points - grid.center[person].detach()) / grid.half[person].detach()  # [-1, 1]^3
    phi = grid.phi[person].detach()
    low, high = _support(phi)
    # Farther than a voxel from the voxels where phi is not 0 (inside the person), all
    # eight corners of a sample are 0 (or the zero padding): value and gradient are
    # exactly 0. Only the points nearer are sampled (of another person's vertices, mostly
    # few), the same values as sampling all: a margin of 1.5 voxels absorbs rounding.
    near = ((local.detach() >= low) & (local.detach() <= high)).all(dim=-1).nonzero().flatten()
    samples = torch.nn.functional.grid_sample(
        phi[None, None].to(points.dtype), local[near].reshape(1, 1, 1, -1, 3), mode="bilinear",
        padding_mode="zeros", align_corners=True,
    )
    return points.new_zeros(points.shape[0]).index_put((near,), samples.reshape(-1))


def _support(phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The box ``low``, ``high`` ``[3]``, in the cube's ``[-1, 1]`` coordinates ``(x, y,
    z)``, of the voxels of ``phi [N, N, N]`` (``z, y, x``) that are not 0, widened by 1.5
    voxels; empty (low > high) when every voxel is 0. (No host sync: on CUDA it queues.)"""
    size = phi.shape[-1]
    occupied = phi != 0
    along = torch.stack([occupied.any(dim=1).any(dim=0),  # [3, N]: x, y, z
                         occupied.any(dim=2).any(dim=0),
                         occupied.any(dim=2).any(dim=1)])
    position = torch.arange(size, device=phi.device, dtype=phi.dtype)
    first = torch.where(along, position, float("inf")).amin(dim=-1)
    last = torch.where(along, position, -float("inf")).amax(dim=-1)
    step = 2.0 / (size - 1)
    return -1.0 + step * (first - 1.5), -1.0 + step * (last + 1.5)
