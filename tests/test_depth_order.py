"""Depth-ordering loss (Eq. 4): direct formula, zero when right, fixes a wrong order."""

import math

import numpy as np
import pytest
import torch
import trimesh

from ops.depth_order import depth_order_loss
from ops.raster import depth_maps, instance_map

INF = math.inf


def loop_reference(depths: np.ndarray, gt: np.ndarray) -> float:
    """Eq. 4 pixel by pixel."""
    total = 0.0
    for r in range(gt.shape[0]):
        for c in range(gt.shape[1]):
            column = depths[:, r, c]
            front = int(np.argmin(column)) + 1 if np.isfinite(column).any() else 0
            y = int(gt[r, c])
            if y > 0 and front > 0 and y != front and np.isfinite(column[y - 1]):
                total += math.log1p(math.exp(column[y - 1] - column[front - 1]))
    return total / gt.size


def test_matches_the_pixel_loop():
    rng = np.random.default_rng(0)
    depths = rng.uniform(2, 6, size=(3, 9, 11))
    depths[rng.random(depths.shape) < 0.3] = INF
    gt = rng.integers(0, 4, size=(9, 11))
    ours = depth_order_loss(torch.tensor(depths), torch.tensor(gt))
    assert ours.item() == pytest.approx(loop_reference(depths, gt), rel=1e-10)
    assert ours.item() > 0


def test_gradients_reach_both_people():
    depths = torch.tensor([[[2.0, 3.0]], [[4.0, INF]]], requires_grad=True)  # [2, 1, 2]
    gt = torch.tensor([[2, 2]])  # person 2 annotated in front at both pixels
    loss = depth_order_loss(depths, gt)
    loss.backward()
    sigmoid = 1 / (1 + math.exp(-(4.0 - 2.0)))
    assert loss.item() == pytest.approx(math.log1p(math.exp(2.0)) / 2)
    # pixel 0: D_2 - D_1 -> grad +s/2 to person 2, -s/2 to person 1; pixel 1 has no D_2
    torch.testing.assert_close(depths.grad, torch.tensor([[[-sigmoid / 2, 0.0]],
                                                          [[sigmoid / 2, 0.0]]]))


def test_empty_and_bad_inputs():
    assert depth_order_loss(torch.zeros(0, 4, 5), torch.zeros(4, 5, dtype=torch.long)).item() == 0
    with pytest.raises(ValueError, match="names person 3 but only 2"):
        depth_order_loss(torch.ones(2, 4, 5), torch.full((4, 5), 3))
    with pytest.raises(ValueError, match=r"depths must be \[P, H, W\]"):
        depth_order_loss(torch.ones(2, 4, 5), torch.ones(4, 6))


def two_people():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    body = torch.tensor(sphere.vertices * [0.6, 1.6, 0.5], dtype=torch.float32)  # upright
    return body, torch.tensor(sphere.faces)


K = torch.tensor([[80.0, 0.0, 40.0], [0.0, 80.0, 30.0], [0.0, 0.0, 1.0]])
SIZE = (60, 80)


def render(body, faces, transl):
    return depth_maps(body[None] + transl[:, None], faces, K, SIZE)


def test_correct_order_gives_zero():
    body, faces = two_people()
    transl = torch.tensor([[-0.2, 0.0, 4.0], [0.25, 0.0, 5.0]])
    depths = render(body, faces, transl)
    gt = instance_map(depths)
    assert (gt == 1).any() and (gt == 2).any()
    assert depth_order_loss(depths, gt).item() == 0.0


def test_gradient_descent_fixes_a_wrong_order():
    body, faces = two_people()
    truth = torch.tensor([[-0.2, 0.0, 5.0], [0.25, 0.0, 4.0]])  # person 2 in front
    gt = instance_map(render(body, faces, truth))
    lateral = torch.tensor([[-0.2, 0.0], [0.25, 0.0]])
    distance = torch.tensor([4.0, 5.0], requires_grad=True)  # swapped: person 1 in front
    optimizer = torch.optim.SGD([distance], lr=20.0)
    first = None
    for _ in range(60):  # only the depths move, so the order itself has to be fixed
        transl = torch.cat([lateral, distance[:, None]], dim=1)
        loss = depth_order_loss(render(body, faces, transl), gt)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 0
    assert distance[1] < distance[0]  # person 2 now in front
    assert depth_order_loss(render(body, faces, transl.detach()), gt).item() < 0.1 * first
