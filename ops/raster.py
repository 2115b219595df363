"""Per-person rasterization and depth maps, differentiable with respect to vertices.

Every person is rendered on its own (batch = people), so the depth of a person hidden
behind another is still known: the depth-ordering loss needs exactly that.

Conventions: camera frame OpenCV (x right, y down, z forward), pinhole ``K``; image
row 0 at the top; pixel (i, j) samples the ray through (j + 0.5, i + 0.5). No
back-face culling (the front-most surface wins, as with NMR's ``fill_back``).
Triangles with a vertex closer than ``NEAR`` (1 cm) are dropped by the Warp backend
(nvdiffrast clips them instead: the two differ only for meshes that cross the near
plane).

Backends, same outputs:
- ``warp`` (alias ``cpu``, the DESIGN name): a z-buffer in NVIDIA Warp, one thread per
  triangle, on the device of the vertices (CPU here, CUDA too). One 64-bit atomic min
  per covered pixel keeps the nearest face (depth in micrometres, then the smaller face
  id), so the result is deterministic even on a GPU. (A two-pass buffer - nearest depth,
  then the face whose depth equals it - left pixels without a face on CUDA, where the
  second pass's recomputed depth need not equal the first's to the bit.)
- ``nvdiffrast``: NVIDIA's CUDA rasterizer (``pip install -e '.[gpu]'``), imported
  lazily; its bottom-row-first images are flipped to top-down here.

Gradients: the rasterizer decides *which* face covers a pixel (no gradient, as in
nvdiffrast); the perspective-correct barycentrics of that pixel are then computed with
autograd from the projected vertices, and depth = sum_k bary_k * z_k. So gradients
reach every vertex of every covering face, visible or hidden behind another person.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import warp as wp

from ops._warp import check_mesh_inputs, launch, ready

__all__ = ["Raster", "rasterize", "depth_maps", "raster_depth", "instance_map", "BACKENDS",
           "NEAR", "FrontSurface", "front_surface", "lambert"]

BACKENDS = ("auto", "warp", "cpu", "nvdiffrast")
NEAR = 0.01  # metres


class Raster(NamedTuple):
    """Rasterization of P people.

    face_id: ``[P, H, W]`` long, the covering face of each person, -1 where empty.
    bary: ``[P, H, W, 3]`` perspective-correct barycentrics of that face's corners
        (0 where empty), differentiable with respect to the vertices.
    """

    face_id: torch.Tensor
    bary: torch.Tensor


# ----------------------------------------------------------------------------
# Warp z-buffer

@wp.func
def _edge(a: wp.vec3, b: wp.vec3, px: float, py: float) -> float:
    return (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])


# The z-buffer keeps, per pixel, the smallest key ``depth in micrometres * FACE_SPAN + face``:
# one atomic min gives the nearest face, ties (depths within a micrometre) going to the
# smaller face id.
FACE_SPAN = wp.constant(2**24)  # most faces a mesh may have
_DEPTH_SCALE = wp.constant(1.0e6)  # key units per metre
_MAX_KEY_DEPTH = wp.constant(1.0e5)  # metres; farther surfaces share it (no int64 overflow)
_EMPTY_KEY = 2**63 - 1


@wp.kernel
def _zbuffer_kernel(screen: wp.array2d(dtype=wp.vec3), faces: wp.array(dtype=wp.vec3i),
                    near: float, key: wp.array3d(dtype=wp.int64)):
    """One thread per (person, face); ``screen[p, v] = (u, v, z)``."""
    p, f = wp.tid()
    a = screen[p, faces[f][0]]
    b = screen[p, faces[f][1]]
    c = screen[p, faces[f][2]]
    if wp.min(wp.min(a[2], b[2]), c[2]) < near:
        return
    area = _edge(a, b, c[0], c[1])
    if wp.abs(area) < 1.0e-12:
        return
    height = key.shape[1]
    width = key.shape[2]
    x0 = wp.max(int(wp.ceil(wp.min(wp.min(a[0], b[0]), c[0]) - 0.5)), 0)
    x1 = wp.min(int(wp.floor(wp.max(wp.max(a[0], b[0]), c[0]) - 0.5)), width - 1)
    y0 = wp.max(int(wp.ceil(wp.min(wp.min(a[1], b[1]), c[1]) - 0.5)), 0)
    y1 = wp.min(int(wp.floor(wp.max(wp.max(a[1], b[1]), c[1]) - 0.5)), height - 1)
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            px = float(x) + 0.5
            py = float(y) + 0.5
            l0 = _edge(b, c, px, py) / area
            l1 = _edge(c, a, px, py) / area
            l2 = _edge(a, b, px, py) / area
            if l0 >= 0.0 and l1 >= 0.0 and l2 >= 0.0:
                depth = wp.min(1.0 / (l0 / a[2] + l1 / b[2] + l2 / c[2]), _MAX_KEY_DEPTH)
                packed = wp.int64(depth * _DEPTH_SCALE) * wp.int64(FACE_SPAN) + wp.int64(f)
                wp.atomic_min(key, p, y, x, packed)


def _face_ids_warp(screen: torch.Tensor, faces: torch.Tensor,
                   size: tuple[int, int]) -> torch.Tensor:
    """``screen [P, V, 3]`` (u, v, z) -> ``face_id [P, H, W]`` with the Warp z-buffer."""
    if faces.shape[0] > FACE_SPAN:
        raise ValueError(f"rasterize: at most {FACE_SPAN} faces, got {faces.shape[0]}")
    num_people = screen.shape[0]
    key = torch.full((num_people, *size), _EMPTY_KEY, dtype=torch.int64, device=screen.device)
    if num_people and faces.shape[0]:
        ready()
        launch(_zbuffer_kernel, (num_people, faces.shape[0]),
               [wp.from_torch(screen.detach().float().contiguous(), dtype=wp.vec3),
                wp.from_torch(faces.to(screen.device, torch.int32).contiguous(), dtype=wp.vec3i),
                NEAR, wp.from_torch(key, dtype=wp.int64)], like=screen)
    return torch.where(key == _EMPTY_KEY, -1, key % FACE_SPAN)


# ----------------------------------------------------------------------------
# nvdiffrast

_NVDIFFRAST_CONTEXTS: dict = {}


def _clip_space(vertices_cam: torch.Tensor, K: torch.Tensor, size: tuple[int, int],
                far: float = 1000.0) -> torch.Tensor:
    """OpenGL clip coordinates ``[P, V, 4]`` such that nvdiffrast's row r (bottom first)
    is our row H - 1 - r and its pixel centres are ours."""
    height, width = size
    x, y, z = vertices_cam.unbind(-1)
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2] * z  # u * z
    v = K[1, 1] * y + K[1, 2] * z  # v * z
    clip_x = 2 * u / width - z
    clip_y = z - 2 * v / height
    clip_z = (far + NEAR) / (far - NEAR) * z - 2 * far * NEAR / (far - NEAR)
    return torch.stack([clip_x, clip_y, clip_z, z], dim=-1)


def _rasterize_nvdiffrast(vertices_cam, faces, K, size) -> tuple[torch.Tensor, torch.Tensor]:
    """face_id ``[P, H, W]`` and differentiable (u, v, 1-u-v) ``[P, H, W, 3]``."""
    import nvdiffrast.torch as dr  # optional extra, CUDA only

    if vertices_cam.device.type != "cuda":
        raise ValueError("rasterize: the nvdiffrast backend needs CUDA tensors")
    context = _NVDIFFRAST_CONTEXTS.get(vertices_cam.device)
    if context is None:
        context = _NVDIFFRAST_CONTEXTS[vertices_cam.device] = dr.RasterizeCudaContext(
            device=vertices_cam.device)
    pos = _clip_space(vertices_cam.float(), K.float(), size).contiguous()
    rast, _ = dr.rasterize(context, pos, faces.int().contiguous(), resolution=list(size))
    rast = rast.flip(1)  # bottom-row-first -> top-down
    face_id = rast[..., 3].detach().long() - 1
    u, v = rast[..., 0], rast[..., 1]
    bary = torch.stack([u, v, 1 - u - v], dim=-1) * (face_id >= 0)[..., None]
    return face_id, bary


# ----------------------------------------------------------------------------
# Public ops

def _screen(vertices_cam: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``[P, V, 3]`` camera points -> (u, v, z) with u, v in pixels."""
    homogeneous = torch.einsum("ij,pvj->pvi", K.to(vertices_cam), vertices_cam)
    z = vertices_cam[..., 2:3]
    return torch.cat([homogeneous[..., :2] / z, z], dim=-1)


