"""Pinhole camera: the paper's per-box camera, projection, and intrinsics helpers.

Camera frame: OpenCV (x right, y down, z forward), metres. Pixel centres sit at
integer + 0.5, so resizing an image by a factor ``r`` maps a continuous pixel
coordinate ``u`` to ``r * u`` exactly, and ``K`` scales the same way.

The network predicts, for each detected box, a weak-perspective-style camera
``(s, x, y)``. The official implementation turns it into a full-image translation of
the body origin (the pelvis) with one pinhole camera per image:

    b   = max(box width, box height)
    t_z = 2 f / (s b)
    (t_x, t_y) = t_z (box centre + (x, y) b - c) / f

so the origin projects exactly at ``box centre + (x, y) b`` and ``(x, y)`` are offsets
in units of the box size (not divided by ``s``, unlike HMR's crop camera).
"""

from __future__ import annotations

import torch

__all__ = [
    "box_camera_to_translation",
    "translation_to_box_camera",
    "project",
    "intrinsics_matrix",
    "scale_intrinsics",
    "shift_intrinsics",
    "letterbox",
    "default_intrinsics",
    "predicted_translations",
    "MIN_CAMERA_SCALE",
    "OFFICIAL_FOCAL",
    "OFFICIAL_INPUT",
]

MIN_CAMERA_SCALE = 1e-2  # s <= 0 would put the body behind the camera

# The official camera: f = 1000 px at the 832 x 512 network input, for every image.
OFFICIAL_FOCAL = 1000.0
OFFICIAL_INPUT = (512, 832)  # (height, width)


