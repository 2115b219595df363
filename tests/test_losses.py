"""Per-person and scene losses against direct formulas."""

import math

import pytest
import torch
import trimesh

from model.losses import (
    body_param_loss,
    discriminator_loss,
    generator_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    scene_losses,
    select_per_person,
)
from model.rcnn import BranchOutput
from model.smpl_criterion import CriterionConfig, LossWeights, SMPLCriterion
from pipelines.training import build_optimizers, lr_factor, set_learning_rates, split_losses


def test_keypoint_2d_loss_is_box_normalised_and_weighted(rng):
    pred = torch.rand(3, 17, 2, generator=rng) * 100
    gt = torch.cat([torch.rand(3, 17, 2, generator=rng) * 100,
                    (torch.rand(3, 17, 1, generator=rng) > 0.3).float()], -1)
    boxes = torch.tensor([[10.0, 20, 60, 120], [0, 0, 30, 90], [5, 5, 105, 55]])
    total = 0.0
    for n in range(3):
        cx, cy = (boxes[n, 0] + boxes[n, 2]) / 2, (boxes[n, 1] + boxes[n, 3]) / 2
        w, h = boxes[n, 2] - boxes[n, 0], boxes[n, 3] - boxes[n, 1]
        for k in range(17):
            dx = (pred[n, k, 0] - cx) / w - (gt[n, k, 0] - cx) / w
            dy = (pred[n, k, 1] - cy) / h - (gt[n, k, 1] - cy) / h
            total += gt[n, k, 2] * (abs(dx) + abs(dy))
    expected = total / (3 * 17 * 2)
    ours = keypoint_2d_loss(pred, gt, boxes, "l1")
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)
    squared = keypoint_2d_loss(pred, gt, boxes, "mse")
    assert squared.item() > 0 and squared.item() != pytest.approx(expected.item())


def test_keypoint_3d_loss_is_root_centred(rng):
    gt_points = torch.randn(2, 17, 3, generator=rng)
    gt = torch.cat([gt_points, torch.ones(2, 17, 1)], -1)
    shifted = gt_points + torch.tensor([1.0, -2.0, 3.0])  # same pose elsewhere
    assert keypoint_3d_loss(shifted, gt).item() == pytest.approx(0.0, abs=1e-6)
    pred = gt_points + 0.1 * torch.randn(2, 17, 3, generator=rng)
    expected = ((pred - pred[:, :1]) - (gt_points - gt_points[:, :1])).abs().mean()
    assert keypoint_3d_loss(pred, gt).item() == pytest.approx(expected.item(), rel=1e-5)
    gt[:, 0, 3] = 0  # unknown root: nothing to supervise
    assert keypoint_3d_loss(pred, gt).item() == 0.0


def test_body_param_loss_only_where_known(rng):
    a, b = torch.randn(3, 20, 3, 3, generator=rng), torch.randn(3, 20, 3, 3, generator=rng)
    sa, sb = torch.rand(3, 6, generator=rng), torch.rand(3, 6, generator=rng)
    va, vb = torch.randn(3, 50, 3, generator=rng), torch.randn(3, 50, 3, generator=rng)
    known = torch.tensor([True, False, True])
    losses = body_param_loss(a, b, sa, sb, va, vb, known)
    assert losses["rotmats"].item() == pytest.approx(((a - b)[known] ** 2).mean().item())
    assert losses["shape"].item() == pytest.approx(((sa - sb)[known] ** 2).mean().item())
    assert losses["vertices"].item() == pytest.approx((va - vb)[known].abs().mean().item())
    none = body_param_loss(a, b, sa, sb, va, vb, torch.zeros(3, dtype=torch.bool))
    assert all(v.item() == 0 for v in none.values())


def test_adversarial_losses_are_lsgan():
    fake = torch.tensor([[0.5, 1.0], [0.0, 2.0]])
    real = torch.tensor([[1.0, 0.0]])
    assert generator_loss(fake).item() == pytest.approx(((0.25 + 0) + (1 + 1)) / 2)
    terms = discriminator_loss(real, fake)
    assert terms["real"].item() == pytest.approx(1.0)
    assert terms["fake"].item() == pytest.approx(((0.25 + 1) + (0 + 4)) / 2)


def test_select_per_person_takes_the_best_positive():
    matched = torch.tensor([0, 2, 0, 2, 2])
    scores = torch.tensor([0.3, 0.9, 0.8, 0.95, 0.1])
    assert select_per_person(matched, scores, 4).tolist() == [2, -1, 3, -1]


def _two_people(offset: float):
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    body = torch.tensor(sphere.vertices * [0.6, 1.5, 0.5], dtype=torch.float32)
    people = torch.stack([body + torch.tensor([0.0, 0.0, 4.0]),
                          body + torch.tensor([offset, 0.0, 4.15])])
    return people, torch.tensor(sphere.faces)


