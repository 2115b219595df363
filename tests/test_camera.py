"""The paper's per-box camera, projection and intrinsics helpers."""

import pytest
import torch

from model.camera import (
    box_camera_to_translation,
    intrinsics_matrix,
    letterbox,
    project,
    scale_intrinsics,
    shift_intrinsics,
    translation_to_box_camera,
)


def random_boxes(n: int, rng: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=rng, dtype=torch.float64) * 600
    wh = torch.rand(n, 2, generator=rng, dtype=torch.float64) * 200 + 20
    return torch.cat([xy, xy + wh], dim=-1)


def test_formula_matches_the_paper(rng):
    boxes = random_boxes(10, rng)
    cam = torch.rand(10, 3, generator=rng, dtype=torch.float64) + torch.tensor([0.5, -0.5, -0.5])
    focal, centre = 1000.0, torch.tensor([416.0, 256.0], dtype=torch.float64)
    t = box_camera_to_translation(cam, boxes, focal, centre)
    for i in range(10):  # written out per box, straight from DESIGN §4
        x1, y1, x2, y2 = boxes[i].tolist()
        s, x, y = cam[i].tolist()
        b = max(x2 - x1, y2 - y1)
        tz = 2 * focal / (s * b)
        tx = tz * ((x1 + x2) / 2 + x * b - 416.0) / focal
        ty = tz * ((y1 + y2) / 2 + y * b - 256.0) / focal
        torch.testing.assert_close(t[i], torch.tensor([tx, ty, tz], dtype=torch.float64))


def test_body_origin_projects_to_box_centre_plus_offset(rng):
    boxes = random_boxes(16, rng)
    cam = torch.rand(16, 3, generator=rng, dtype=torch.float64) + torch.tensor([0.3, -0.5, -0.5])
    K = intrinsics_matrix(1000.0, 832, 512).double()
    t = box_camera_to_translation(cam, boxes, K[0, 0], K[:2, 2])
    size = (boxes[:, 2:] - boxes[:, :2]).amax(-1)
    expected = (boxes[:, :2] + boxes[:, 2:]) / 2 + cam[:, 1:] * size[:, None]
    torch.testing.assert_close(project(t, K), expected)


def test_round_trip(rng):
    boxes = random_boxes(20, rng)
    cam = torch.rand(20, 3, generator=rng, dtype=torch.float64) + torch.tensor([0.2, -1.0, -1.0])
    focal = torch.rand(20, generator=rng, dtype=torch.float64) * 500 + 500  # per-box focal
    centre = torch.rand(20, 2, generator=rng, dtype=torch.float64) * 400
    t = box_camera_to_translation(cam, boxes, focal, centre)
    torch.testing.assert_close(translation_to_box_camera(t, boxes, focal, centre), cam)


def test_project_against_manual_pinhole(rng):
    points = torch.rand(5, 7, 3, generator=rng, dtype=torch.float64) + torch.tensor([0, 0, 2.0])
    K = torch.tensor([[900.0, 0, 300], [0, 950.0, 200], [0, 0, 1]], dtype=torch.float64)
    uv = project(points, K)
    torch.testing.assert_close(uv[..., 0], 900 * points[..., 0] / points[..., 2] + 300)
    torch.testing.assert_close(uv[..., 1], 950 * points[..., 1] / points[..., 2] + 200)


def test_resize_and_pad_move_projections_like_pixels(rng):
    points = torch.rand(30, 3, generator=rng, dtype=torch.float64) + torch.tensor([-0.5, -0.5, 3.0])
    K = intrinsics_matrix(1000.0, 1000, 1000).double()
    K_small, factor = letterbox(K, 1000, 1000, 832, 512)
    assert factor == pytest.approx(0.512)
    torch.testing.assert_close(project(points, K_small), factor * project(points, K))
    K_padded = shift_intrinsics(K, 10.0, 20.0)
    torch.testing.assert_close(project(points, K_padded),
                               project(points, K) + torch.tensor([10.0, 20.0], dtype=torch.float64))
    torch.testing.assert_close(scale_intrinsics(K, (0.5, 0.25))[:2, 2], torch.tensor([250.0, 125.0],
                               dtype=torch.float64))


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="boxes"):
        box_camera_to_translation(torch.ones(2, 3), torch.ones(2, 3), 1000.0, torch.zeros(2))
    with pytest.raises(ValueError, match="cam"):
        box_camera_to_translation(torch.ones(3, 3), torch.ones(2, 4), 1000.0, torch.zeros(2))
