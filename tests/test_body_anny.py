"""The Anny adapter with the real shipped model (loaded once per session)."""

import math

import numpy as np
import pytest
import torch
import trimesh

from model.anny_body import ANNY_TO_BODY, ARTICULATED_BONES
from model.body import COCO17_NAMES, H36M17_NAMES
from ops.geometry import axis_angle_to_matrix


def rest(body, batch=1):
    return torch.eye(3).repeat(batch, body.num_joints, 1, 1), body.mean_shape().repeat(batch, 1)


def rotation_about(axis: str, degrees: float) -> torch.Tensor:
    vec = {"x": [1.0, 0, 0], "y": [0, 1.0, 0], "z": [0, 0, 1.0]}[axis]
    return axis_angle_to_matrix(torch.tensor(vec) * math.radians(degrees))


def test_sizes_and_joint_sets(anny_body):
    assert anny_body.num_joints == 1 + len(ARTICULATED_BONES) == 20
    assert anny_body.shape_dim == 6
    assert anny_body.faces.shape == (27420, 3) and anny_body.faces.dtype == torch.long
    out = anny_body(*rest(anny_body, 3))
    assert out.vertices.shape == (3, 13718, 3)
    assert {k: v.shape for k, v in out.joints.items()} == {
        "coco17": (3, 17, 3), "h36m17": (3, 17, 3), "lsp14": (3, 14, 3)}


def test_body_frame_metres_y_up_facing_plus_z(anny_body):
    out = anny_body(*rest(anny_body))
    joints = dict(zip(H36M17_NAMES, out.joints["h36m17"][0], strict=True))
    height = out.vertices[0, :, 1].max() - out.vertices[0, :, 1].min()
    assert 1.4 < height < 2.0  # an average adult, in metres
    torch.testing.assert_close(joints["pelvis"], torch.zeros(3))  # origin at the pelvis
    assert joints["head_top"][1] > joints["thorax"][1] > 0
    assert 0 > joints["left_knee"][1] > joints["left_ankle"][1]
    assert joints["nose"][2] > 0.05  # the face looks towards +z
    assert joints["left_shoulder"][0] > 0 > joints["right_shoulder"][0]  # SMPL: left is +x


def test_coco_joints_are_annys_regressor_in_body_frame(anny_body):
    import anny

    out = anny_body(*rest(anny_body))
    raw = anny_body.anny(pose_parameters=torch.eye(4).expand(1, anny_body.anny.bone_count, 4, 4),
                         phenotype_kwargs=anny_body.mean_shape()[None])
    regressor = anny.KeypointsRegressor.coco(anny_body.anny)
    coco = regressor(raw)[0, [regressor.labels.index(n) for n in COCO17_NAMES]] @ ANNY_TO_BODY.T
    pelvis = (coco[11] + coco[12]) / 2
    torch.testing.assert_close(out.joints["coco17"][0], coco - pelvis, atol=1e-5, rtol=0)


