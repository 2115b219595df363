"""Ground-truth consistency of the synthetic scenes, recomputed from the stored body
parameters with the body model, the camera and the rasterizer."""

import numpy as np
import pytest
import torch

from model.camera import project
from ops.collision import collision_volume
from ops.raster import depth_maps, instance_map
from pipelines.synthetic import SceneGenerator
from stages.prepare import split_spec, synthetic_config
from tests.synthetic_params import tiny_params


@pytest.fixture(scope="module")
def scenes(anny_body):
    params = tiny_params()
    config = synthetic_config(params)
    generators = [SceneGenerator(anny_body, config, name, split_spec(params, name), seed=0)
                  for name in ("synth_multi", "synth_groups", "synth_crowd")]
    return [g.sample(i)[0] for g in generators for i in range(3)]


def rebuild(body, sample):
    """Camera-frame vertices and joints from the stored parameters."""
    b = {k: torch.as_tensor(v) for k, v in sample["body"].items()}
    with torch.no_grad():
        output = body(b["rotmats"], b["shape"])
    transl = b["transl"][:, None]
    return output.vertices + transl, {k: v + transl for k, v in output.joints.items()}


def test_samples_follow_the_schema(scenes):
    for sample in scenes:
        meta, people = sample["meta"], sample["meta"]["num_people"]
        assert "." not in sample["__key__"] and sample["__key__"].startswith(meta["dataset"])
        assert sample["image"].shape == (meta["height"], meta["width"], 3)
        assert sample["boxes"].shape == (people, 4) and sample["kp2d"].shape == (people, 17, 3)
        assert sample["kp3d"].shape == (people, 17, 4) and (sample["kp3d"][..., 3] == 1).all()
        assert sample["body"]["rotmats"].shape == (people, 20, 3, 3)
    assert {s["meta"]["split"] for s in scenes} >= {"test", "haggling", "mafia", "ultimatum"}
    assert max(s["meta"]["num_people"] for s in scenes) >= 5


def test_keypoints_are_projections_of_the_body(scenes, anny_body):
    for sample in scenes:
        _, joints = rebuild(anny_body, sample)
        K = torch.tensor(sample["meta"]["K"])
        torch.testing.assert_close(torch.from_numpy(sample["kp2d"][..., :2]),
                                   project(joints["coco17"], K), atol=2e-3, rtol=0)
        torch.testing.assert_close(torch.from_numpy(sample["kp3d"][..., :3]), joints["h36m17"],
                                   atol=1e-5, rtol=0)


def test_masks_are_the_front_person_and_boxes_contain_them(scenes, anny_body):
    for sample in scenes:
        vertices, _ = rebuild(anny_body, sample)
        meta = sample["meta"]
        K = torch.tensor(meta["K"])
        depths = depth_maps(vertices, anny_body.faces, K, (meta["height"], meta["width"]))
        masks = torch.from_numpy(sample["masks"]).long()
        assert torch.equal(masks, instance_map(depths))
        for person, (x1, y1, x2, y2) in enumerate(sample["boxes"]):
            rows, cols = (masks == person + 1).nonzero(as_tuple=True)
            assert rows.numel() >= 12  # min_visible_pixels of the tiny profile
            assert x1 <= cols.min() and cols.max() < x2 and y1 <= rows.min() and rows.max() < y2


def test_visibility_means_in_image_and_not_behind_another_person(scenes, anny_body):
    checked_occluded = 0
    for sample in scenes:
        vertices, joints = rebuild(anny_body, sample)
        meta = sample["meta"]
        depths = depth_maps(vertices, anny_body.faces, torch.tensor(meta["K"]),
                            (meta["height"], meta["width"]))
        for p, keypoints in enumerate(sample["kp2d"]):
            for k, (x, y, visible) in enumerate(keypoints):
                inside = 0 <= x < meta["width"] and 0 <= y < meta["height"]
                if not inside:
                    assert visible == 0
                    continue
                others = np.delete(depths[:, int(y), int(x)].numpy(), p)
                occluded = bool((others < joints["coco17"][p, k, 2].item()).any())
                assert visible == (0 if occluded else 1)
                checked_occluded += occluded
    assert checked_occluded > 0  # the scenes do contain occlusions


def test_ground_truth_has_no_interpenetration(scenes, anny_body):
    for sample in scenes:
        vertices, _ = rebuild(anny_body, sample)
        assert collision_volume(vertices, anny_body.faces, grid_size=64).max() == 0


def test_same_seed_same_sample_other_seed_other_sample(anny_body):
    params = tiny_params()
    config, spec = synthetic_config(params), split_spec(params, "synth_multi")
    first = SceneGenerator(anny_body, config, "synth_multi", spec, seed=0).sample(2)[0]
    again = SceneGenerator(anny_body, config, "synth_multi", spec, seed=0).sample(2)[0]
    other = SceneGenerator(anny_body, config, "synth_multi", spec, seed=1).sample(2)[0]
    assert np.array_equal(first["image"], again["image"])
    assert np.array_equal(first["kp2d"], again["kp2d"])
    assert not np.array_equal(first["image"], other["image"])