def _box_centre_and_size(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``boxes [N, 4]`` xyxy -> centre ``[N, 2]`` and size ``b = max(w, h)`` ``[N]``."""
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes: expected [N, 4] xyxy, got {list(boxes.shape)}")
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = (boxes[:, 2:] - boxes[:, :2]).abs().amax(dim=-1)
    return centre, size


def _focal_and_centre(
    focal: float | torch.Tensor, center: torch.Tensor, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    focal = torch.as_tensor(focal, dtype=like.dtype, device=like.device).reshape(-1)  # [1] or [N]
    center = torch.as_tensor(center, dtype=like.dtype, device=like.device).reshape(-1, 2)
    return focal, center


def box_camera_to_translation(
    cam: torch.Tensor, boxes: torch.Tensor, focal: float | torch.Tensor, center: torch.Tensor
) -> torch.Tensor:
    """The paper's conversion from per-box camera to full-image translation.

    Args:
        cam: ``[N, 3]`` predicted ``(s, x, y)``; ``s`` must be positive.
        boxes: ``[N, 4]`` xyxy pixel boxes the cameras belong to.
        focal: focal length in pixels, a float or ``[N]``.
        center: principal point ``[2]`` or ``[N, 2]`` in pixels.
    Returns:
        ``[N, 3]`` camera-frame translation of each body origin (metres).
    """
    if cam.dim() != 2 or cam.shape[-1] != 3 or cam.shape[0] != boxes.shape[0]:
        raise ValueError(f"cam: expected [N, 3] matching boxes [N, 4], got {list(cam.shape)} "
                         f"and {list(boxes.shape)}")
    box_centre, size = _box_centre_and_size(boxes)
    focal, center = _focal_and_centre(focal, center, cam)
    t_z = 2 * focal / (cam[:, 0] * size)  # [N]
    origin_px = box_centre + cam[:, 1:] * size[:, None]  # [N, 2]
    t_xy = t_z[:, None] * (origin_px - center) / focal[:, None]
    return torch.cat([t_xy, t_z[:, None]], dim=-1)


def predicted_translations(cam: torch.Tensor, boxes: list[torch.Tensor],
                           intrinsics: list[torch.Tensor]) -> list[torch.Tensor]:
    """The network's per-box cameras as translations, image by image.

    Args:
        cam: ``[N, 3]`` predicted ``(s, x, y)`` of all images' boxes, in image order.
        boxes: per image ``[N_i, 4]`` xyxy (N = sum of N_i).
        intrinsics: per image ``[3, 3]``.
    Returns:
        per image ``[N_i, 3]``. ``s`` is clamped at :data:`MIN_CAMERA_SCALE`, so a body
        is never placed behind the camera.
    """
    cams = cam.split([len(b) for b in boxes])
    safe = [torch.cat([c[:, :1].clamp(min=MIN_CAMERA_SCALE), c[:, 1:]], 1) for c in cams]
    return [box_camera_to_translation(c, b, K[0, 0], K[:2, 2])
            for c, b, K in zip(safe, boxes, intrinsics, strict=True)]


def translation_to_box_camera(
    transl: torch.Tensor, boxes: torch.Tensor, focal: float | torch.Tensor, center: torch.Tensor
) -> torch.Tensor:
    """Inverse of :func:`box_camera_to_translation`: ``transl [N, 3]`` (``t_z > 0``)
    and ``boxes [N, 4]`` -> ``cam [N, 3]`` ``(s, x, y)``. Used to build camera targets."""
    box_centre, size = _box_centre_and_size(boxes)
    focal, center = _focal_and_centre(focal, center, transl)
    t_z = transl[:, 2]
    s = 2 * focal / (t_z * size)
    origin_px = focal[:, None] * transl[:, :2] / t_z[:, None] + center
    xy = (origin_px - box_centre) / size[:, None]
    return torch.cat([s[:, None], xy], dim=-1)


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Perspective projection of camera-frame points.

    Args:
        points: ``[..., 3]`` camera-frame points (z > 0 in front of the camera).
        K: ``[3, 3]`` intrinsics, or ``[..., 3, 3]`` broadcastable to the points' batch.
    Returns:
        ``[..., 2]`` pixel coordinates.
    """
    if points.shape[-1] != 3 or K.shape[-2:] != (3, 3):
        raise ValueError(f"project: expected points [..., 3] and K [..., 3, 3], got "
                         f"{list(points.shape)} and {list(K.shape)}")
    if K.dim() == 2:
        homogeneous = points @ K.T
    else:
        homogeneous = torch.einsum("...ij,...j->...i", K, points)
    return homogeneous[..., :2] / homogeneous[..., 2:3]


def intrinsics_matrix(
    focal: float, width: int, height: int, center: tuple[float, float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``K [3, 3]`` with square pixels; the principal point defaults to the image
    centre ``(width / 2, height / 2)``."""
    cx, cy = center if center is not None else (width / 2, height / 2)
    return torch.tensor([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def scale_intrinsics(K: torch.Tensor, scale: float | tuple[float, float]) -> torch.Tensor:
    """Intrinsics of an image resized by ``scale`` (or ``(scale_x, scale_y)``)."""
    scale_x, scale_y = (scale, scale) if isinstance(scale, (int, float)) else scale
    factors = torch.tensor([scale_x, scale_y, 1.0], dtype=K.dtype, device=K.device)
    return factors[:, None] * K


def shift_intrinsics(K: torch.Tensor, offset_x: float, offset_y: float) -> torch.Tensor:
    """Intrinsics after pixel ``(0, 0)`` moved to ``(offset_x, offset_y)`` in the new
    image (positive for padding on the top/left, negative for cropping)."""
    shifted = K.clone()
    shifted[..., 0, 2] += offset_x
    shifted[..., 1, 2] += offset_y
    return shifted


def letterbox(
    K: torch.Tensor, width: int, height: int, out_width: int, out_height: int
) -> tuple[torch.Tensor, float]:
    """Keep-ratio resize so the image fits inside ``out_width x out_height``, then pad
    bottom/right (the official input pipeline). Padding bottom/right leaves the
    principal point where the resize put it.

    Returns:
        the new intrinsics ``[3, 3]`` and the resize factor.
    """
    factor = min(out_width / width, out_height / height)
    return scale_intrinsics(K, factor), factor


def default_intrinsics(width: int, height: int) -> torch.Tensor:
    """``K [3, 3]`` for an image of unknown intrinsics: the official camera, whose focal
    length is 1000 px once the image is letterboxed into 832 x 512, so
    ``f = 1000 / min(832 / width, 512 / height)`` in the image's own pixels, with the
    principal point at the image centre."""
    factor = min(OFFICIAL_INPUT[1] / width, OFFICIAL_INPUT[0] / height)
    return intrinsics_matrix(OFFICIAL_FOCAL / factor, width, height, dtype=torch.float64)
