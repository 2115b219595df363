"""Depth-map speed: our per-person rasterizer vs Embree ray casting (trimesh + embreex).

Four posed Anny bodies at 512x832, each rendered on its own. Target (issue 3): at least
4x faster than casting every pixel ray against every person with Embree. With a GPU, the
same renders also run on CUDA (Warp; nvdiffrast too when installed).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
import trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from bench._scenes import DEVICES, posed_bodies, time_ms
from ops.raster import depth_maps

SIZE = (512, 832)


def embree_depth_maps(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor):
    """Camera-z of the first hit of every pixel-centre ray, per person."""
    height, width = SIZE
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    k = K.numpy()
    directions = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    directions = directions.reshape(-1, 3)
    origins = np.zeros_like(directions)
    maps = np.full((len(vertices), height * width), np.inf)
    for p, person in enumerate(vertices.numpy()):
        caster = RayMeshIntersector(trimesh.Trimesh(person, faces.numpy(), process=False))
        locations, ray_index, _ = caster.intersects_location(origins, directions,
                                                             multiple_hits=False)
        maps[p, ray_index] = locations[:, 2]
    return maps.reshape(len(vertices), height, width)


def backends() -> list[tuple[str, str]]:
    """(device, backend) pairs to time: the CPU kernel, Warp on CUDA and nvdiffrast."""
    pairs = [("cpu", "warp")]
    if "cuda" in DEVICES:
        pairs.append(("cuda", "warp"))
        if importlib.util.find_spec("nvdiffrast") is not None:
            pairs.append(("cuda", "nvdiffrast"))
    return pairs


def forward_backward(vertices, faces, K, backend: str) -> None:
    leaf = vertices.clone().requires_grad_(True)
    depth = depth_maps(leaf, faces, K, SIZE, backend=backend)
    torch.where(torch.isfinite(depth), depth, 0).sum().backward()


def main() -> None:
    vertices, faces, K, _ = posed_bodies(4)
    ours = depth_maps(vertices, faces, K, SIZE)
    reference = embree_depth_maps(vertices, faces, K)
    both = torch.isfinite(ours).numpy() & np.isfinite(reference)
    agree = (torch.isfinite(ours).numpy() == np.isfinite(reference)).mean()
    error = np.abs(ours.numpy()[both] - reference[both]).max()
    print(f"coverage agreement {agree:.5f}, max depth difference {error * 1e3:.3f} mm")

    baseline = time_ms(lambda: embree_depth_maps(vertices, faces, K), repeats=2)
    rows = [("Embree ray casting (baseline)", baseline)]
    for device, backend in backends():
        inputs = (vertices.to(device), faces.to(device), K.to(device))
        label = f"crmh {backend}" + (" CUDA" if device == "cuda" else "")
        rows += [(f"{label} forward",
                  time_ms(lambda i=inputs, b=backend: depth_maps(*i, SIZE, backend=b), 5)),
                 (f"{label} forward+backward",
                  time_ms(lambda i=inputs, b=backend: forward_backward(*i, b), 5))]
    print(f"{'4 people, 512x832':40s} {'ms':>8s} {'speed-up':>9s}")
    for name, ms in rows:
        print(f"{name:40s} {ms:8.1f} {baseline / ms:8.1f}x")


if __name__ == "__main__":
    main()
