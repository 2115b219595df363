"""Shared benchmark inputs: posed Anny bodies standing in front of a camera."""

from __future__ import annotations

import argparse
import time

import torch

from model.body import load_body_model
from ops.geometry import axis_angle_to_matrix

# A body facing the camera: rotate the body frame (y up, facing +z) into OpenCV's (y down).
FACING_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def posed_bodies(count: int, seed: int = 0):
    """``count`` Anny bodies with mildly random poses and shapes, side by side 4-6 m
    away and overlapping in the image. Returns (vertices_cam [P, V, 3], faces, K, body)."""
    body = load_body_model("anny")
    gen = torch.Generator().manual_seed(seed)
    rotmats = axis_angle_to_matrix(torch.randn(count, body.num_joints, 3, generator=gen) * 0.2)
    rotmats[:, 0] = FACING_CAMERA
    shape = 0.3 + 0.4 * torch.rand(count, body.shape_dim, generator=gen)
    with torch.no_grad():
        vertices = body(rotmats, shape).vertices
    x = torch.linspace(-1.2, 1.2, count) if count > 1 else torch.zeros(1)
    depth = 4.0 + 2.0 * torch.rand(count, generator=gen)
    transl = torch.stack([x, torch.full((count,), 0.3), depth], dim=1)
    K = torch.tensor([[1000.0, 0.0, 416.0], [0.0, 1000.0, 256.0], [0.0, 0.0, 1.0]])
    return vertices + transl[:, None], body.faces, K, body


# CUDA rows are added to a benchmark when a GPU is present (the CPU rows stay beside them).
DEVICES = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def parse_device(description: str) -> str:
    """The ``--device`` option of a single-device benchmark: CUDA when a GPU is present,
    unless ``--device cpu`` asks for the CPU."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args().device


def describe(device: str) -> str:
    """``device`` with the GPU's name, for a benchmark's header."""
    return f"cuda ({torch.cuda.get_device_name()})" if device == "cuda" else device


def synchronize() -> None:
    """Wait for queued CUDA work, so that a wall-clock time includes it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_ms(fn, repeats: int) -> float:
    """Mean wall time of ``fn()`` in milliseconds after one warm-up call (CUDA work
    included: the queue is drained before each reading)."""
    fn()
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize()
    return (time.perf_counter() - start) / repeats * 1e3
