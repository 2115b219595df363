"""Test-time coherence refinement (pipelines.refine): colliding people are separated while
their 2D projections stay put, a wrong depth order is corrected, coherent scenes are
returned untouched, the pseudo depth-order evidence follows the boxes, and bad input is a
clear error."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

import pipelines.refine as refine_module
from model.body import posed_in_camera
from model.camera import intrinsics_matrix, project, scale_intrinsics
from model.smpl_head import FACING_CAMERA
from ops.collision import collision_loss, collision_volume
from ops.raster import depth_maps
from pipelines.refine import (
    RefineConfig,
    overlapping_in_image,
    pseudo_instances,
    ranked_pairs,
    refine,
)
from pipelines.refining_network import refine_detections

HEIGHT, WIDTH = 256, 416
K = intrinsics_matrix(500.0, WIDTH, HEIGHT)
CONFIG = RefineConfig(order_steps=10, order_lr=0.05, separate_steps=30, separate_lr=0.02,
                      steps=20, lr=0.01, collision=1.0,
                      depth_order=100.0, rank=10.0, keypoints_2d=10.0, depth=1.0, pose=1.0,
                      prior=0.0,
                      sigma=0.2, grid=32, render_scale=0.5, order_margin=0.05,
                      order_tolerance=0.1,
                      collision_tolerance=1e-4, min_score=0.5)


def standing(body, translations: list[list[float]]):
    """People in the rest pose facing the camera, at these pelvis positions, and their
    image boxes."""
    count = len(translations)
    rotmats = torch.eye(3).repeat(count, body.num_joints, 1, 1)
    rotmats[:, 0] = FACING_CAMERA
    shape = body.mean_shape().float().expand(count, -1).clone()
    transl = torch.tensor(translations)
    pixels = project(posed_in_camera(body, rotmats, shape, transl).vertices, K)
    return rotmats, shape, transl, torch.cat([pixels.min(1).values, pixels.max(1).values], 1)


def joints_2d(body, rotmats, shape, transl) -> torch.Tensor:
    return project(posed_in_camera(body, rotmats, shape, transl).joints["coco17"], K)


def test_colliding_people_are_separated_and_stay_on_their_2d_joints(anny_body):
    rotmats, shape, transl, boxes = standing(anny_body, [[-0.12, 0.3, 4.0], [0.12, 0.3, 4.1]])
    result = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    assert result.history[0][0] > 0  # they interpenetrate before
    assert 0 < result.steps < CONFIG.steps
    assert result.history[-1][0] <= CONFIG.collision_tolerance
    before = posed_in_camera(anny_body, rotmats, shape, transl)
    after = posed_in_camera(anny_body, result.rotmats, result.shape, result.transl)
    # declared apart with fields voxelised where the people stand, not a few steps old
    assert float(collision_loss(after.vertices, anny_body.faces, CONFIG.grid, CONFIG.sigma,
                                "official")) <= CONFIG.collision_tolerance
    # the evaluation's measure (Table 4, 64^3 grids): from litres to (almost) nothing
    volume_before = float(collision_volume(before.vertices, anny_body.faces).sum())
    volume_after = float(collision_volume(after.vertices, anny_body.faces).sum())
    assert volume_before > 1e-5 and volume_after < 1e-6  # m^3: > 10 cm^3, < 1 cm^3
    moved = (joints_2d(anny_body, result.rotmats, result.shape, result.transl)
             - joints_2d(anny_body, rotmats, shape, transl)).norm(dim=-1)
    assert moved.mean() < 4.0 and moved.max() < 10.0  # pixels, in a 256 x 416 image


def share_in_front(body, rotmats, shape, transl, person: int) -> tuple[float, int]:
    """Share of the pixels covered by both people where ``person`` is the nearer, and how
    many such pixels there are (depth maps at half size)."""
    size, K_small = (HEIGHT // 2, WIDTH // 2), scale_intrinsics(K, 0.5)
    depths = depth_maps(posed_in_camera(body, rotmats, shape, transl).vertices, body.faces,
                        K_small, size)
    both = torch.isfinite(depths).all(dim=0)
    return float((depths.argmin(dim=0)[both] == person).float().mean()), int(both.sum())


def test_a_wrong_depth_order_between_overlapping_people_is_corrected(anny_body):
    # the network put person 0 in front, but person 1's box reaches lower in the image:
    # by the box cue, person 1 stands nearer the camera
    rotmats, shape, transl, boxes = standing(anny_body, [[0.35, 0.3, 4.0], [-0.3, 0.3, 4.3]])
    boxes[1, 3] = boxes[0, 3] + 0.15 * (boxes[1, 3] - boxes[1, 1])
    before, overlap = share_in_front(anny_body, rotmats, shape, transl, 1)
    assert before == 0.0 and overlap > 20
    result = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    after, overlap = share_in_front(anny_body, result.rotmats, result.shape, result.transl, 1)
    assert after > 0.9 and overlap > 10  # reordered, still overlapping in the image
    assert result.transl[1, 2] < result.transl[0, 2]
    # they moved along their rays: the roots stay put in the image, the joints move only
    # as much as the change of size with depth (about 10 %) implies
    root_moved = (project(result.transl, K) - project(transl, K)).norm(dim=-1)
    moved = (joints_2d(anny_body, result.rotmats, result.shape, result.transl)
             - joints_2d(anny_body, rotmats, shape, transl)).norm(dim=-1)
    assert root_moved.max() < 4.0 and moved.mean() < 6.0


def test_reordering_runs_without_the_other_phases(anny_body):
    """``separate_steps: 0, steps: 0`` turn off the rigid and the every-term phases:
    people are still reordered along their rays (phase 1 has its own ``order_steps``),
    and the coherence check after it is made once."""
    rotmats, shape, transl, boxes = standing(anny_body, [[0.35, 0.3, 4.0], [-0.3, 0.3, 4.3]])
    boxes[1, 3] = boxes[0, 3] + 0.15 * (boxes[1, 3] - boxes[1, 1])
    config = dataclasses.replace(CONFIG, separate_steps=0, steps=0)
    result = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, config)
    assert 0 < result.steps <= config.order_steps and len(result.history) == 1
    assert result.transl[1, 2] < result.transl[0, 2]
    assert share_in_front(anny_body, result.rotmats, result.shape, result.transl, 1)[0] > 0.9
    torch.testing.assert_close(result.rotmats, rotmats)  # only the depths moved
    off = dataclasses.replace(config, order_steps=0)
    assert refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, off).steps == 0


def test_refinement_runs_with_deterministic_cpu_kernels(anny_body, monkeypatch):
    """The optimisation runs under pipelines.determinism on the CPU (its gathers'
    backward sums in a fixed order), and the global setting comes back afterwards."""
    seen, reorder = [], refine_module._reorder

    def recording_reorder(*args):
        seen.append(torch.are_deterministic_algorithms_enabled())
        return reorder(*args)

    monkeypatch.setattr(refine_module, "_reorder", recording_reorder)
    rotmats, shape, transl, boxes = standing(anny_body, [[0.35, 0.3, 4.0], [-0.3, 0.3, 4.3]])
    refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    assert seen == [True] and not torch.are_deterministic_algorithms_enabled()


def test_whole_bodies_inside_each_other_are_separated_by_rigid_moves(anny_body):
    """Phase 2 alone (no every-term phase): the people keep the network's pose and
    shape, and only their roots move, a few pixels in the image at most."""
    rotmats, shape, transl, boxes = standing(anny_body, [[-0.12, 0.3, 4.0], [0.12, 0.3, 4.1]])
    config = dataclasses.replace(CONFIG, steps=0)
    result = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, config)
    assert result.history[0][0] > 0 and result.history[-1][0] <= CONFIG.collision_tolerance
    assert 0 < result.steps <= config.separate_steps
    assert torch.equal(result.shape, shape)
    torch.testing.assert_close(result.rotmats, rotmats)  # through 6D and back: rounding
    root_moved = (project(result.transl, K) - project(transl, K)).norm(dim=-1)
    assert root_moved.max() < 6.0


def test_only_the_people_in_trouble_move(anny_body):
    """Two people inside each other and a third behind them, overlapping one of them in
    the image in the right order: the first two are separated, the third is held still
    (its variables take no step), though it takes part in every check."""
    rotmats, shape, transl, boxes = standing(
        anny_body, [[-0.12, 0.3, 4.0], [0.12, 0.3, 4.1], [0.5, 0.3, 6.0]])
    assert overlapping_in_image(boxes).all()
    result = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    assert result.steps > 0 and result.history[-1][0] <= CONFIG.collision_tolerance
    assert (result.transl[:2] - transl[:2]).norm(dim=-1).min() > 1e-3  # metres
    # the third: through the ray and 6D parametrisations and back, float rounding only
    torch.testing.assert_close(result.transl[2], transl[2], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(result.rotmats[2], rotmats[2], rtol=1e-6, atol=1e-6)
    assert torch.equal(result.shape[2], shape[2])


def test_people_apart_in_the_image_are_ranked_by_their_boxes_along_their_rays(anny_body):
    """The ranking term: two people who do not overlap in the image, the one whose box
    reaches lower placed farther by the network, are reordered in depth along their rays
    (nothing else moves); with ``rank: 0`` they are not refined at all."""
    rotmats, shape, transl, boxes = standing(anny_body, [[-0.8, 0.3, 4.0], [0.8, 0.3, 4.4]])
    boxes[1, 3] = boxes[0, 3] + 0.15 * (boxes[1, 3] - boxes[1, 1])  # person 1 lower: nearer
    assert not overlapping_in_image(boxes).any()
    assert ranked_pairs(boxes, CONFIG.order_margin).tolist() == [[1, 0]]
    result = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    assert 0 < result.steps <= CONFIG.order_steps
    assert result.transl[1, 2] < result.transl[0, 2]
    torch.testing.assert_close(result.rotmats, rotmats)
    root_moved = (project(result.transl, K) - project(transl, K)).norm(dim=-1)
    assert root_moved.max() < 0.5  # pixels: along the rays
    off = dataclasses.replace(CONFIG, rank=0.0)
    unranked = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, off)
    assert unranked.steps == 0 and unranked.transl is transl


def test_ranked_pairs_follow_the_box_bottoms_beyond_the_margin():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 100.0],     # bottom 100, height 100
                          [20.0, 10.0, 30.0, 104.0],   # bottom 104: within 5 % of 94
                          [40.0, 50.0, 50.0, 120.0]])  # bottom 120: lower than both
    assert sorted(ranked_pairs(boxes, 0.05).tolist()) == [[2, 0], [2, 1]]
    assert sorted(ranked_pairs(boxes, 0.0).tolist()) == [[1, 0], [2, 0], [2, 1]]


def test_refine_settings_with_a_missing_key_are_a_clear_error():
    values = {"base": "full", **{f: getattr(CONFIG, f) for f in CONFIG.__dataclass_fields__}}
    assert RefineConfig.from_section(values) == CONFIG  # ``base`` is the stage's, ignored
    del values["depth"]
    with pytest.raises(ValueError, match=r"params.yaml: the refine section lacks \['depth'\]"):
        RefineConfig.from_section(values)


def test_a_coherent_scene_takes_zero_steps_and_is_returned_unchanged(anny_body):
    # overlapping in the image, apart in depth, the nearer one lower in the image
    rotmats, shape, transl, boxes = standing(anny_body, [[0.1, 0.8, 4.0], [-0.3, 0.3, 6.0]])
    assert overlapping_in_image(boxes).all()
    result = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    assert result.steps == 0 and result.history == [(0.0, 0.0)]
    assert result.rotmats is rotmats and result.shape is shape and result.transl is transl


def test_people_whose_boxes_do_not_overlap_are_not_touched(anny_body):
    rotmats, shape, transl, boxes = standing(anny_body, [[-1.2, 0.3, 4.0], [1.2, 0.3, 4.0]])
    assert not overlapping_in_image(boxes).any()
    result = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    assert result.steps == 0 and result.history == []
    assert torch.equal(result.transl, transl)


def test_low_scoring_detections_are_left_as_they_are(anny_body):
    rotmats, shape, transl, boxes = standing(
        anny_body, [[-0.12, 0.3, 4.0], [0.12, 0.3, 4.1], [0.0, 0.3, 4.05]])
    detections = {"boxes": boxes, "scores": torch.tensor([0.9, 0.8, 0.2]), "rotmats": rotmats,
                  "shape": shape, "transl": transl}
    refined, result = refine_detections(detections, K, (HEIGHT, WIDTH), anny_body, CONFIG)
    assert result.steps > 0
    assert torch.equal(refined["transl"][2], transl[2])  # the duplicate stays
    assert not torch.equal(refined["transl"][:2], transl[:2])
    assert torch.equal(detections["transl"], transl)  # the input is not modified


@pytest.mark.parametrize("name", ["rotmats", "shape", "transl", "boxes"])
def test_non_finite_input_is_a_clear_error(anny_body, name):
    values = dict(zip(("rotmats", "shape", "transl", "boxes"),
                      standing(anny_body, [[-0.12, 0.3, 4.0], [0.12, 0.3, 4.1]]), strict=True))
    values[name] = values[name].clone()
    values[name].view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        refine(**values, image_size=(HEIGHT, WIDTH), K=K, body=anny_body, config=CONFIG)


def test_pseudo_instances_give_overlaps_to_the_lowest_box_beyond_the_margin():
    depths = torch.full((3, 4, 6), float("inf"))
    depths[0, :, :4] = 5.0  # person 1 covers columns 0-3
    depths[1, :, 2:] = 4.0  # person 2 covers columns 2-5: overlap at columns 2-3
    depths[2, 0, 0] = 3.0  # person 3 covers one pixel, with a box as low as person 1's
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0],   # bottom 8: lower than person 2's 6
                          [4.0, 0.0, 12.0, 6.0],
                          [0.0, 0.2, 2.0, 8.0]])  # bottom 8, a tie with person 1
    instances = pseudo_instances(depths, boxes, scale=0.5, margin=0.05)
    assert instances[1:, :2].eq(1).all()  # person 1 alone
    assert instances[:, 2:4].eq(1).all()  # the overlap: person 1's box reaches lower
    assert instances[:, 4:].eq(2).all()  # person 2 alone
    assert instances[0, 0] == 0  # a tie: the cue cannot tell


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_refine_on_cuda_matches_cpu(anny_body):
    rotmats, shape, transl, boxes = standing(anny_body, [[-0.12, 0.3, 4.0], [0.12, 0.3, 4.1]])
    cpu = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    body = copy.deepcopy(anny_body).to("cuda")  # the fixture is shared: leave it on the CPU
    gpu = refine(rotmats.cuda(), shape.cuda(), transl.cuda(), boxes.cuda(), (HEIGHT, WIDTH),
                 K.cuda(), body, CONFIG)
    assert gpu.steps > 0 and gpu.history[-1][0] <= CONFIG.collision_tolerance
    after = posed_in_camera(body, gpu.rotmats, gpu.shape, gpu.transl)
    assert float(collision_volume(after.vertices, body.faces).sum()) < 1e-6
    # float differences between the devices may change the path a little, not the result
    assert (gpu.transl.cpu() - cpu.transl).abs().max() < 0.02  # metres


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ranking_on_cuda_matches_cpu(anny_body):
    """The root-ranking term on CUDA: the same scene as the CPU test above, the same
    reordering (people apart in the image, ranked by their boxes)."""
    rotmats, shape, transl, boxes = standing(anny_body, [[-0.8, 0.3, 4.0], [0.8, 0.3, 4.4]])
    boxes[1, 3] = boxes[0, 3] + 0.15 * (boxes[1, 3] - boxes[1, 1])
    cpu = refine(rotmats, shape, transl, boxes, (HEIGHT, WIDTH), K, anny_body, CONFIG)
    body = copy.deepcopy(anny_body).to("cuda")
    gpu = refine(rotmats.cuda(), shape.cuda(), transl.cuda(), boxes.cuda(), (HEIGHT, WIDTH),
                 K.cuda(), body, CONFIG)
    assert gpu.steps > 0 and gpu.transl[1, 2] < gpu.transl[0, 2]
    assert (gpu.transl.cpu() - cpu.transl).abs().max() < 0.02  # metres
