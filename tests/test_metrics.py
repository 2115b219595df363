"""Metrics on hand-made cases with known answers."""

import numpy as np
import pytest
import torch

from model.body import H36M17_NAMES
from ops.geometry import axis_angle_to_matrix
from ops.metrics import (
    count_collisions,
    depth_order_accuracy,
    match_people,
    mpjpe,
    nearest_pose,
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


def umeyama_error_mm(pred: np.ndarray, gt: np.ndarray) -> float:
    """The slow reference: Umeyama's least-squares similarity (rotation without
    reflection, scale, translation) from ``pred`` onto ``gt`` ``[J, 3]``, then the mean
    joint distance in mm."""
    mean_pred, mean_gt = pred.mean(0), gt.mean(0)
    x, y = pred - mean_pred, gt - mean_gt
    u, d, vt = np.linalg.svd(y.T @ x / len(x))
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / (x ** 2).sum(1).mean()
    aligned = scale * x @ rotation.T + mean_gt
    return float(np.linalg.norm(aligned - gt, axis=1).mean() * 1000.0)


def test_pa_mpjpe_equals_umeyama_on_random_poses(rng):
    gt = skeleton(rng, n=20)
    pred = gt + torch.randn(20, 17, 3, generator=rng, dtype=torch.float64) * 0.05
    pred[::2] = -pred[::2]  # some need a reflection the rotation must not make
    expected = [umeyama_error_mm(p.numpy(), g.numpy()) for p, g in zip(pred, gt, strict=True)]
    np.testing.assert_allclose(pa_mpjpe(pred, gt).numpy(), expected, rtol=1e-9)


def test_pck_counts_joints_within_150mm_after_bone_rescaling(rng):
    gt = skeleton(rng, 1)
    pred = gt.clone()
    pred[0, 16] += torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64)  # right wrist 200 mm off
    # 13 of the 14 official joints (pelvis, spine and nose are not scored)
    assert pck3d(pred, gt, bone_rescale=False).item() == pytest.approx(13 / 14)
    visible = torch.ones(1, 17)
    visible[0, 16] = 0  # leave the wrist out: every counted joint is right
    assert pck3d(pred, gt, visible=visible, bone_rescale=False).item() == 1.0
    longer = gt * 1.3  # same directions, longer bones: rescaling makes it exact
    assert pck3d(longer, gt).item() == 1.0
    torch.testing.assert_close(rescale_bones(longer, gt), gt - gt[:, :1] + longer[:, :1])


def human_skeleton() -> torch.Tensor:
    """``[1, 17, 3]`` a standing person in h36m17 order (metres, y down)."""
    points = {
        "pelvis": (0, 0, 0), "right_hip": (-0.1, 0, 0), "right_knee": (-0.1, 0.45, 0),
        "right_ankle": (-0.1, 0.9, 0), "left_hip": (0.1, 0, 0), "left_knee": (0.1, 0.45, 0),
        "left_ankle": (0.1, 0.9, 0), "spine": (0, -0.25, 0), "thorax": (0, -0.5, 0),
        "nose": (0, -0.62, -0.08), "head_top": (0, -0.75, 0),
        "left_shoulder": (0.18, -0.48, 0), "left_elbow": (0.2, -0.22, 0),
        "left_wrist": (0.22, 0.02, 0), "right_shoulder": (-0.18, -0.48, 0),
        "right_elbow": (-0.2, -0.22, 0), "right_wrist": (-0.22, 0.02, 0)}
    return torch.tensor([points[name] for name in H36M17_NAMES], dtype=torch.float64)[None]


