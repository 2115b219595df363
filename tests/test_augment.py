"""Horizontal flips (Anny and SMPL bodies mirror exactly), the official pretraining
crops, and the weighted dataset mixture."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
import torch

from model.body import COCO17_NAMES, H36M17_NAMES, load_body_model
from model.camera import project
from model.mirror import mirror_index, mirror_points, mirror_rotations
from ops.geometry import axis_angle_to_matrix
from pipelines.augment import crop_person, flip_sample, random_person
from pipelines.mixture import mixture
from pipelines.shards import read_shards
from stages.prepare import prepare
from tests.conftest import SMPL_PARENTS
from tests.synthetic_params import tiny_params


def random_rotations(count: int, joints: int, seed: int, scale: float = 0.4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(torch.randn(count, joints, 3, generator=generator) * scale)


def test_mirror_index_pairs_left_and_right():
    index = mirror_index(COCO17_NAMES)
    assert [COCO17_NAMES[i] for i in index][:5] == ["nose", "right_eye", "left_eye",
                                                     "right_ear", "left_ear"]
    h36m = mirror_index(H36M17_NAMES)
    assert [h36m[i] for i in h36m] == list(range(17))  # mirroring twice is the identity
    assert H36M17_NAMES[h36m[H36M17_NAMES.index("left_knee")]] == "right_knee"
    with pytest.raises(ValueError, match="no partner"):
        mirror_index(["left_hand"])


def test_flipped_anny_body_is_the_mirrored_body(anny_body):
    body = anny_body
    index = mirror_index(body.rotation_names)
    rest = torch.eye(3).expand(1, body.num_joints, 3, 3)
    template = body(rest, body.mean_shape()[None]).vertices[0]
    partner = torch.cdist(mirror_points(template), template).min(dim=1)
    assert partner.values.max() < 1e-3  # Anny's template is symmetric to 1 mm
    rotmats = random_rotations(3, body.num_joints, seed=0)
    shape = torch.stack([body.mean_shape(), torch.full((6,), 0.3), torch.full((6,), 0.7)])
    posed = body(rotmats, shape)
    flipped = body(mirror_rotations(rotmats, index), shape)
    error = (flipped.vertices - mirror_points(posed.vertices)[:, partner.indices]).norm(dim=-1)
    assert error.mean() < 2e-3 and error.max() < 1e-2
    for set_name, names in body.joint_sets.items():
        expected = mirror_points(posed.joints[set_name], mirror_index(names))
        assert (flipped.joints[set_name] - expected).norm(dim=-1).max() < 1e-2, set_name


def symmetric_smpl_arrays(num_vertices: int = 6890) -> dict[str, np.ndarray]:
    """An SMPL-structured model that is exactly symmetric about x = 0: mirrored joints,
    vertices in mirrored pairs skinned to partner joints, no blend shapes."""
    rng = np.random.default_rng(0)
    names = ["pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
             "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
             "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand"]
    partner = mirror_index(names)
    joints = np.zeros((24, 3))
    for j in range(1, 24):
        if partner[j] < j:
            joints[j] = joints[partner[j]] * [-1, 1, 1]
        elif partner[j] == j:
            joints[j] = joints[SMPL_PARENTS[j]] + [0, rng.uniform(0.05, 0.2), 0]
        else:
            joints[j] = joints[SMPL_PARENTS[j]] + rng.normal(0, 0.1, 3) + [0.05, 0, 0]
    half = num_vertices // 2
    owner = rng.integers(0, 24, half)
    vertices = joints[owner] + rng.normal(0, 0.03, (half, 3))
    owner = np.concatenate([owner, np.array(partner)[owner]])
    v_template = np.concatenate([vertices, vertices * [-1, 1, 1]])
    weights = np.zeros((num_vertices, 24))
    weights[np.arange(num_vertices), owner] = 1.0
    regressor = np.zeros((24, num_vertices))
    for j in range(24):
        members = np.flatnonzero(owner == j)
        regressor[j, members] = 1.0 / max(len(members), 1)
    kintree = np.stack([np.array(SMPL_PARENTS), np.arange(24)])
    kintree[0, 0] = 4294967295
    faces = rng.integers(0, num_vertices, (num_vertices, 3))
    return {"v_template": v_template, "shapedirs": np.zeros((num_vertices, 3, 10)),
            "posedirs": np.zeros((num_vertices, 3, 207)), "J_regressor": regressor,
            "weights": weights, "kintree_table": kintree, "f": faces.astype(np.int64)}


def test_flipped_smpl_body_is_the_mirrored_body(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, **symmetric_smpl_arrays())
    body = load_body_model("smpl", model_path=path)
    index = mirror_index(body.rotation_names)
    rotmats = random_rotations(2, body.num_joints, seed=1)
    shape = torch.zeros(2, 10)
    posed, flipped = body(rotmats, shape), body(mirror_rotations(rotmats, index), shape)
    half = 6890 // 2
    partner = torch.cat([torch.arange(half, 2 * half), torch.arange(half)])
    torch.testing.assert_close(flipped.vertices, mirror_points(posed.vertices)[:, partner],
                               atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("augment") / "synth_multi"
    prepare("synth_multi", root, tiny_params(size=3))
    return list(read_shards(root))


def test_flip_mirrors_every_annotation_consistently(samples, anny_body):
    sample = samples[0]
    flipped = flip_sample(sample, mirror_index(anny_body.rotation_names))
    target, mirrored = sample["target"], flipped["target"]
    width = sample["image"].shape[-1]
    assert torch.equal(flipped["image"], sample["image"].flip(-1))
    assert torch.equal(mirrored["masks"], target["masks"].flip(-1))
    # the mirrored 3D joints project onto the mirrored 2D keypoints
    projected = project(mirrored["kp3d"][..., :3], mirrored["K"])
    expected = project(target["kp3d"][..., :3], target["K"])
    expected = torch.stack([width - expected[..., 0], expected[..., 1]], dim=-1)
    torch.testing.assert_close(projected, expected[:, mirror_index(H36M17_NAMES)], atol=1e-3,
                               rtol=0)
    # the mirrored body parameters pose the mirrored 3D joints
    posed = anny_body(mirrored["rotmats"], mirrored["shape"])
    joints = posed.joints["h36m17"] + mirrored["transl"][:, None]
    assert (joints - mirrored["kp3d"][..., :3]).norm(dim=-1).max() < 0.01
    left = COCO17_NAMES.index("left_wrist")
    right = COCO17_NAMES.index("right_wrist")
    visible = target["keypoints"][:, left, 2] > 0
    torch.testing.assert_close(mirrored["keypoints"][visible, right, 0],
                               width - target["keypoints"][visible, left, 0])
    assert torch.equal(flip_sample(flipped, mirror_index(anny_body.rotation_names))["image"],
                       sample["image"])


def test_crop_makes_the_person_fill_the_official_square(samples):
    sample = samples[1]
    person = random_person(sample, np.random.default_rng(0))
    crop = crop_person(sample, person, size=256, scale=1.2)
    box = crop["target"]["boxes"][0]
    width, height = (box[2:] - box[:2]).tolist()
    assert crop["image"].shape == (3, 256, 256) and crop["meta"]["num_people"] == 1
    assert max(width, height) == pytest.approx(256 / 1.2, abs=3)  # the longer side fills it
    assert ((box[:2] + box[2:]) / 2 - 128).abs().max() < 3  # centred
    kp3d = crop["target"]["kp3d"][0]
    projected = project(kp3d[:, :3], crop["target"]["K"])
    original = project(sample["target"]["kp3d"][person, :, :3], sample["target"]["K"])
    left, top, side = crop_window(sample["target"]["boxes"][person].tolist(), 1.2)
    corner = torch.tensor([left, top])
    torch.testing.assert_close(projected, (original - corner) * 256 / side, atol=1e-3, rtol=0)


def random_scene(seed: int, people: int = 12, height: int = 240, width: int = 320) -> dict:
    """A decoded sample with random boxes (some outside the image) and keypoints."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(people, 2, generator=generator) * torch.tensor([width, height]) - 20
    extent = 10 + torch.rand(people, 2, generator=generator) * 90
    keypoints = torch.rand(people, 17, 3, generator=generator) * torch.tensor([width, height, 1])
    keypoints[..., 2] = 2.0
    target = {"boxes": torch.cat([corner, corner + extent], dim=1),
              "labels": torch.ones(people, dtype=torch.int64), "keypoints": keypoints,
              "kp3d": torch.rand(people, 17, 4, generator=generator),
              "K": torch.tensor([[300.0, 0, width / 2], [0, 300.0, height / 2], [0, 0, 1]])}
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    return {"key": f"random/{seed}", "image": image, "target": target,
            "meta": {"width": width, "height": height, "num_people": people}}