K = torch.tensor([[80.0, 0.0, 40.0], [0.0, 80.0, 30.0], [0.0, 0.0, 1.0]])


def test_scene_losses_use_one_prediction_per_person():
    people, faces = _two_people(0.1)  # overlapping in 3D and in the image
    # three positives: person 0 twice (the second scores higher), person 1 once
    vertices = torch.stack([people[0] + 5.0, people[0], people[1]]).requires_grad_(True)
    chosen = select_per_person(torch.tensor([0, 0, 1]), torch.tensor([0.1, 0.9, 0.5]), 2)
    masks = torch.zeros(60, 80, dtype=torch.long)
    masks[:, 40:] = 2  # annotated: person 2 in front on the right half
    masks[:, :40] = 1
    losses = scene_losses(vertices, chosen, faces, K, (60, 80), masks, 0.2, "paper", 24,
                          (True, True))
    assert losses["collision"].item() > 0 and losses["depth_order"].item() > 0
    (losses["collision"] + losses["depth_order"]).backward()
    assert vertices.grad[0].abs().sum() == 0  # the low-scoring duplicate is not used
    assert vertices.grad[1].abs().sum() > 0 and vertices.grad[2].abs().sum() > 0


def test_scene_losses_are_zero_with_one_person_or_none_wanted():
    people, faces = _two_people(0.1)
    one = scene_losses(people, torch.tensor([0, -1]), faces, K, (60, 80), None, 0.2, "paper",
                       24, (True, True))
    assert one["collision"].item() == 0 and one["depth_order"].item() == 0
    off = scene_losses(people, torch.tensor([0, 1]), faces, K, (60, 80), None, 0.2, "paper",
                       24, (False, False))
    assert off["collision"].item() == 0


def test_schedule_and_loss_split():
    assert lr_factor(0, 30) == pytest.approx(1 / 3) and lr_factor(15, 30) == pytest.approx(2 / 3)
    assert lr_factor(30, 30) == 1.0 and lr_factor(5, 0) == 1.0
    losses = {"loss_a": torch.tensor(1.0), "adv_loss_real": torch.tensor(2.0),
              "loss_b": torch.tensor(0.5)}
    detector, adversary = split_losses(losses)
    assert detector.item() == 1.5 and adversary.item() == 2.0
    assert math.isfinite(detector.item())


def test_npz_prior_reads_axis_angle_or_rotmats_and_checks_sizes(tmp_path):
    import numpy as np

    from pipelines.priors import NpzPrior, build_prior
    from pipelines.synthetic.poses import SyntheticPrior

    pose = np.zeros((5, 72), dtype=np.float32)
    pose[:, 0] = np.pi / 2  # global rotation of 90 degrees about x
    np.savez(tmp_path / "smpl_poses.npz", pose=pose, shape=np.ones((5, 10), dtype=np.float32))
    prior = NpzPrior(tmp_path / "smpl_poses.npz", num_joints=24, shape_dim=10, seed=0)
    rotmats, shape = prior(7)
    assert rotmats.shape == (7, 24, 3, 3) and shape.shape == (7, 10)
    torch.testing.assert_close(rotmats[0, 0], torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
                               atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="do not fit a body model with 20 rotations"):
        NpzPrior(tmp_path / "smpl_poses.npz", num_joints=20, shape_dim=6, seed=0)
    np.savez(tmp_path / "bad.npz", betas=np.zeros((2, 10)))
    with pytest.raises(ValueError, match="bad.npz: expected 'shape'"):
        NpzPrior(tmp_path / "bad.npz", 24, 10, 0)
    with pytest.raises(FileNotFoundError, match="train.common.prior"):
        build_prior(str(tmp_path / "missing.npz"), 0, 24, 10, 0.2)
    synthetic = build_prior("synthetic", 0, 20, 6, 0.2)
    assert isinstance(synthetic, SyntheticPrior) and synthetic.child_fraction == 0.2


def test_synthetic_prior_batches_the_poses_it_draws_one_at_a_time():
    """The prior turns all its angles into matrices in one call; the reference draws each
    pose with ``sample_pose`` from the same generator, in the same order."""
    import numpy as np

    from pipelines.synthetic.poses import ACTIVITIES, SyntheticPrior, sample_phenotype, sample_pose

    for seed in (3, 17):
        rotmats, shape = SyntheticPrior(seed)(9)
        rng = np.random.default_rng(seed)
        activities = rng.choice(ACTIVITIES, size=9)
        local = torch.stack([sample_pose(str(a), rng) for a in activities])
        expected_shape = torch.stack([sample_phenotype(rng, 0.2) for _ in range(9)])
        assert rotmats.shape == (9, local.shape[1] + 1, 3, 3)
        torch.testing.assert_close(rotmats[:, 1:], local, atol=1e-6, rtol=0)
        assert torch.equal(rotmats[:, 0], torch.eye(3).expand(9, 3, 3))
        assert torch.equal(shape, expected_shape)


