"""Camera helpers the readers need: solving pinhole intrinsics from 2D-3D pairs, and
projecting with OpenCV's lens distortion.

Both are a few lines of linear algebra on NumPy arrays; the readers run without
torch tensors or OpenCV.
"""

from __future__ import annotations

import numpy as np

__all__ = ["solve_intrinsics", "project_distorted"]


def solve_intrinsics(points3d: np.ndarray, points2d: np.ndarray) -> tuple[np.ndarray, float]:
    """Pinhole intrinsics that best map camera-frame points to their pixels.

    Solves ``u = fx X/Z + cx`` and ``v = fy Y/Z + cy`` by linear least squares.

    Args:
        points3d: ``[N, 3]`` camera-frame points (Z > 0), any unit.
        points2d: ``[N, 2]`` their pixel positions.
    Returns:
        ``K [3, 3]`` (float64) and the root-mean-square reprojection error in pixels.
    """
    if len(points3d) != len(points2d) or len(points3d) < 3:
        raise ValueError(f"solve_intrinsics: need at least 3 matching 2D-3D pairs, got "
                         f"{len(points3d)} and {len(points2d)}")
    if (points3d[:, 2] <= 0).any():
        raise ValueError("solve_intrinsics: every 3D point must be in front of the camera")
    normalised = points3d[:, :2] / points3d[:, 2:3]  # [N, 2] (X/Z, Y/Z)
    K = np.eye(3)
    residuals = []
    for axis in (0, 1):
        design = np.stack([normalised[:, axis], np.ones(len(normalised))], axis=1)  # [N, 2]
        if np.linalg.matrix_rank(design) < 2:
            raise ValueError("solve_intrinsics: the points do not constrain the focal length "
                             "(all on one ray)")
        (focal, centre), *_ = np.linalg.lstsq(design, points2d[:, axis], rcond=None)
        K[axis, axis], K[axis, 2] = focal, centre
        residuals.append(design @ np.array([focal, centre]) - points2d[:, axis])
    rms = float(np.sqrt(np.mean(np.square(residuals))))
    return K, rms


def project_distorted(points: np.ndarray, K: np.ndarray, distortion: np.ndarray) -> np.ndarray:
    """Project camera-frame ``points [..., 3]`` with OpenCV's radial-tangential model.

    Args:
        K: ``[3, 3]`` intrinsics.
        distortion: ``(k1, k2, p1, p2, k3)``.
    Returns:
        ``[..., 2]`` pixel positions.
    """
    k1, k2, p1, p2, k3 = np.asarray(distortion, dtype=np.float64)
    x = points[..., 0] / points[..., 2]
    y = points[..., 1] / points[..., 2]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    x_d = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    y_d = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    u = K[0, 0] * x_d + K[0, 1] * y_d + K[0, 2]
    v = K[1, 1] * y_d + K[1, 2]
    return np.stack([u, v], axis=-1)