def crop_window(box: list[float], scale: float) -> tuple[int, int, int]:
    """``(left, top, side)`` of the official crop square around ``box`` (x1 y1 x2 y2)."""
    x1, y1, x2, y2 = box
    side = max(round(scale * max(x2 - x1, y2 - y1)), 1)
    return round((x1 + x2) / 2 - side / 2), round((y1 + y2) / 2 - side / 2), side


def kept_by_reference(boxes: list[list[float]], person: int, scale: float,
                      others: float) -> list[int]:
    """The people a crop annotates, one box at a time in plain floats."""
    left, top, side = crop_window(boxes[person], scale)
    kept = []
    for index, (a1, b1, a2, b2) in enumerate(boxes):
        width = max(0.0, min(a2, left + side) - max(a1, left))
        height = max(0.0, min(b2, top + side) - max(b1, top))
        if index == person or width * height >= others * (a2 - a1) * (b2 - b1):
            kept.append(index)
    return kept


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("others", [0.25, 0.6, 1.0])
def test_crop_keeps_the_people_mostly_inside_it_as_the_reference(seed, others):
    sample = random_scene(seed)
    boxes = sample["target"]["boxes"].tolist()
    for person in range(len(boxes)):
        crop = crop_person(sample, person, size=128, scale=1.2, others=others)
        expected = kept_by_reference(boxes, person, 1.2, others)
        left, top, side = crop_window(boxes[person], 1.2)
        corner = torch.tensor([left, top])
        target = crop["target"]
        assert crop["meta"]["num_people"] == len(expected) == len(target["boxes"])
        original = sample["target"]["boxes"][expected].view(-1, 2, 2)
        torch.testing.assert_close(target["boxes"].view(-1, 2, 2),
                                   ((original - corner) * 128 / side).clamp(0, 128))
        torch.testing.assert_close(target["kp3d"], sample["target"]["kp3d"][expected])
        moved = (sample["target"]["keypoints"][expected, :, :2] - corner) * 128 / side
        torch.testing.assert_close(target["keypoints"][..., :2], moved)
        inside = ((moved >= 0) & (moved < 128)).all(dim=-1)
        assert torch.equal(target["keypoints"][..., 2] > 0, inside)


