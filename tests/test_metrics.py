"""Metrics on hand-made cases with known answers."""

import pytest
import torch

from ops.geometry import axis_angle_to_matrix
from ops.metrics import (
    count_collisions,
    depth_order_accuracy,
    match_people,
    mpjpe,
    pa_mpjpe,
    pck3d,
    rescale_bones,
)


def skeleton(rng, n=2):
    return torch.randn(n, 17, 3, generator=rng, dtype=torch.float64) * 0.3


def test_mpjpe_is_root_centred_in_mm_with_panoptic_visibility(rng):
    gt = skeleton(rng)
    pred = gt + torch.tensor([5.0, 0.0, 2.0], dtype=torch.float64)  # shifted only
    assert torch.allclose(mpjpe(pred, gt), torch.zeros(2, dtype=torch.float64))
    pred = gt.clone()
    pred[:, 3] += torch.tensor([0.0, 0.1, 0.0], dtype=torch.float64)  # one joint off by 100 mm
    torch.testing.assert_close(mpjpe(pred, gt), torch.full((2,), 100.0 / 17, dtype=torch.float64))
    visible = torch.ones(2, 17, dtype=torch.float64)
    visible[0, 3] = 0  # invisible: counts as 0, stays in the denominator
    torch.testing.assert_close(mpjpe(pred, gt, visible),
                               torch.tensor([0.0, 100.0 / 17], dtype=torch.float64))


def test_pa_mpjpe_removes_rotation_scale_translation(rng):
    gt = skeleton(rng)
    R = axis_angle_to_matrix(torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.1, 0.0]],
                                          dtype=torch.float64))
    pred = 1.7 * torch.einsum("nij,nkj->nki", R, gt) + torch.tensor([1.0, 2.0, 3.0],
                                                                    dtype=torch.float64)
    assert pa_mpjpe(pred, gt).abs().max() < 1e-6
    assert mpjpe(pred, gt).min() > 10  # without alignment it is far off


def test_pck_counts_joints_within_150mm_after_bone_rescaling(rng):
    gt = skeleton(rng, 1)
    pred = gt.clone()
    pred[0, 16] += torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64)  # right wrist 200 mm off
    assert pck3d(pred, gt, bone_rescale=False).item() == pytest.approx(16 / 17)
    longer = gt * 1.3  # same directions, longer bones: rescaling makes it exact
    assert pck3d(longer, gt).item() == 1.0
    torch.testing.assert_close(rescale_bones(longer, gt), gt - gt[:, :1] + longer[:, :1])


def test_greedy_2d_matching():
    gt = torch.zeros(3, 17, 2)
    gt[0] += torch.tensor([100.0, 100.0])
    gt[1] += torch.tensor([300.0, 100.0])
    gt[2] += torch.tensor([900.0, 900.0])  # nobody near
    pred = torch.zeros(3, 17, 2)
    pred[0] += torch.tensor([305.0, 110.0])  # person 1
    pred[1] += torch.tensor([120.0, 90.0])  # person 0
    pred[2] += torch.tensor([130.0, 95.0])  # also near person 0, but worse... and equal count
    pred[2, :10] += 100  # only 7 joints close
    assert match_people(pred, gt) == [1, 0, None]


def test_depth_order_accuracy_over_all_pairs():
    gt = torch.tensor([2.0, 3.0, 4.0, 4.0])
    pred = torch.tensor([2.5, 2.4, 5.0, 1.0])
    # pairs with distinct gt: (0,1) wrong, (0,2) right, (0,3) wrong, (1,2) right, (1,3) wrong
    assert depth_order_accuracy(pred, gt) == (2, 5)
    assert depth_order_accuracy(torch.tensor([1.0]), torch.tensor([1.0])) == (0, 0)


def test_count_collisions():
    assert count_collisions([torch.zeros(2, 2), torch.tensor([[0, 1e-6], [1e-6, 0]]),
                             torch.zeros(0, 0)]) == 1
