"""Pose anchors (``model.pose_anchors``): the K-means fit, the nearest-anchor search
against a loop, the head's start from the anchor mixture, the cross-entropy loss, and
the training phases fitting them once and carrying them on."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model.io import read_model
from model.losses import pose_anchor_loss
from model.pose_anchors import fit_pose_anchors, nearest_anchor
from model.smpl_head import FACING_CAMERA, SMPLHead
from ops.geometry import axis_angle_to_matrix
from stages.train import run
from tests.test_training import first_batch
from tests.training_setup import prepare_tiny_shards, tiny_model, tiny_training_params


def random_rotations(generator: torch.Generator, *shape: int, scale: float = 3.0) -> torch.Tensor:
    return axis_angle_to_matrix(torch.randn(*shape, 3, generator=generator) * scale)


def clustered_poses(generator, clusters: int, per_cluster: int, joints: int = 6):
    """Poses scattered by a few degrees around ``clusters`` random centres."""
    centres = random_rotations(generator, clusters, joints - 1)
    noise = random_rotations(generator, clusters, per_cluster, joints - 1, scale=0.03)
    local = (centres[:, None] @ noise).reshape(-1, joints - 1, 3, 3)
    poses = torch.cat([random_rotations(generator, len(local), 1), local], dim=1)
    return poses, centres


def test_fit_recovers_well_separated_clusters(rng):
    poses, centres = clustered_poses(rng, clusters=5, per_cluster=40)
    anchors = fit_pose_anchors(poses, 5, seed=0)
    assert anchors.shape == (5, 5, 3, 3)
    torch.testing.assert_close(anchors.transpose(-1, -2) @ anchors,
                               torch.eye(3).expand_as(anchors), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(anchors), torch.ones(5, 5), atol=1e-5, rtol=0)
    # every true centre has an anchor within a few degrees (chordal distance per rotation)
    distance = (anchors[:, None] - centres[None]).flatten(2).norm(dim=2) / 5 ** 0.5
    assert distance.min(dim=0).values.max() < 0.05
    torch.testing.assert_close(fit_pose_anchors(poses, 5, seed=0), anchors)  # seeded


def test_fit_rejects_bad_input(rng):
    poses = random_rotations(rng, 10, 4)
    with pytest.raises(ValueError, match="cannot fit 11 anchors to 10 poses"):
        fit_pose_anchors(poses, 11, seed=0)
    with pytest.raises(ValueError, match=r"expected poses \[N, J >= 2, 3, 3\]"):
        fit_pose_anchors(poses[:, 0], 2, seed=0)


def test_nearest_anchor_matches_a_loop(rng):
    poses = random_rotations(rng, 30, 7)
    anchors = random_rotations(rng, 9, 6)
    reference = [min(range(9), key=lambda k: sum(
        float((pose[j + 1] - anchors[k, j]).square().sum()) for j in range(6)))
        for pose in poses]
    assert nearest_anchor(poses, anchors).tolist() == reference


def test_head_starts_from_the_chosen_anchor(rng):
    joints, anchors = 5, random_rotations(rng, 3, 4)
    head = SMPLHead(16, joints, torch.full((6,), 0.5), bounded_shape=True, channels=32,
                    pose_anchors=3).eval()
    features = torch.randn(2, 16, 14, 14, generator=rng)
    with pytest.raises(RuntimeError, match="never fitted"):
        head(features)
    head.set_anchors(anchors)
    torch.testing.assert_close(head.anchor_rotations(), anchors, atol=1e-6, rtol=0)
    with torch.no_grad():  # no refinement, and a classifier certain of anchor 2
        head.regressor[-1].weight.zero_()
        head.anchor_classifier.weight.zero_()
        head.anchor_classifier.bias.copy_(torch.tensor([0.0, 0.0, 50.0]))
    prediction = head(features)
    assert prediction["anchor_logits"].shape == (2, 3)
    torch.testing.assert_close(prediction["rotmats"][:, 0], FACING_CAMERA.expand(2, 3, 3))
    torch.testing.assert_close(prediction["rotmats"][:, 1:], anchors[2].expand(2, 4, 3, 3),
                               atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"anchors must be \[3, 4, 3, 3\]"):
        head.set_anchors(anchors[:2])


def test_head_without_anchors_has_no_scores():
    head = SMPLHead(16, 5, torch.zeros(6), bounded_shape=False, channels=32).eval()
    assert "anchor_logits" not in head(torch.randn(2, 16, 14, 14))


def test_anchor_loss_is_cross_entropy_on_the_known_bodies(rng):
    anchors = random_rotations(rng, 4, 3)
    poses = random_rotations(rng, 6, 4)
    logits = torch.randn(6, 4, generator=rng, requires_grad=True)
    known = torch.tensor([True, False, True, True, False, True])
    labels = torch.tensor(nearest_anchor(poses, anchors).tolist())
    loss = pose_anchor_loss(logits, poses, anchors, known)
    torch.testing.assert_close(loss, F.cross_entropy(logits[known], labels[known]))
    nothing = pose_anchor_loss(logits, poses, anchors, torch.zeros(6, dtype=torch.bool))
    assert nothing.item() == 0.0 and nothing.requires_grad


def anchored_params(iters: int = 2) -> dict:
    params = tiny_training_params(iters=iters)
    params["model"]["pose_anchors"] = 4
    return params


def test_criterion_scores_anchors_and_trains_the_classifier(tmp_path):
    prepare_tiny_shards(tmp_path, anchored_params())
    model = tiny_model(anchored_params()).train()
    head = model.network.roi_heads.smpl_head
    head.set_anchors(fit_pose_anchors(model.criterion.prior(64)[0], 4, seed=0))
    model.criterion.anchors = head.anchor_rotations()
    images, targets = first_batch(tmp_path)[:2]
    losses = model(images, targets)
    assert torch.isfinite(losses["loss_pose_anchor"]) and losses["loss_pose_anchor"] > 0
    losses["loss_pose_anchor"].backward()
    assert head.anchor_classifier.weight.grad.abs().sum() > 0


def test_phases_fit_the_anchors_once_and_carry_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = anchored_params()
    prepare_tiny_shards(tmp_path, params)
    run(params, "pretrain", None)
    pretrained = read_model("models/pretrain/model.pt")["network"]
    assert pretrained["roi_heads.smpl_head.anchors_fitted"]
    assert "loss_pose_anchor" in json.loads(Path("logs/pretrain/metrics.json").read_text())["train"]
    run(params, "baseline", None)
    baseline = read_model("models/baseline/model.pt")["network"]
    torch.testing.assert_close(baseline["roi_heads.smpl_head.anchors"],
                               pretrained["roi_heads.smpl_head.anchors"])
    for folder in ("checkpoints", "models", "logs"):  # the fit is the same on a re-run
        shutil.rmtree(folder)
    run(params, "pretrain", None)
    torch.testing.assert_close(read_model("models/pretrain/model.pt")["network"][
        "roi_heads.smpl_head.anchors"], pretrained["roi_heads.smpl_head.anchors"])