def partly_inside_by_reference(boxes: list[list[float]], person: int, scale: float,
                               others: float | None) -> list[int]:
    """The people a crop ignores: not annotated, yet with some of their box inside."""
    kept = [person] if others is None else kept_by_reference(boxes, person, scale, others)
    left, top, side = crop_window(boxes[person], scale)
    partly = []
    for index, (a1, b1, a2, b2) in enumerate(boxes):
        width = max(0.0, min(a2, left + side) - max(a1, left))
        height = max(0.0, min(b2, top + side) - max(b1, top))
        if index not in kept and width * height > 0:
            partly.append(index)
    return partly


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("others", [None, 0.25, 0.75])
def test_crop_ignores_the_people_partly_inside_it_as_the_reference(seed, others):
    sample = random_scene(seed)
    boxes = sample["target"]["boxes"].tolist()
    ignored_somewhere = 0
    for person in range(len(boxes)):
        crop = crop_person(sample, person, size=128, scale=1.2, others=others, partial="ignore")
        plain = crop_person(sample, person, size=128, scale=1.2, others=others)
        assert "ignore_boxes" not in plain["target"]  # "background", the default, adds none
        for name, value in plain["target"].items():  # and ignoring changes nothing else
            assert torch.equal(crop["target"][name], value), name
        expected = partly_inside_by_reference(boxes, person, 1.2, others)
        left, top, side = crop_window(boxes[person], 1.2)
        corner = torch.tensor([left, top])
        original = sample["target"]["boxes"][expected].view(-1, 2, 2)
        torch.testing.assert_close(crop["target"]["ignore_boxes"].view(-1, 2, 2),
                                   ((original - corner) * 128 / side).clamp(0, 128))
        ignored_somewhere += len(expected)
    assert ignored_somewhere > 0  # the scenes do put people partly inside crops


