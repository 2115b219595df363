"""The SMPL adapter, exercised with a synthetic SMPL-structured model (no licensed file)."""

import pickle

import numpy as np
import pytest
import torch

from model.body import load_body_model
from model.smpl_body import HEAD_TOP_VERTEX
from ops.geometry import axis_angle_to_matrix
from tests.conftest import make_fake_smpl_arrays


def rest(body, batch=1):
    return torch.eye(3).repeat(batch, body.num_joints, 1, 1), body.mean_shape().repeat(batch, 1)


def test_rest_pose_is_the_template_centred_on_the_pelvis(fake_smpl_file):
    body = load_body_model("smpl", model_path=fake_smpl_file)
    assert (body.num_joints, body.shape_dim, body.faces.shape[1]) == (24, 10, 3)
    arrays = make_fake_smpl_arrays()
    template = torch.as_tensor(arrays["v_template"], dtype=torch.float32)
    pelvis = torch.as_tensor(arrays["J_regressor"][0], dtype=torch.float32) @ template
    out = body(*rest(body))
    torch.testing.assert_close(out.vertices[0], template - pelvis, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints["lsp14"][0, -1], template[HEAD_TOP_VERTEX] - pelvis,
                               atol=1e-5, rtol=0)
    assert out.joints["coco17"].shape == (1, 17, 3) and out.joints["h36m17"].shape == (1, 17, 3)


def test_matches_smplx_lbs_directly(fake_smpl_file):
    """Our output equals smplx's own lbs() re-centred on joint 0, for random pose and shape."""
    from smplx.lbs import lbs

    body = load_body_model("smpl", model_path=fake_smpl_file)
    gen = torch.Generator().manual_seed(3)
    rotmats = axis_angle_to_matrix(torch.randn(2, 24, 3, generator=gen) * 0.4)
    betas = torch.randn(2, 10, generator=gen)
    s = body.smpl
    vertices, joints = lbs(betas, rotmats, s.v_template, s.shapedirs, s.posedirs, s.J_regressor,
                           s.parents, s.lbs_weights, pose2rot=False)
    out = body(rotmats, betas)
    torch.testing.assert_close(out.vertices, vertices - joints[:, :1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.joints["h36m17"][:, 1], joints[:, 2] - joints[:, 0],
                               atol=1e-5, rtol=1e-5)  # right hip


def test_h36m_regressor_option(fake_smpl_file, tmp_path):
    gen = np.random.default_rng(1)
    regressor = gen.random((17, 6890))
    regressor /= regressor.sum(1, keepdims=True)
    np.save(tmp_path / "J_regressor_h36m.npy", regressor)
    body = load_body_model("smpl", model_path=fake_smpl_file,
                           h36m_regressor=tmp_path / "J_regressor_h36m.npy")
    out = body(*rest(body))
    # SPIN's file has the left leg in rows 1-3: our right hip is its row 4.
    rows = [0, 4, 5, 6, 1, 2, 3, *range(7, 17)]
    expected = torch.as_tensor(regressor[rows], dtype=torch.float32) @ out.vertices[0]
    torch.testing.assert_close(out.joints["h36m17"][0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints["h36m17"][0, 0], torch.zeros(3), atol=1e-5, rtol=0)


def test_gradients(fake_smpl_file):
    body = load_body_model("smpl", model_path=fake_smpl_file)
    rotmats, shape = rest(body, 2)
    rotmats.requires_grad_(True)
    shape.requires_grad_(True)
    body(rotmats, shape).vertices.square().sum().backward()
    assert rotmats.grad.abs().sum() > 0 and shape.grad.abs().sum() > 0


def test_folder_and_pickle_are_found(tmp_path):
    (tmp_path / "smpl").mkdir()
    with open(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl", "wb") as handle:
        pickle.dump(make_fake_smpl_arrays(), handle)
    body = load_body_model("smpl", model_path=tmp_path)
    assert body(*rest(body)).vertices.shape == (1, 6890, 3)


def test_missing_file_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="SMPL_NEUTRAL.pkl"):
        load_body_model("smpl", model_path=tmp_path / "nowhere.pkl")
    with pytest.raises(FileNotFoundError, match="no SMPL_NEUTRAL.pkl in"):
        load_body_model("smpl", model_path=tmp_path)
    with pytest.raises(FileNotFoundError, match="model_path is not set"):
        load_body_model("smpl")


def test_wrong_file_is_rejected_with_its_name(tmp_path):
    not_smpl = tmp_path / "all_results_gender-neutral.pkl"
    with open(not_smpl, "wb") as handle:
        pickle.dump({"betas": np.zeros(10)}, handle)
    with pytest.raises(ValueError, match="all_results_gender-neutral.pkl has no 'v_template'"):
        load_body_model("smpl", model_path=not_smpl)
    garbage = tmp_path / "model.pkl"
    garbage.write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="model.pkl is not a readable SMPL model"):
        load_body_model("smpl", model_path=garbage)
    wrong_shape = make_fake_smpl_arrays(num_vertices=100)
    np.savez(tmp_path / "small.npz", **wrong_shape)
    with pytest.raises(ValueError, match=r"'v_template' has shape \[100, 3\]"):
        load_body_model("smpl", model_path=tmp_path / "small.npz")


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown body model kind 'star'"):
        load_body_model("star")