def test_mesh_is_closed_and_outward(anny_body):
    out = anny_body(*rest(anny_body))
    mesh = trimesh.Trimesh(out.vertices[0].detach().numpy(), anny_body.faces.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert 0.03 < mesh.volume < 0.12  # positive: faces wind outwards; a human volume in m^3


def test_global_rotation_rotates_about_the_pelvis(anny_body):
    rotmats, shape = rest(anny_body)
    base = anny_body(rotmats, shape)
    R = rotation_about("y", 70) @ rotation_about("x", -30)
    rotmats[:, 0] = R
    turned = anny_body(rotmats, shape)
    torch.testing.assert_close(turned.vertices[0], base.vertices[0] @ R.T, atol=1e-5, rtol=0)
    torch.testing.assert_close(turned.joints["lsp14"][0], base.joints["lsp14"][0] @ R.T,
                               atol=1e-5, rtol=0)


def test_local_rotations_use_body_axes(anny_body):
    """Hip flexion is a negative rotation about body x (as in SMPL): the leg swings forward."""
    rotmats, shape = rest(anny_body)
    base = dict(zip(H36M17_NAMES, anny_body(rotmats, shape).joints["h36m17"][0], strict=True))
    rotmats[:, 1 + ARTICULATED_BONES.index("upperleg01.L")] = rotation_about("x", -90)
    bent = dict(zip(H36M17_NAMES, anny_body(rotmats, shape).joints["h36m17"][0], strict=True))
    thigh = (base["left_knee"] - base["left_hip"]).norm()
    assert bent["left_knee"][2] - bent["left_hip"][2] > 0.8 * thigh  # knee in front of the hip
    assert abs(bent["left_knee"][1] - bent["left_hip"][1]) < 0.3 * thigh  # at hip height
    # the right leg does not move (relative to the right hip: the pelvis, mid-way between
    # hip keypoints regressed from the skin, shifts a little when the left thigh bends)
    torch.testing.assert_close(bent["right_ankle"] - bent["right_hip"],
                               base["right_ankle"] - base["right_hip"], atol=1e-4, rtol=0)


def test_gradients_reach_rotations_and_shape(anny_body):
    rotmats, shape = rest(anny_body, 2)
    rotmats.requires_grad_(True)
    shape = torch.full_like(shape, 0.4).requires_grad_(True)
    out = anny_body(rotmats, shape)
    (out.vertices.square().sum() + out.joints["h36m17"].sum()).backward()
    assert torch.isfinite(rotmats.grad).all() and rotmats.grad[:, 1:].abs().sum() > 0
    assert torch.isfinite(shape.grad).all() and (shape.grad.abs() > 0).all()


def test_shape_is_bounded_and_changes_the_body(anny_body):
    rotmats, _ = rest(anny_body, 3)
    shape = torch.tensor([[0.5, 0.5, 0.5, 0.5, 1.0, 0.5],
                          [0.5, 0.5, 0.5, 0.5, 1.7, 0.5],   # clamped to 1
                          [0.5, 0.5, 0.5, 0.5, 0.0, 0.5]])
    heights = anny_body(rotmats, shape).vertices[..., 1]
    heights = heights.amax(-1) - heights.amin(-1)
    assert heights[0] == pytest.approx(heights[1].item())
    assert heights[0] > heights[2] + 0.1


def test_bad_inputs_name_the_expected_shape(anny_body):
    with pytest.raises(ValueError, match=r"rotmats must be \[B, 20, 3, 3\]"):
        anny_body(torch.eye(3).repeat(1, 24, 1, 1), torch.zeros(1, 6))
    with pytest.raises(ValueError, match=r"shape must be \[1, 6\]"):
        anny_body(torch.eye(3).repeat(1, 20, 1, 1), torch.zeros(1, 10))


def test_posed_mesh_stays_closed(anny_body):
    rotmats, shape = rest(anny_body)
    gen = torch.Generator().manual_seed(0)
    rotmats[:, 1:] = axis_angle_to_matrix(torch.randn(19, 3, generator=gen) * 0.3)
    out = anny_body(rotmats, shape)
    mesh = trimesh.Trimesh(out.vertices[0].detach().numpy(), anny_body.faces.numpy(), process=False)
    assert mesh.is_watertight
    assert np.isfinite(out.vertices.detach().numpy()).all()


def test_empty_batch_poses_no_one(anny_body):
    output = anny_body(torch.zeros(0, anny_body.num_joints, 3, 3), torch.zeros(0, 6))
    assert output.vertices.shape == (0, 13718, 3)
    assert {k: tuple(v.shape) for k, v in output.joints.items()} == {
        "coco17": (0, 17, 3), "h36m17": (0, 17, 3), "lsp14": (0, 14, 3)}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_gradients(anny_body):
    import copy

    gen = torch.Generator().manual_seed(4)
    rotmats = axis_angle_to_matrix(0.3 * torch.randn(2, anny_body.num_joints, 3, generator=gen))
    shape = torch.rand(2, anny_body.shape_dim, generator=gen)
    body = copy.deepcopy(anny_body).to("cuda")  # the fixture is shared: leave it on the CPU
    outputs = []
    for model, device in ((anny_body, "cpu"), (body, "cuda")):
        leaves = [x.to(device).detach().requires_grad_(True) for x in (rotmats, shape)]
        out = model(*leaves)
        (out.vertices.square().sum() + out.joints["coco17"].sum()).backward()
        outputs.append([out.vertices.detach().cpu(), *(x.grad.cpu() for x in leaves)])
    for cpu, gpu in zip(*outputs, strict=True):
        # sums over 13718 vertices in float32: compare at the scale of the largest entry
        torch.testing.assert_close(gpu, cpu, atol=1e-4 * float(cpu.abs().max()), rtol=1e-3)
