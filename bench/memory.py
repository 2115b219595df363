"""Peak memory of the scene losses for 8 people at 512x832 (issue 3 target: < 2 GB).

Runs the collision loss (32^3 grids), the per-person depth maps and the depth-order
loss, forward and backward, while a thread samples the process's resident memory
every 2 ms; prints the peak above the resident memory just before the step, beside
the same measurement for a 2-person scene. Each measurement runs in a fresh process
(memory freed by an earlier run would otherwise hide the new peak); kernels are
compiled on a tiny scene first.
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import psutil
import torch

from bench._scenes import posed_bodies
from ops.collision import collision_loss
from ops.depth_order import depth_order_loss
from ops.raster import depth_maps, instance_map

SIZE = (512, 832)


def scene_step(vertices, faces, K, gt) -> None:
    leaf = vertices.clone().requires_grad_(True)
    depths = depth_maps(leaf, faces, K, SIZE)
    loss = collision_loss(leaf, faces) + depth_order_loss(depths, gt)
    loss.backward()


def peak_extra_mb(fn) -> float:
    process = psutil.Process()
    start = process.memory_info().rss
    peak, done = [start], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    fn()
    done.set()
    sampler.join()
    return (max(peak[0], process.memory_info().rss) - start) / 2**20


def measure(count: int) -> float:
    """Peak extra memory (MB) of one scene step with ``count`` people, in this process."""
    vertices, faces, K, _ = posed_bodies(count)
    ordered = instance_map(depth_maps(vertices, faces, K, SIZE))
    gt = torch.where(ordered > 0, count + 1 - ordered, 0)  # reversed ids: ordering mistakes
    tiny = vertices[:2] * torch.tensor([1.0, 1.0, 4.0])  # far away: a small image region
    scene_step(tiny, faces, K, torch.zeros(SIZE, dtype=torch.long))  # compile the kernels
    return peak_extra_mb(lambda: scene_step(vertices, faces, K, gt))


def main() -> None:
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        rows = [(count, pool.apply(measure, (count,))) for count in (2, 8)]
    print(f"{'people at 512x832':20s} {'peak extra MB':>14s} {'of 2 GB budget':>15s}")
    for count, mb in rows:
        print(f"{count:<20d} {mb:14.0f} {mb / 2048:14.1%}")


if __name__ == "__main__":
    main()
