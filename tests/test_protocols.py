"""The real benchmarks' protocols on the real fixtures: the H36M protocol-2 frame filter,
Panoptic's mean over sequences, MuPoTS's per-sequence 3DPCK on its normalised skeleton,
and PoseTrack scored for collisions only."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch

from model.body import BodyOutput
from pipelines.evaluation import (
    Protocol,
    action_labels,
    image_values,
    resampling_block,
    summarise,
)
from pipelines.shards import read_shards
from stages.prepare import prepare
from tests.real_tree import PREPARE, build_real_tree
from tests.test_readers import real_params

PROTOCOL = Protocol(score_threshold=0.05, collision_score_threshold=0.5, match_threshold_px=40.0)


class JointsBody(torch.nn.Module):
    """A stand-in body model whose "shape" is the person's root-relative h36m17 joints
    (flattened), so the ground truth itself can be fed through the evaluation. Its mesh
    is a small tetrahedron at the pelvis, so nobody collides."""

    name = "joints"
    h36m_joint_source = "the ground truth"

    def __init__(self) -> None:
        super().__init__()
        self.faces = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
        self.corners = torch.tensor([[0.0, 0, 0], [0.02, 0, 0], [0, 0.02, 0], [0, 0, 0.02]])

    def forward(self, rotmats: torch.Tensor, shape: torch.Tensor) -> BodyOutput:
        joints = shape.reshape(-1, 17, 3)
        return BodyOutput(self.corners.expand(len(shape), 4, 3), {"h36m17": joints})


def oracle(target: dict, offset: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The annotated people as detections (``offset [17, 3]`` added to their joints)."""
    kp3d = target["kp3d"]
    pelvis = kp3d[:, 0, :3]
    relative = kp3d[..., :3] - pelvis[:, None]
    if offset is not None:
        relative = relative + offset
    people = len(kp3d)
    return {"boxes": target["boxes"], "scores": torch.ones(people),
            "rotmats": torch.eye(3).expand(people, 1, 3, 3), "shape": relative.flatten(1),
            "transl": pelvis}


def scored(samples: list[dict], offsets: dict[str, torch.Tensor] | None = None) -> dict:
    """The benchmark's summary with the oracle's predictions (offset per group)."""
    body, records = JointsBody(), []
    for sample in samples:
        group = str(sample["meta"].get("sequence", "all"))
        offset = (offsets or {}).get(group)
        values = image_values(oracle(sample["target"], offset), sample["target"],
                              sample["target"]["K"], body, PROTOCOL)
        records.append({"key": sample["key"], "group": group, "values": values})
    return summarise(records, replicates=200, seed=0)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocols")
    sources = build_real_tree(root / "real", mupots_frames=6)
    mupots = Path(sources["mupots"]) / "MultiPersonTestSet"
    shutil.copytree(mupots / "TS1", mupots / "TS2")  # a second sequence, the same people
    panoptic = Path(sources["panoptic"])
    second = panoptic / "160906_band2"
    shutil.copytree(panoptic / "160906_band1", second)
    (second / "calibration_160906_band1.json").rename(second / "calibration_160906_band2.json")
    for folder in (panoptic / "160906_band1", second):
        (folder / "frames.txt").write_text("168\n169\n" if folder.name.endswith("1") else "168\n")
    return root, sources


def prepared(tree, name: str, **options) -> list[dict]:
    root, sources = tree
    params = real_params(sources)
    params["prepare"][name] = {**copy.deepcopy(PREPARE[name]), **options}
    params["shard"]["max_failed_fraction"] = 1.0  # MuPoTS: images for the first frames only
    out = root / "shards" / f"{name}-{abs(hash(str(options)))}"
    prepare(name, out, params)
    return list(read_shards(out))


@pytest.mark.parametrize("options, frames", [
    ({"subjects": ["S1", "S8"], "cameras": ["54138969", "55011271"], "frame_step": 5}, [1, 26]),
    ({"subjects": ["S1", "S8"], "cameras": ["54138969", "55011271"], "frame_step": 10}, [1]),
    ({"cameras": ["55011271"], "frame_step": 5}, [396, 26]),
    ({"subjects": ["S9", "S11"]}, []),
])
def test_h36m_protocol_frames(tree, options, frames):
    """Protocol 2 keeps S9/S11, camera 60457274, every 5th frame (1-based frame numbers
    1, 6, 11 ...); the fixture's frames are S1, S5, S7 and S8."""
    if not frames:
        with pytest.raises(RuntimeError, match="0 of 0|no samples|skipped"):
            prepared(tree, "h36m_test", **options)
        return
    samples = prepared(tree, "h36m_test", **options)
    assert [s["meta"]["frame"] for s in samples] == frames
    for sample in samples:  # the per-action report's label: the action, take dropped
        (label,) = action_labels(sample["meta"], 1)
        assert label and label == sample["meta"]["action"].rstrip("_ 0123456789")


