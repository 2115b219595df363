"""Rotations and Procrustes against direct formulas, plus gradcheck."""

import math

import numpy as np
import pytest
import torch

from ops.geometry import (
    apply_similarity,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
    similarity_procrustes,
)


def rodrigues_reference(axis_angle: torch.Tensor) -> torch.Tensor:
    """R = I + sin(t) K + (1 - cos(t)) K^2, one vector at a time."""
    out = []
    for vec in axis_angle.reshape(-1, 3).double():
        angle = vec.norm()
        k = vec / angle
        K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]],
                         dtype=torch.float64)
        out.append(torch.eye(3, dtype=torch.float64) + angle.sin() * K + (1 - angle.cos()) * K @ K)
    return torch.stack(out).reshape(*axis_angle.shape[:-1], 3, 3)


def gram_schmidt_reference(x: torch.Tensor) -> torch.Tensor:
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = b2 / b2.norm(dim=-1, keepdim=True)
    return torch.stack([b1, b2, torch.cross(b1, b2, dim=-1)], dim=-1)


def random_rotations(n: int, rng: torch.Generator) -> torch.Tensor:
    return rot6d_to_matrix(torch.randn(n, 6, generator=rng, dtype=torch.float64))


def test_rot6d_matches_gram_schmidt_and_is_a_rotation(rng):
    x = torch.randn(64, 5, 6, generator=rng, dtype=torch.float64)
    R = rot6d_to_matrix(x)
    torch.testing.assert_close(R, gram_schmidt_reference(x))
    eye = torch.eye(3, dtype=torch.float64).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(64, 5, dtype=torch.float64))


def test_rot6d_round_trip(rng):
    R = random_rotations(100, rng)
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R)), R)
    # the 6D vector is literally the first two columns
    torch.testing.assert_close(matrix_to_rot6d(R)[:, :3], R[:, :, 0])


def test_axis_angle_matches_rodrigues(rng):
    axis_angle = torch.randn(50, 3, generator=rng, dtype=torch.float64) * 1.5
    torch.testing.assert_close(axis_angle_to_matrix(axis_angle), rodrigues_reference(axis_angle))


def test_axis_angle_round_trip_including_near_pi(rng):
    axis = torch.randn(40, 3, generator=rng, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angles = torch.cat([torch.rand(30, generator=rng, dtype=torch.float64) * math.pi,
                        torch.full((10,), math.pi - 1e-6, dtype=torch.float64)])
    R = axis_angle_to_matrix(axis * angles[:, None])
    torch.testing.assert_close(axis_angle_to_matrix(matrix_to_axis_angle(R)), R)
    torch.testing.assert_close(matrix_to_axis_angle(R).norm(dim=-1), angles)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="rot6d"):
        rot6d_to_matrix(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="source and target"):
        similarity_procrustes(torch.zeros(2, 5, 3), torch.zeros(2, 4, 3))


def umeyama_reference(src: np.ndarray, dst: np.ndarray):
    """Textbook Umeyama (1991) for one point set, in numpy."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt))
    R = U @ D @ Vt
    scale = np.trace(np.diag(S) @ D) / xs.var(0).sum()
    return scale, R, mu_d - scale * R @ mu_s


def test_procrustes_recovers_a_known_similarity(rng):
    source = torch.randn(8, 14, 3, generator=rng, dtype=torch.float64)
    R = random_rotations(8, rng)
    scale = torch.rand(8, generator=rng, dtype=torch.float64) + 0.5
    t = torch.randn(8, 3, generator=rng, dtype=torch.float64)
    target = apply_similarity(source, scale, R, t)
    s_hat, R_hat, t_hat = similarity_procrustes(source, target)
    torch.testing.assert_close(s_hat, scale)
    torch.testing.assert_close(R_hat, R)
    torch.testing.assert_close(t_hat, t)


def test_procrustes_matches_umeyama_on_noisy_points(rng):
    source = torch.randn(6, 17, 3, generator=rng, dtype=torch.float64)
    # unrelated points: no exact fit, and some need the reflection fix
    target = torch.randn(6, 17, 3, generator=rng, dtype=torch.float64)
    s_hat, R_hat, t_hat = similarity_procrustes(source, target)
    for i in range(6):
        s, R, t = umeyama_reference(source[i].numpy(), target[i].numpy())
        np.testing.assert_allclose(s_hat[i].item(), s, rtol=1e-9)
        np.testing.assert_allclose(R_hat[i].numpy(), R, atol=1e-9)
        np.testing.assert_allclose(t_hat[i].numpy(), t, atol=1e-9)


def test_gradcheck(rng):
    x = torch.randn(3, 6, generator=rng, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rot6d_to_matrix, (x,))
    aa = torch.randn(3, 3, generator=rng, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    src = torch.randn(2, 6, 3, generator=rng, dtype=torch.float64, requires_grad=True)
    dst = torch.randn(2, 6, 3, generator=rng, dtype=torch.float64)

    def aligned(points):
        return apply_similarity(points, *similarity_procrustes(points, dst))

    assert torch.autograd.gradcheck(aligned, (src,))
