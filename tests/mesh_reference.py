"""Slow, obviously-correct references for the mesh ops (numpy, float64).

- Point-triangle distance: project onto the triangle's plane; if the projection is
  inside, that is the closest point, otherwise the closest point lies on one of the
  three edges (clamped segment projection). Exhaustive over all triangles.
- Inside test: the generalised winding number, the sum of the solid angles of all
  triangles seen from the point (van Oosterom & Strackee), divided by 4 pi.
- Depth maps: a z-buffer that casts the ray of every pixel centre against every
  triangle (Moller-Trumbore) and keeps the nearest hit.
"""

from __future__ import annotations

import numpy as np


def _segment_distance(points, a, b):
    """[M, F] distance from points [M, 3] to segments a[F, 3] -> b[F, 3]."""
    ab = b - a
    ap = points[:, None] - a[None]
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-300), 0.0, 1.0)
    return np.linalg.norm(ap - t[..., None] * ab, axis=-1)


def point_mesh_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unsigned distance [M] from each point to the nearest triangle."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    ap = points[:, None] - a[None]
    height = (ap * normal).sum(-1)  # [M, F]
    projected = points[:, None] - height[..., None] * normal  # [M, F, 3]

    def same_side(p, q, r):  # is projected on the inner side of edge p->q (r is the third)
        edge = q - p
        return (np.cross(edge, projected - p) * np.cross(edge, r - p)).sum(-1) >= 0

    inside = same_side(a, b, c) & same_side(b, c, a) & same_side(c, a, b)
    edges = np.minimum(np.minimum(_segment_distance(points, a, b), _segment_distance(points, b, c)),
                       _segment_distance(points, c, a))
    return np.where(inside, np.abs(height), edges).min(axis=1)


def winding_number(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number [M]: 1 inside a closed outward mesh, 0 outside."""
    a, b, c = (vertices[faces[:, k]][None] - points[:, None] for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    numerator = (a * np.cross(b, c)).sum(-1)
    denominator = (la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la
                   + (c * a).sum(-1) * lb)
    return 2 * np.arctan2(numerator, denominator).sum(axis=1) / (4 * np.pi)


def penetration_reference(points, vertices, faces) -> np.ndarray:
    """phi = distance inside, 0 outside."""
    inside = winding_number(points, vertices, faces) > 0.5
    return np.where(inside, point_mesh_distance(points, vertices, faces), 0.0)


def zbuffer_reference(vertices_cam: np.ndarray, faces: np.ndarray, K: np.ndarray,
                      height: int, width: int) -> np.ndarray:
    """[H, W] camera-z of the nearest surface along each pixel-centre ray, inf if none."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    rays = rays.reshape(-1, 3)  # ray(t) = t * d, so t is camera z
    a, b, c = (vertices_cam[faces[:, k]] for k in range(3))
    e1, e2 = b - a, c - a
    depth = np.full(len(rays), np.inf)
    for start in range(0, len(rays), 256):
        d = rays[start:start + 256, None]  # [R, 1, 3]
        pvec = np.cross(d, e2[None])
        det = (e1[None] * pvec).sum(-1)
        ok = np.abs(det) > 1e-12
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        tvec = -a[None]
        s1 = (tvec * pvec).sum(-1) * inv
        qvec = np.cross(tvec, e1[None])
        s2 = (d * qvec).sum(-1) * inv
        t = (e2[None] * qvec).sum(-1) * inv
        hit = ok & (s1 >= 0) & (s2 >= 0) & (s1 + s2 <= 1) & (t > 0)
        depth[start:start + 256] = np.where(hit, t, np.inf).min(axis=1)
    return depth.reshape(height, width)
