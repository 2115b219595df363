"""Bad real-dataset input: each case stops with a message naming the file and what was
expected, or is skipped, counted and printed, and fails the stage past the threshold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from pipelines.readers.base import SourceError
from stages.prepare import prepare
from tests.real_tree import build_real_tree
from tests.test_readers import real_params


@pytest.fixture
def tree(tmp_path) -> dict[str, str]:
    return build_real_tree(tmp_path / "real", mupots_frames=3)


def test_truncated_json_names_the_file(tree, tmp_path):
    path = Path(tree["coco"]) / "annotations/person_keypoints_val2017.json"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(SourceError, match=r"person_keypoints_val2017\.json: not a readable JSON"):
        prepare("coco_val", tmp_path / "out", real_params(tree))


def test_mat_with_the_wrong_variable_names_what_it_holds(tree, tmp_path):
    path = Path(tree["lsp"]) / "joints.mat"
    scipy.io.savemat(path, {"points": scipy.io.loadmat(path)["joints"]})
    with pytest.raises(SourceError, match=r"joints\.mat: expected a variable 'joints'.*'points'"):
        prepare("lsp_test", tmp_path / "out", real_params(tree))


def test_mat_of_the_other_lsp_layout_says_which_kind(tree, tmp_path):
    shutil.copy(Path(tree["lspet"]) / "joints.mat", Path(tree["lsp"]) / "joints.mat")
    with pytest.raises(SourceError, match=r"expected \[3, 14, N\].*kind lspet"):
        prepare("lsp_test", tmp_path / "out", real_params(tree))


def test_missing_image_is_counted_printed_and_fails_past_the_threshold(tree, tmp_path, capsys):
    (Path(tree["coco"]) / "val2017/000000040083.jpg").unlink()
    params = real_params(tree)
    params["shard"]["max_failed_fraction"] = 0.5
    index = prepare("coco_val", tmp_path / "tolerant", params)
    assert index["num_samples"] == 3 and index["skipped_samples"] == {"missing_image": 1}
    assert "skipped_samples missing_image: 1 (e.g. coco_val-val2017-000001" in \
        capsys.readouterr().out
    params["shard"]["max_failed_fraction"] = 0.02
    with pytest.raises(RuntimeError, match=r"1 of 4 samples were skipped"):
        prepare("coco_val", tmp_path / "strict", params)
    assert json.loads((tmp_path / "strict/index.json").read_text())["skipped_samples"] == \
        {"missing_image": 1}


def test_truncated_image_is_unreadable(tree, tmp_path):
    path = Path(tree["mpii"]) / "images/004645041.jpg"
    path.write_bytes(path.read_bytes()[:3000])
    params = real_params(tree)
    params["shard"]["max_failed_fraction"] = 0.5
    index = prepare("mpii_val", tmp_path / "out", params)
    assert index["skipped_samples"] == {"unreadable_image": 1} and index["num_samples"] == 4


def test_wrong_root_and_unset_root(tree, tmp_path):
    params = real_params({**tree, "coco": str(tmp_path / "nowhere")})
    with pytest.raises(SourceError, match=r"nowhere: the coco root folder does not exist"):
        prepare("coco_val", tmp_path / "out", params)
    params["sources"]["coco"]["root"] = None
    with pytest.raises(ValueError, match=r"set sources\.coco\.root"):
        prepare("coco_val", tmp_path / "out", params)


def test_wrong_kind_and_wrong_option(tree, tmp_path):
    params = real_params(tree)
    params["prepare"]["coco_val"]["kind"] = "cocoa"
    with pytest.raises(ValueError, match=r"unknown kind 'cocoa'.*'coco'"):
        prepare("coco_val", tmp_path / "out", params)
    params["prepare"]["coco_val"].update(kind="coco", sequence=["x"])
    with pytest.raises(ValueError, match=r"prepare\.coco_val: unknown keys \['sequence'\]"):
        prepare("coco_val", tmp_path / "out", params)


def test_pickled_npz_is_refused(tree, tmp_path):
    path = Path(tree["h36m"]) / "test_h36m.npz"
    arrays = dict(np.load(path))
    arrays["imgname"] = arrays["imgname"].astype(object)
    np.savez(path, **arrays)
    with pytest.raises(SourceError, match=r"test_h36m\.npz: holds pickled objects"):
        prepare("h36m_test", tmp_path / "out", real_params(tree))


def test_missing_annotation_files(tree, tmp_path):
    (Path(tree["mupots"]) / "MultiPersonTestSet/TS1/occlusion.mat").unlink()
    with pytest.raises(SourceError, match=r"TS1/occlusion\.mat: TS1's occlusion\.mat not found"):
        prepare("mupots", tmp_path / "out", real_params(tree))
    params = real_params(tree)
    params["prepare"]["panoptic"]["cameras"] = ["00_16", "00_99"]
    with pytest.raises(SourceError, match=r"no HD cameras \['00_99'\]"):
        prepare("panoptic", tmp_path / "out", params)


def test_panoptic_frame_list_with_a_missing_frame(tree, tmp_path):
    (Path(tree["panoptic"]) / "160906_band1/frames.txt").write_text("168\n170\n")
    params = real_params(tree)
    params["prepare"]["panoptic"]["frame_list"] = "frames.txt"
    params["shard"]["max_failed_fraction"] = 0.6
    index = prepare("panoptic", tmp_path / "out", params)
    assert index["num_samples"] == 2  # frame 168 in both cameras
    assert index["skipped_samples"] == {"missing_annotation": 2}


def test_broken_posetrack_person_is_skipped_and_counted(tree, tmp_path):
    path = Path(tree["posetrack18"]) / "annotations/val/009473_mpii_test.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["bbox"] = [-5000, 0, 10, 10]
    path.write_text(json.dumps(data))
    params = real_params(tree)
    params["shard"]["max_failed_fraction"] = 0.5
    index = prepare("posetrack_val", tmp_path / "out", params)
    assert index["skipped_people"] == {"coordinates_out_of_range": 1}
    assert index["num_people"] == 2