def reference_pck(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """The MuPoTS script written out: MPI-order parents (o1), the safe traversal order,
    bone rescaling from the original predicted directions, PCK over joints 1-14."""
    # MPI-17 order and, for each, its h36m17 name
    mpi = ["head_top", "thorax", "right_shoulder", "right_elbow", "right_wrist",
           "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee",
           "right_ankle", "left_hip", "left_knee", "left_ankle", "pelvis", "spine", "nose"]
    o1 = [2, 16, 2, 3, 4, 2, 6, 7, 15, 9, 10, 15, 12, 13, 15, 15, 2]  # 1-based parents
    traversal = [16, 2, 1, 17, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # 1-based
    order = [H36M17_NAMES.index(name) for name in mpi]
    P = gt[0, order] - gt[0, order][14]
    p = pred[0, order] - pred[0, order][14]
    mapped = p.clone()
    for idx in traversal:
        i, parent = idx - 1, o1[idx - 1] - 1
        length = (P[i] - P[parent]).norm()
        bone = p[i] - p[parent]
        mapped[i] = mapped[parent] + bone * length / bone.norm()
    errors = (mapped - P).norm(dim=-1)[:14] * 1000
    return float((errors < 150).double().mean())


def test_pck_equals_the_official_script_on_random_poses(rng):
    gt = human_skeleton()
    for _ in range(20):
        pred = gt + torch.randn(1, 17, 3, generator=rng, dtype=torch.float64) * 0.08
        assert pck3d(pred, gt).item() == pytest.approx(reference_pck(pred, gt))


def test_pose_reflected_through_the_root_scores_zero():
    gt = human_skeleton()
    assert pck3d(-gt, gt).item() == 0.0  # the pelvis, which would score, is not counted


def test_only_the_nose_wrong_scores_100():
    gt = human_skeleton()
    pred = gt.clone()
    pred[0, H36M17_NAMES.index("nose")] += torch.tensor([0.0, -0.4, 0.5], dtype=torch.float64)
    # The nose is not scored and nothing hangs from it in the script's skeleton.
    assert pck3d(pred, gt).item() == 1.0


def test_greedy_2d_matching_uses_the_script_joints():
    gt = torch.zeros(1, 17, 2)
    pred = torch.zeros(1, 17, 2) + 100.0
    for joint in (0, 7, 9, 10):  # pelvis, spine, nose, head top: not matching joints
        pred[0, joint] = 0.0
    assert match_people(pred, gt) == [None]
    pred[0, H36M17_NAMES.index("left_knee")] = 0.0
    assert match_people(pred, gt) == [0]


def test_nearest_pose_is_root_relative_and_masked():
    gt = human_skeleton()[0]
    far_but_right = gt + torch.tensor([3.0, 0.0, 5.0], dtype=torch.float64)
    near_but_wrong = gt.clone()
    near_but_wrong[3] += 0.3  # right ankle
    pred = torch.stack([near_but_wrong, far_but_right])
    visible = torch.ones(17, dtype=torch.float64)
    assert nearest_pose(pred, gt, visible) == 1
    visible[3] = 0  # the ankle is not visible: both are perfect, the first wins
    assert nearest_pose(pred, gt, visible) == 0
    assert nearest_pose(pred[:0], gt, visible) is None


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


def test_a_prediction_serves_one_person_and_ties_go_to_the_lower_index():
    gt = torch.zeros(2, 17, 2) + torch.tensor([100.0, 100.0])  # two people, one place
    pred = torch.zeros(1, 17, 2) + torch.tensor([105.0, 100.0])
    assert match_people(pred, gt) == [0, None]
    pred = torch.zeros(2, 17, 2) + torch.tensor([105.0, 100.0])  # equally good
    assert match_people(pred, gt[:1]) == [0]
    assert match_people(pred, gt) == [0, 1]


def test_depth_order_accuracy_over_all_pairs():
    gt = torch.tensor([2.0, 3.0, 4.0, 4.0])
    pred = torch.tensor([2.5, 2.4, 5.0, 1.0])
    # pairs with distinct gt: (0,1) wrong, (0,2) right, (0,3) wrong, (1,2) right, (1,3) wrong
    assert depth_order_accuracy(pred, gt) == (2, 5)
    assert depth_order_accuracy(torch.tensor([1.0]), torch.tensor([1.0])) == (0, 0)


def test_count_collisions():
    assert count_collisions([torch.zeros(2, 2), torch.tensor([[0, 1e-6], [1e-6, 0]]),
                             torch.zeros(0, 0)]) == 1