class _Covered(NamedTuple):
    """The covered pixels only: ``pixels`` = (person, row, col) index tensors ``[M]``,
    their ``faces [M]`` and differentiable ``bary [M, 3]``."""

    face_id: torch.Tensor
    pixels: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    faces: torch.Tensor
    bary: torch.Tensor


def _perspective_barycentrics(screen: torch.Tensor, faces: torch.Tensor,
                              face_id: torch.Tensor) -> _Covered:
    """Differentiable barycentrics of the covering faces at the pixel centres."""
    person, row, col = (face_id >= 0).nonzero(as_tuple=True)
    covering = face_id[person, row, col]
    corners = screen[person[:, None], faces[covering]]  # [M, 3 corners, (u, v, z)]
    px, py = col.to(screen.dtype) + 0.5, row.to(screen.dtype) + 0.5
    a, b, c = corners.unbind(1)

    def edge(p, q):  # signed area of (p, q, pixel centre)
        return (q[:, 0] - p[:, 0]) * (py - p[:, 1]) - (q[:, 1] - p[:, 1]) * (px - p[:, 0])

    screen_bary = torch.stack([edge(b, c), edge(c, a), edge(a, b)], dim=-1)
    screen_bary = screen_bary / screen_bary.sum(-1, keepdim=True)  # sum = signed area
    weighted = screen_bary / corners[..., 2]  # perspective correction: l_k / z_k
    bary = weighted / weighted.sum(-1, keepdim=True)
    return _Covered(face_id, (person, row, col), covering, bary)