def test_panoptic_mean_is_over_sequences_not_people(tree):
    samples = prepared(tree, "panoptic", frame_list="frames.txt")
    people = {}
    for sample in samples:
        people[sample["meta"]["sequence"]] = (people.get(sample["meta"]["sequence"], 0)
                                               + sample["meta"]["num_people"])
    assert people == {"160906_band1": 12, "160906_band2": 6}
    # one joint 100 mm off (one that every person of every frame has): 100 / 15 mm each
    # (Panoptic has no spine and no head top: they leave the mean)
    valid = torch.stack([s["target"]["kp3d"][..., 3].bool().all(0) for s in samples]).all(0)
    joint = int(valid[1:].nonzero()[0]) + 1
    wrong_joint = torch.zeros(17, 3)
    wrong_joint[joint, 2] = 0.1
    result = scored(samples, {"160906_band2": wrong_joint})
    assert result["mpjpe_mm_160906_band1"] == pytest.approx(0.0, abs=1e-3)
    assert result["mpjpe_mm_160906_band2"] == pytest.approx(100 / 15, abs=1e-3)
    assert result["mpjpe_mm_group_mean"] == pytest.approx(100 / 15 / 2, abs=1e-3)
    assert result["mpjpe_mm"] == pytest.approx(100 / 15 * 6 / 18, abs=1e-3)  # pooled differs


def test_mupots_pck_per_sequence_on_the_normalised_skeleton(tree):
    samples = prepared(tree, "mupots", sequences=["TS1", "TS2"], limit=None)
    assert {s["meta"]["sequence"] for s in samples} == {"TS1", "TS2"}
    assert "kp3d_univ" in samples[0]["target"]
    assert not torch.equal(samples[0]["target"]["kp3d_univ"], samples[0]["target"]["kp3d"])
    wrong_wrists = torch.zeros(17, 3)
    wrong_wrists[[13, 16], 0] = 0.5  # both wrists 500 mm off: 12 of the 14 joints right
    result = scored(samples, {"TS2": wrong_wrists})
    # bone rescaling maps the annot3 directions onto univ_annot3's bone lengths
    assert result["pck_all_TS1"] == pytest.approx(100.0, abs=1e-3)
    assert result["pck_all_TS2"] == pytest.approx(100 * 12 / 14, abs=1e-3)
    assert result["pck_all"] == pytest.approx(100 * 13 / 14, abs=1e-3)
    assert result["pck_matched"] == result["pck_all"]


def test_posetrack_is_scored_for_collisions_only(tree):
    samples = prepared(tree, "posetrack_val")
    body = JointsBody()
    detections = {"boxes": torch.zeros(1, 4), "scores": torch.ones(1),
                  "rotmats": torch.eye(3)[None, None], "shape": torch.zeros(1, 51),
                  "transl": torch.tensor([[0.0, 0.0, 3.0]])}
    values = image_values(detections, samples[0]["target"], samples[0]["target"]["K"], body,
                          PROTOCOL)
    assert values["collision"] == (0.0, 1.0)
    assert values["pck_all"] == (0.0, 0.0) and values["mpjpe"] == (0.0, 0.0)


@pytest.mark.parametrize(("name", "options", "video"), [
    ("h36m_test", {"subjects": ["S1", "S8"], "cameras": ["54138969", "55011271"],
                   "frame_step": 5}, lambda meta: f"{meta['subject']}/{meta['action']}"),
    ("panoptic", {"frame_list": "frames.txt"}, lambda meta: meta["sequence"]),
    ("mupots", {"sequences": ["TS1", "TS2"], "limit": None}, lambda meta: meta["sequence"]),
    ("posetrack_val", {}, lambda meta: meta["sequence"]),
])
def test_every_video_benchmarks_frames_are_resampled_in_blocks_of_their_video(
        tree, name, options, video):
    """The real benchmarks' samples carry what the block bootstrap needs: a video and a
    frame number, so neighbouring frames (and cameras of one moment) share a block."""
    samples = prepared(tree, name, **options)
    for sample in samples:
        meta = sample["meta"]
        assert resampling_block(meta, 100) == f"{video(meta)}#{meta['frame'] // 100}"
    assert len({resampling_block(s["meta"], 10**9) for s in samples}) == len(
        {video(s["meta"]) for s in samples})