def test_weight_decay_is_applied_to_the_weights_as_the_official_radam():
    """With no gradient, the official RAdam shrinks each weight by ``lr * wd`` of itself
    per step (``p -= lr * wd * p``); an L2 term added to the gradient would instead be
    normalised by Adam into steps of about ``lr`` whatever the weight's size."""
    network, discriminator = torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(2, 1)
    start = torch.tensor([[1.0, 0.01]])
    with torch.no_grad():
        network.weight.copy_(start)
    detector_optimizer, _ = build_optimizers(network, discriminator, lr=1e-2,
                                             discriminator_lr=1e-3, weight_decay=1e-1)
    for _ in range(100):
        network.weight.grad = torch.zeros_like(network.weight)
        detector_optimizer.step()
    expected = start * (1 - 1e-2 * 1e-1) ** 100
    torch.testing.assert_close(network.weight.detach(), expected, rtol=1e-5, atol=0)


def test_only_the_detector_learning_rate_warms_up():
    network, discriminator = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    optimizers = build_optimizers(network, discriminator, 3e-4, 1e-4, 1e-4)
    set_learning_rates(optimizers, [3e-4, 1e-4], step=0, warmup_iters=30)
    assert optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert optimizers[1].param_groups[0]["lr"] == pytest.approx(1e-4)
    set_learning_rates(optimizers, [3e-4, 1e-4], step=30, warmup_iters=30)
    assert optimizers[0].param_groups[0]["lr"] == pytest.approx(3e-4)



def test_criterion_poses_each_annotated_person_once(anny_body, rng):
    """The vertex loss with each annotated person posed once and picked by the proposals
    matched to them equals the reference that poses every proposal's person anew."""
    body, people = anny_body, 3
    matched = torch.tensor([0, 2, 2, 1, 0, 2, 1])
    skew = 0.3 * torch.randn(people + len(matched), body.num_joints, 3, 3, generator=rng)
    rotations = torch.linalg.matrix_exp(skew - skew.mT)
    shapes = body.mean_shape() + 0.1 * torch.randn(people + len(matched), body.shape_dim,
                                                   generator=rng)
    boxes = torch.tensor([[10.0, 10.0, 60.0, 120.0]]).repeat(len(matched), 1)
    branch = BranchOutput(boxes=[boxes], matched=[matched], scores=[torch.ones(len(matched))],
                          rotmats=rotations[people:], shape=shapes[people:],
                          cam=torch.tensor([[1.0, 0.0, 0.0]]).repeat(len(matched), 1))
    target = {"K": torch.tensor([[500.0, 0, 64], [0, 500.0, 64], [0, 0, 1]]),
              "keypoints": torch.zeros(people, 17, 3), "rotmats": rotations[:people],
              "shape": shapes[:people], "has_body": torch.ones(people, dtype=torch.bool),
              "boxes": boxes[:people]}
    weights = LossWeights(keypoints_2d=0.0, keypoints_3d=0.0, rotmats=0.0, shape=0.0,
                          vertices=1.0, adversarial=0.0, pose_anchor=0.0)
    criterion = SMPLCriterion(body, None, None, CriterionConfig(weights, False, "l1", 5.0, None))
    loss = criterion(branch, [target], (128, 128))["loss_vertices"]
    predicted = body(rotations[people:], shapes[people:]).vertices
    reference = body(rotations[:people][matched], shapes[:people][matched]).vertices
    torch.testing.assert_close(loss, (predicted - reference).abs().mean())


def test_criterion_poses_every_image_in_one_body_call(anny_body, rng):
    """Every image's annotated people posed in one call: each image's vertices are its
    own people's, as posing the images one by one gives; an image without body
    parameters gets none."""
    body, calls = anny_body, []

    def counting_body(rotmats, shape):
        calls.append(len(rotmats))
        return body(rotmats, shape)

    targets = []
    for people in (3, 1, 2):
        skew = 0.3 * torch.randn(people, body.num_joints, 3, 3, generator=rng)
        targets.append({"rotmats": torch.linalg.matrix_exp(skew - skew.mT),
                        "shape": body.mean_shape() + 0.1 * torch.randn(people, body.shape_dim,
                                                                       generator=rng)})
    targets.insert(1, {"boxes": torch.zeros(2, 4)})  # keypoints only
    criterion = SMPLCriterion(counting_body, None, None, None)
    posed = criterion._annotated_vertices(targets)
    assert calls == [6] and posed[1] is None
    for target, vertices in zip(targets, posed, strict=True):
        if "rotmats" in target:
            expected = body(target["rotmats"], target["shape"]).vertices
            torch.testing.assert_close(vertices, expected, atol=1e-5, rtol=1e-5)