def _rasterize_covered(vertices_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
                       size: tuple[int, int], backend: str) -> _Covered:
    check_mesh_inputs("rasterize", vertices_cam, faces)
    if K.shape != (3, 3):
        raise ValueError(f"rasterize: K must be [3, 3], got {list(K.shape)}")
    size = (int(size[0]), int(size[1]))
    if _resolve_backend(backend, vertices_cam) == "nvdiffrast":
        face_id, dense_bary = _rasterize_nvdiffrast(vertices_cam, faces, K, size)
        pixels = (face_id >= 0).nonzero(as_tuple=True)
        return _Covered(face_id, pixels, face_id[pixels], dense_bary[pixels])
    screen = _screen(vertices_cam, K)
    return _perspective_barycentrics(screen, faces, _face_ids_warp(screen, faces, size))


def _resolve_backend(backend: str, vertices: torch.Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"rasterize: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cpu":
        return "warp"
    if backend == "auto":
        if vertices.device.type != "cuda":
            return "warp"
        try:
            import nvdiffrast.torch  # noqa: F401
        except ImportError:
            return "warp"
        return "nvdiffrast"
    return backend


def rasterize(vertices_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
              size: tuple[int, int], backend: str = "auto") -> Raster:
    """Rasterize each person on its own.

    Args:
        vertices_cam: ``[P, V, 3]`` camera-frame vertices (metres), finite.
        faces: ``[F, 3]`` long, shared topology.
        K: ``[3, 3]`` intrinsics of the image.
        size: ``(H, W)`` in pixels.
        backend: ``auto`` (nvdiffrast for CUDA tensors when installed, else warp),
            ``warp``/``cpu`` or ``nvdiffrast``.
    Returns:
        :class:`Raster` (``face_id`` -1 where a person does not cover the pixel).
    """
    faces = faces.to(vertices_cam.device).long()
    covered = _rasterize_covered(vertices_cam, faces, K, size, backend)
    bary = vertices_cam.new_zeros(*covered.face_id.shape, 3)
    return Raster(covered.face_id, bary.index_put(covered.pixels, covered.bary))


def depth_maps(vertices_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
               size: tuple[int, int], backend: str = "auto") -> torch.Tensor:
    """Camera-z of each person's front surface: ``[P, H, W]``, ``inf`` where empty.
    Differentiable with respect to ``vertices_cam`` (through barycentrics and z)."""
    faces = faces.to(vertices_cam.device).long()
    covered = _rasterize_covered(vertices_cam, faces, K, size, backend)
    person = covered.pixels[0]
    corner_z = vertices_cam[..., 2][person[:, None], faces[covered.faces]]  # [M, 3]
    depth = torch.full(covered.face_id.shape, float("inf"), dtype=vertices_cam.dtype,
                       device=vertices_cam.device)
    return depth.index_put(covered.pixels, (covered.bary * corner_z).sum(-1))


def raster_depth(raster: Raster, vertices_cam: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Depth maps ``[P, H, W]`` (``inf`` where empty) from an existing :class:`Raster`,
    for callers that need the face ids too (e.g. shading)."""
    faces = faces.to(vertices_cam.device).long()
    person = torch.arange(vertices_cam.shape[0], device=vertices_cam.device)[:, None, None]
    corner_z = vertices_cam[..., 2][person[..., None], faces[raster.face_id.clamp(min=0)]]
    depth = (raster.bary * corner_z).sum(-1)
    return torch.where(raster.face_id >= 0, depth, torch.full_like(depth, float("inf")))


def instance_map(depths: torch.Tensor) -> torch.Tensor:
    """``depths [P, H, W]`` -> ``[H, W]`` long: front-most person id + 1, 0 background."""
    if depths.shape[0] == 0:
        return torch.zeros(depths.shape[1:], dtype=torch.long, device=depths.device)
    nearest, index = depths.min(dim=0)
    return torch.where(torch.isfinite(nearest), index + 1, 0)


# ----------------------------------------------------------------------------
# Shading the front surface (pictures, not losses)

class FrontSurface(NamedTuple):
    """The front-most surface at every covered pixel of a scene.

    rows, cols: ``[M]`` the covered pixels. person, face: ``[M]`` the front-most person
    there and its face. normal: ``[M, 3]`` that face's unit normal, turned towards the
    camera.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    person: torch.Tensor
    face: torch.Tensor
    normal: torch.Tensor


def front_surface(raster: Raster, depths: torch.Tensor, vertices_cam: torch.Tensor,
                  faces: torch.Tensor) -> FrontSurface:
    """The front surface of a scene from its per-person ``raster`` and ``depths``
    ``[P, H, W]`` (:func:`raster_depth`)."""
    front = depths.argmin(dim=0)  # [H, W]
    covered = torch.isfinite(depths.min(dim=0).values)
    rows, cols = covered.nonzero(as_tuple=True)
    person = front[rows, cols]
    face = raster.face_id[person, rows, cols]
    corners = vertices_cam[person[:, None], faces[face]]  # [M, 3, 3]
    normal = torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1)
    normal = torch.nn.functional.normalize(normal, dim=-1)
    view = torch.nn.functional.normalize(corners.mean(1), dim=-1)
    normal = torch.where((normal * view).sum(-1, keepdim=True) > 0, -normal, normal)
    return FrontSurface(rows, cols, person, face, normal)


def lambert(normal: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """``[M]`` brightness in [0.35, 1] of surfaces with unit ``normal [M, 3]`` under a
    directional ``light [3]`` (the direction it shines along), plus ambient light."""
    return 0.35 + 0.65 * (normal @ -light).clamp(min=0)
