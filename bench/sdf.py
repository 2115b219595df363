"""SDF grid speed: our Warp kernel vs trimesh's signed distance, per grid point.

Prints ms per posed Anny body at 32^3 and 64^3, and trimesh.proximity.signed_distance
on the same body's grid points (at 16^3: 32^3 takes minutes). Target (issue 3): at
least 2000x faster per grid point, i.e. <= ~40 ms per body at 32^3. The first row
rebuilds every BVH (as before the meshes were kept between calls and refitted). With a
GPU, the same bodies also run on CUDA (rows marked CUDA).
"""

from __future__ import annotations

import torch
import trimesh

import ops.sdf
from bench._scenes import DEVICES, posed_bodies, time_ms
from ops.sdf import sdf_grid


def grid_points(vertices: torch.Tensor, size: int, padding: float = 0.2):
    low, high = vertices.amin(0), vertices.amax(0)
    centre, half = (low + high) / 2, (1 + padding) * (high - low).amax() / 2
    axis = torch.linspace(-1, 1, size)
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    return (centre + half * torch.stack([xx, yy, zz], -1)).reshape(-1, 3)


def main() -> None:
    bodies, faces, _, _ = posed_bodies(4)
    rows = []
    rebuilt = time_ms(lambda: (ops.sdf.clear_mesh_cache(), sdf_grid(bodies, faces, 32)),
                      repeats=3) / len(bodies)
    rows.append(("sdf_grid 32^3, BVHs rebuilt", rebuilt, rebuilt / 32**3))
    for device in DEVICES:
        on = (bodies.to(device), faces.to(device))
        suffix = " (CUDA)" if device == "cuda" else ""
        for size in (32, 64):
            ms = time_ms(lambda size=size, on=on: sdf_grid(*on, size), repeats=3) / len(bodies)
            rows.append((f"crmh sdf_grid {size}^3{suffix}", ms, ms / size**3))
    mesh = trimesh.Trimesh(bodies[0].numpy(), faces.numpy(), process=False)
    points = grid_points(bodies[0], 16).numpy()
    baseline = time_ms(lambda: trimesh.proximity.signed_distance(mesh, points), repeats=1)
    rows.append(("trimesh signed_distance 16^3", baseline, baseline / 16**3))
    print(f"{'method':32s} {'ms/body':>10s} {'us/point':>10s} {'speed-up/point':>15s}")
    for name, ms, per_point in rows:
        print(f"{name:32s} {ms:10.1f} {per_point * 1e3:10.3f} {rows[-1][2] / per_point:14.0f}x")


if __name__ == "__main__":
    main()
