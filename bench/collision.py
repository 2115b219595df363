"""Speed of the evaluation's intersection volume (Table 4; also the synthetic scene
generator's rejection test): ``ops.collision.collision_volume``, which tests only the
voxels inside both people's bounding boxes, against the whole-grid algorithm it
replaced (every voxel of each person's 64^3 cube through the SDF kernel, then the ones
inside tested against the other person), run here in the same process on the same
bodies. Both must give the same volumes; the ratio is the speed-up. With a GPU,
``collision_volume`` also runs on CUDA (same bodies, its volumes checked against the CPU's).
"""

from __future__ import annotations

import torch

from bench._scenes import DEVICES, posed_bodies, time_ms
from ops.collision import collision_volume, overlapping_pairs
from ops.sdf import penetration_depth, sdf_grid

GRID = 64


@torch.no_grad()
def whole_grid_volume(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """The previous algorithm (the baseline): full grids of everyone in a pair."""
    count = len(vertices)
    volume = torch.zeros(count, count, dtype=torch.float64)
    overlap = overlapping_pairs(vertices)
    involved = overlap.any(dim=1).nonzero().flatten().tolist()
    grid = sdf_grid(vertices[involved], faces, GRID)
    axis = torch.linspace(-1.0, 1.0, GRID)
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    unit = torch.stack([xx, yy, zz], dim=-1)
    for k, i in enumerate(involved):
        inside = grid.center[k] + grid.half[k] * unit[grid.phi[k] > 0]
        cell = (2 * grid.half[k].double() / (GRID - 1)) ** 3
        for j in overlap[i].nonzero().flatten().tolist():
            hits = int((penetration_depth(vertices[j], faces, inside) > 0).sum())
            volume[i, j] += 0.5 * hits * cell
    return volume + volume.T


def main() -> None:
    torch.set_num_threads(2)
    bodies, faces, _, _ = posed_bodies(5)
    centred = bodies - bodies.mean(dim=1, keepdim=True)
    crowd = centred + torch.tensor([[0.45 * k, 0.0, 4.5 + 0.1 * k] for k in range(5)])[:, None]
    fast, slow = collision_volume(crowd, faces, GRID), whole_grid_volume(crowd, faces)
    pairs = int((fast > 0).sum()) // 2
    same = "the same" if torch.allclose(fast, slow, rtol=0, atol=1e-12) else "DIFFERENT"
    print(f"5 people, {pairs} intersecting pairs, volumes {same} "
          f"({1e6 * float(fast.sum()) / 2:.0f} cm^3 in all)")
    baseline = time_ms(lambda: whole_grid_volume(crowd, faces), repeats=3)
    ours = time_ms(lambda: collision_volume(crowd, faces, GRID), repeats=3)
    print(f"{'whole grids (previous, baseline)':36s} {baseline:8.1f} ms/image")
    print(f"{'both boxes only (collision_volume)':36s} {ours:8.1f} ms/image  "
          f"{baseline / ours:.1f}x faster")
    if "cuda" in DEVICES:
        gpu_crowd, gpu_faces = crowd.cuda(), faces.cuda()
        gpu = collision_volume(gpu_crowd, gpu_faces, GRID).cpu()
        difference = float((gpu - fast).abs().max())
        ms = time_ms(lambda: collision_volume(gpu_crowd, gpu_faces, GRID), repeats=3)
        print(f"{'both boxes only, CUDA':36s} {ms:8.1f} ms/image  {baseline / ms:.1f}x faster "
              f"(largest volume difference to the CPU {1e6 * difference:.1f} cm^3)")


if __name__ == "__main__":
    main()
