"""NVIDIA Warp set-up shared by the mesh ops: one kernel source runs on CPU and CUDA.

Warp is configured and initialised on first use (:func:`ready`), not at import.
Warp compiles each kernel module at its first launch on a device (a few seconds on
CPU) and caches the binary in ``~/.cache/warp``; later processes load it in
milliseconds.
"""

from __future__ import annotations

from functools import cache

import torch
import warp as wp


@cache
def ready() -> None:
    """Configure and initialise Warp once, quietly (errors are still raised)."""
    wp.config.quiet = True  # no banner on init
    wp.config.log_level = wp.LOG_WARNING  # no "Module ... load on device" line per kernel
    wp.init()


def warp_device(tensor: torch.Tensor) -> str:
    """The Warp device that shares memory with ``tensor`` ("cpu" or "cuda:N")."""
    if tensor.device.type == "cuda":
        return f"cuda:{tensor.device.index or 0}"
    if tensor.device.type == "cpu":
        return "cpu"
    raise ValueError(f"mesh ops run on CPU or CUDA tensors, got device {tensor.device}")


def to_vec3(points: torch.Tensor) -> wp.array:
    """``[N, 3]`` tensor -> Warp ``vec3`` array sharing memory (float32, contiguous)."""
    ready()
    return wp.from_torch(points.detach().float().contiguous(), dtype=wp.vec3)


def check_finite(name: str, vertices: torch.Tensor) -> None:
    """Clear error instead of a NaN propagating through a kernel."""
    # A finite sum means finite entries (a NaN or inf would carry into it): one pass over
    # the values, a quarter of the time of testing each. Only an infinite sum (a bad value,
    # or finite ones overflowing) pays for the test of each.
    if not torch.isfinite(vertices.detach().sum()) and not torch.isfinite(vertices).all():
        bad = (~torch.isfinite(vertices)).reshape(vertices.shape[0], -1).any(-1)
        raise ValueError(f"{name}: vertices of person(s) {bad.nonzero().flatten().tolist()} "
                         "contain NaN or inf")


def check_mesh_inputs(name: str, vertices: torch.Tensor, faces: torch.Tensor) -> None:
    """``vertices [P, V, 3]`` finite, ``faces [F, 3]`` integer indices into V."""
    if vertices.dim() != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"{name}: vertices must be [P, V, 3], got {list(vertices.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3 or faces.dtype.is_floating_point:
        raise ValueError(f"{name}: faces must be integer [F, 3], got {faces.dtype} "
                         f"{list(faces.shape)}")
    if faces.numel() and (faces.min() < 0 or faces.max() >= vertices.shape[1]):
        raise ValueError(f"{name}: face indices must lie in [0, {vertices.shape[1]})")
    check_finite(name, vertices)


def launch(kernel: wp.Kernel, dim: int | tuple[int, ...], inputs: list,
           like: torch.Tensor) -> None:
    """Run ``kernel`` on the device of ``like``. On CUDA it is queued on PyTorch's
    current stream, so it is ordered with the surrounding torch ops."""
    ready()
    device = warp_device(like)
    stream = wp.stream_from_torch(like.device) if like.device.type == "cuda" else None
    wp.launch(kernel, dim=dim, inputs=inputs, device=device, stream=stream)
    if stream is None:
        wp.synchronize_device(device)