def test_crop_partial_others_must_be_background_or_ignore():
    with pytest.raises(ValueError, match="'background' or 'ignore'"):
        crop_person(random_scene(7), 3, size=128, scale=1.2, others=0.5, partial="drop")


def test_crop_others_off_is_the_official_single_person_crop():
    sample = random_scene(7)
    official = crop_person(sample, 3, size=128, scale=1.2)
    assert official["meta"]["num_people"] == 1
    torch.testing.assert_close(official["target"]["kp3d"], sample["target"]["kp3d"][3:4])
    with pytest.raises(ValueError, match="crop_others"):
        crop_person(sample, 3, size=128, scale=1.2, others=0.0)


def test_crop_keeps_its_own_person_even_with_an_empty_box():
    """A zero-height box has no area inside any window; the cropped person stays anyway."""
    sample = random_scene(8)
    sample["target"]["boxes"][2, 3] = sample["target"]["boxes"][2, 1]
    crop = crop_person(sample, 2, size=128, scale=1.2, others=0.25)
    assert crop["meta"]["crop_of"] == 2
    assert any(torch.equal(kp3d, sample["target"]["kp3d"][2]) for kp3d in crop["target"]["kp3d"])


def test_crop_of_a_scene_projects_every_kept_person_consistently(samples):
    """Real synthetic scenes: the 3D joints of every person a crop keeps project through
    the crop's intrinsics where the original projection lands in the crop."""
    others_kept = 0
    for sample in samples:
        boxes = sample["target"]["boxes"].tolist()
        original = project(sample["target"]["kp3d"][..., :3], sample["target"]["K"])
        for person in range(len(boxes)):
            crop = crop_person(sample, person, size=128, scale=1.2, others=0.25)
            kept = kept_by_reference(boxes, person, 1.2, 0.25)
            left, top, side = crop_window(boxes[person], 1.2)
            corner = torch.tensor([left, top])
            projected = project(crop["target"]["kp3d"][..., :3], crop["target"]["K"])
            torch.testing.assert_close(projected, (original[kept] - corner) * 128 / side,
                                       atol=1e-3, rtol=0)
            others_kept += len(kept) - 1
    assert others_kept > 0  # some crops kept another person


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    params = tiny_params(size=8)
    params["shard"]["max_count"] = 2  # 4 shards each: enough to split across 2 ranks
    for name in ("synth_single", "synth_multi"):
        prepare(name, root / name, params)
    return root


def test_mixture_shares_follow_the_weights_and_the_seed(two_datasets):
    weights = {"synth_single": 0.6, "synth_multi": 0.2}

    def draws(seed, count=2000):
        stream = mixture(weights, seed, root=two_datasets)
        return [next(stream)["key"] for _ in range(count)]

    first = draws(0)
    shares = Counter(key.split("-")[0] for key in first)
    assert shares["synth_single"] / 2000 == pytest.approx(0.75, abs=0.03)
    assert draws(0, 200) == first[:200] and draws(1, 200) != first[:200]


def test_mixture_ranks_see_disjoint_samples(two_datasets, monkeypatch):
    keys = []
    for rank in (0, 1):
        monkeypatch.setitem(os.environ, "RANK", str(rank))
        monkeypatch.setitem(os.environ, "WORLD_SIZE", "2")
        stream = mixture({"synth_single": 1.0, "synth_multi": 1.0}, 0, rank, two_datasets)
        keys.append({next(stream)["key"] for _ in range(40)})
    assert keys[0] and keys[1] and not keys[0] & keys[1]
