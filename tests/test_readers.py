"""Real-dataset readers on real annotation excerpts (tests/fixtures/real): counts, values
after conversion, conventions, and the shards they write."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from model.body import COCO17_NAMES, H36M17_NAMES
from pipelines.readers.joints import JOINT_LISTS
from pipelines.shards import read_shards
from stages.prepare import prepare
from tests.real_tree import FIXTURES, PREPARE, build_real_tree
from tests.synthetic_params import tiny_params

COCO = {name: i for i, name in enumerate(COCO17_NAMES)}
H36M = {name: i for i, name in enumerate(H36M17_NAMES)}


def real_params(sources: dict[str, str], body_kind: str = "anny") -> dict:
    params = tiny_params()
    params["sources"] = {kind: {"root": root} for kind, root in sources.items()}
    params["prepare"].update(copy.deepcopy(PREPARE))
    params["body_model"]["kind"] = body_kind
    return params


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict[str, str]:
    return build_real_tree(tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="module")
def shards(tree, tmp_path_factory) -> dict[str, list[dict]]:
    """Every dataset of the miniature tree prepared and read back."""
    out = tmp_path_factory.mktemp("shards")
    params = real_params(tree)
    result = {}
    for name in PREPARE:
        prepare(name, out / name, params)
        result[name] = list(read_shards(out / name))
    result["_out"] = out
    return result


def raw_fields(folder: Path) -> list[dict[str, bytes]]:
    """Each sample's tar members, by extension (key -> field -> bytes)."""
    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, field = member.name.split(".", 1)
                samples.setdefault(key, {})[field] = tar.extractfile(member).read()
    return list(samples.values())


def test_counts_of_samples_and_people(shards):
    counts = {name: (len(samples), sum(s["meta"]["num_people"] for s in samples))
              for name, samples in shards.items() if name != "_out"}
    assert counts == {
        "coco_val": (4, 14), "h36m_test": (4, 4), "mpii_val": (5, 5), "lsp_test": (4, 4),
        "lspet_train": (10, 10), "3dhp_train": (2, 2), "3dhp_test": (2, 2),
        "posetrack_val": (2, 3), "mupots": (201, 402), "panoptic": (4, 12)}


def test_images_are_the_original_bytes(shards):
    out = shards["_out"]
    fields = raw_fields(out / "coco_val")
    original = (FIXTURES / "coco/000000000785.jpg").read_bytes()
    assert fields[0]["jpg"] == original
    meta = json.loads(fields[0]["meta.json"])
    assert meta["image"] == "val2017/000000000785.jpg"
    assert meta["source"].endswith("person_keypoints_val2017.json#image_id=785")


def test_rerun_gives_byte_identical_shards(tree, shards, tmp_path):
    params = real_params(tree)
    params["shard"]["workers"] = 2
    for name in ("coco_val", "posetrack_val", "panoptic"):
        prepare(name, tmp_path / name, params)
        for path in sorted((shards["_out"] / name).iterdir()):
            assert hashlib.sha256(path.read_bytes()).digest() == \
                hashlib.sha256((tmp_path / name / path.name).read_bytes()).digest(), path.name


def test_coco_keypoints_boxes_and_masks(shards):
    annotation = json.loads((FIXTURES / "coco/test_coco.json").read_text())
    first = next(a for a in annotation["annotations"] if a["image_id"] == 785)
    sample = shards["coco_val"][0]
    raw = np.array(first["keypoints"], dtype=np.float32).reshape(17, 3)
    kp = sample["target"]["keypoints"][0].numpy()
    labelled = raw[:, 2] > 0
    np.testing.assert_allclose(kp[labelled, :2], raw[labelled, :2] + 0.5)  # pixel indices
    np.testing.assert_array_equal(kp[:, 2], labelled)
    x, y, w, h = first["bbox"]
    np.testing.assert_allclose(sample["target"]["boxes"][0], [x, y, x + w, y + h], rtol=1e-6)
    masks = sample["target"]["masks"]
    assert masks.unique().tolist() == [0, 1]
    assert abs(int((masks == 1).sum()) - first["area"]) < 0.05 * first["area"]


def test_coco_people_without_keypoints_stay_with_their_box(shards):
    sample = shards["coco_val"][1]  # image 40083 holds annotation 1202706 (0 keypoints)
    assert sample["meta"]["num_people"] == 3
    assert (sample["target"]["keypoints"][:, :, 2].sum(dim=1) == 0).sum() == 1


def test_coco_crowd_regions_become_ignore_not_people(tree, tmp_path):
    root = Path(tree["coco"])
    data = json.loads((root / "annotations/person_keypoints_val2017.json").read_text())
    # A crowd (uncompressed RLE) over image 785's top-left corner, and an image with a
    # crowd only.
    counts = []
    for _ in range(40):  # 40 columns of 425 rows: 30 on, 395 off (column-major)
        counts += [30, 395] if counts else [0, 30, 395]
    crowd = {"id": 1, "image_id": 785, "category_id": 1, "iscrowd": 1, "area": 1200,
             "bbox": [0, 0, 40, 30], "keypoints": [0] * 51, "num_keypoints": 0,
             "segmentation": {"size": [425, 640], "counts": counts[:-1] + [counts[-1] + 600 * 425]}}
    only_crowd = dict(crowd, id=2, image_id=40083)
    data["annotations"] += [crowd]
    data["images"] = [im for im in data["images"]]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 40083]
    data["annotations"].append(only_crowd)
    (root / "annotations/person_keypoints_crowd.json").write_text(json.dumps(data))
    (root / "crowd").symlink_to(root / "val2017")
    params = real_params(tree)
    params["prepare"]["coco_crowd"] = {"kind": "coco", "split": "crowd", "limit": None}
    index = prepare("coco_crowd", tmp_path / "crowd", params)
    samples = list(read_shards(tmp_path / "crowd"))
    assert index["filtered"] == {"image_without_person": 1}  # 40083: a crowd and no one else
    assert [s["meta"]["num_people"] for s in samples] == [1, 5, 5]
    ignore = samples[0]["target"]["ignore"]
    assert int(ignore.sum()) == 40 * 30 and bool(ignore[:30, :40].all())
    assert samples[0]["target"]["masks"][:30, :40].max() <= 1  # the person may overlap
    assert "ignore" not in samples[1]["target"]


def test_h36m_joints_intrinsics_and_pixels(shards):
    npz = np.load(FIXTURES / "h36m/test_h36m.npz")
    cameras = json.loads((FIXTURES / "h36m/cameras.json").read_text())
    spin = {name: i for i, name in enumerate(JOINT_LISTS["spin24"])}
    for index, sample in enumerate(shards["h36m_test"]):
        kp3d = sample["target"]["kp3d"][0].numpy()
        S = npz["S"][index]
        np.testing.assert_allclose(kp3d[H36M["pelvis"], :3], S[spin["mpii_pelvis"], :3],
                                   rtol=1e-6)
        np.testing.assert_allclose(kp3d[H36M["right_ankle"], :3], S[0, :3], rtol=1e-6)
        np.testing.assert_allclose(kp3d[H36M["head_top"], :3], S[spin["h36m_head"], :3],
                                   rtol=1e-6)
        assert 4.0 < kp3d[0, 2] < 7.0  # metres, camera frame, not root-centred
        kp = sample["target"]["keypoints"][0].numpy()
        np.testing.assert_allclose(kp[COCO["left_wrist"], :2],
                                   npz["part"][index, spin["left_wrist"], :2] + 0.5, rtol=1e-6)
        assert kp[COCO["nose"], 2] == 0  # H36M's 2D has no nose, eyes or ears
        camera = cameras[sample["meta"]["camera"]]
        np.testing.assert_allclose(sample["target"]["K"][0, 0], camera["f"][0][0], rtol=1e-6)
        np.testing.assert_allclose(sample["target"]["K"][0, 2], camera["c"][0][0] + 0.5,
                                   rtol=1e-6)
    assert shards["h36m_test"][0]["meta"]["subject"] == "S1"
    assert shards["h36m_test"][3]["image"].shape == (3, 1000, 1000)  # S8 frames are 1000x1000


def test_projection_matches_2d_within_a_pixel_or_two(shards):
    """The stored K projects each dataset's 3D joints onto its 2D ones (H36M has lens
    distortion, so a few pixels)."""
    for name, tolerance in (("h36m_test", 8.0), ("3dhp_train", 3.0), ("3dhp_test", 1.5),
                            ("mupots", 5.0)):
        for sample in shards[name][:20]:
            t = sample["target"]
            both = (t["kp3d"][..., 3] > 0)
            projected = t["kp3d"][..., :3] @ t["K"].T
            projected = projected[..., :2] / projected[..., 2:]
            kp2d = {h: c for h, c in (("left_wrist", "left_wrist"), ("right_knee", "right_knee"),
                                      ("left_ankle", "left_ankle"))}
            for h36m_name, coco_name in kp2d.items():
                visible = both[:, H36M[h36m_name]] & (t["keypoints"][:, COCO[coco_name], 2] > 0)
                error = (projected[:, H36M[h36m_name]] - t["keypoints"][:, COCO[coco_name], :2])
                assert (error.norm(dim=-1)[visible] < tolerance).all(), (name, sample["key"])


def test_solved_intrinsics_match_the_calibration(shards):
    """3DHP test frames without a cameras file: K solved from the 2D-3D pairs equals the
    official test camera."""
    cameras = json.loads((FIXTURES / "mpi_inf_3dhp/cameras_test.json").read_text())
    for sample in shards["3dhp_test"]:
        camera = cameras[sample["meta"]["camera"]]
        K = sample["target"]["K"]
        assert sample["meta"]["intrinsics"].startswith("solved")
        assert abs(float(K[0, 0]) - camera["f"][0][0]) < 0.01 * camera["f"][0][0]
        assert abs(float(K[0, 2]) - camera["c"][0][0] - 0.5) < 10


def test_3dhp_invalid_joints_stay_invalid(shards):
    npz = np.load(FIXTURES / "mpi_inf_3dhp/test_3dhp_test.npz")
    mpi = JOINT_LISTS["mpi17"]
    sample = shards["3dhp_test"][1]  # TS2: 15 of 17 joints valid
    invalid = [mpi[j] for j in np.flatnonzero(npz["S"][1, :, 3] == 0)]
    assert invalid == ["right_wrist", "left_wrist"]
    kp3d = sample["target"]["kp3d"][0]
    assert kp3d[H36M["right_wrist"], 3] == 0 and kp3d[H36M["left_wrist"], 3] == 0
    assert int(kp3d[:, 3].sum()) == 15


def test_mpii_one_based_coordinates(shards):
    records = json.loads((FIXTURES / "mpii/test_mpii.json").read_text())
    mpii = JOINT_LISTS["mpii16"]
    for sample, record in zip(shards["mpii_val"], records, strict=True):
        kp = sample["target"]["keypoints"][0].numpy()
        for name in ("left_knee", "right_wrist"):
            joint = mpii.index(name)
            if record["joints_vis"][joint]:
                np.testing.assert_allclose(kp[COCO[name], :2],
                                           np.array(record["joints"][joint]) - 0.5, rtol=1e-6)
        missing = [mpii[j] for j, v in enumerate(record["joints_vis"]) if not v]
        assert all(kp[COCO[name], 2] == 0 for name in missing if name in COCO)


def test_lsp_and_lspet_visibility_conventions(shards):
    lsp = scipy.io.loadmat(FIXTURES / "lsp/joints.mat")["joints"]  # [3, 14, N], 0 = visible
    lspet = scipy.io.loadmat(FIXTURES / "lspet/joints.mat")["joints"]  # [14, 3, N], 1 = visible
    names = JOINT_LISTS["lsp14"]
    for index, sample in enumerate(shards["lsp_test"]):  # test split: images 1001-
        kp = sample["target"]["keypoints"][0].numpy()
        for j, name in enumerate(names):
            if name in COCO:
                assert kp[COCO[name], 2] == (lsp[2, j, 1000 + index] == 0)
        assert sample["meta"]["image"] == f"images/im{1001 + index:04d}.jpg"
    occluded_somewhere = False
    for index, sample in enumerate(shards["lspet_train"]):
        kp = sample["target"]["keypoints"][0].numpy()
        for j, name in enumerate(names):
            if name in COCO:
                assert kp[COCO[name], 2] == (lspet[j, 2, index] == 1)
                occluded_somewhere |= lspet[j, 2, index] == 0
                if lspet[j, 2, index] == 1:
                    np.testing.assert_allclose(kp[COCO[name], :2], lspet[j, :2, index] - 0.5,
                                               rtol=1e-6)
    assert occluded_somewhere  # the fixture exercises the 0 flag (im00001 joint 0)


def test_posetrack_head_points_are_not_eyes(shards):
    annotation = json.loads(
        (FIXTURES / "posetrack18/annotations/val/003418_mpii_test.json").read_text())
    raw = np.array(annotation["annotations"][0]["keypoints"], dtype=np.float32).reshape(17, 3)
    assert raw[1, 2] == 1 and raw[2, 2] == 1  # head_bottom and head_top are labelled
    kp = shards["posetrack_val"][0]["target"]["keypoints"][0].numpy()
    for name in ("left_eye", "right_eye", "left_ear", "right_ear"):
        assert kp[COCO[name], 2] == 0
    np.testing.assert_allclose(kp[COCO["nose"], :2], raw[0, :2] + 0.5)
    np.testing.assert_allclose(kp[COCO["right_knee"], :2], raw[14, :2] + 0.5)


def test_posetrack_ignore_regions_match_the_official_masks(shards):
    for sample in shards["posetrack_val"]:
        ignore = sample["target"]["ignore"].numpy()
        mask_file = FIXTURES / "posetrack18" / sample["meta"]["image"].replace("images/", "mask/")
        official = np.asarray(Image.open(mask_file).convert("L")) > 127
        iou = (ignore & official).sum() / (ignore | official).sum()
        assert iou > 0.9, (sample["key"], iou)


def test_mupots_metres_pelvis_occlusion_and_validity(shards):
    cells = scipy.io.loadmat(FIXTURES / "mupots/TS1/annot.mat", squeeze_me=True,
                             struct_as_record=False)["annotations"]
    occlusion = scipy.io.loadmat(FIXTURES / "mupots/TS1/occlusion.mat",
                                 squeeze_me=True)["occlusion_labels"]
    mpi = JOINT_LISTS["mpi17"]
    for frame in (0, 100, 200):
        sample = shards["mupots"][frame]
        assert sample["meta"]["frame"] == frame and sample["meta"]["sequence"] == "TS1"
        for person in range(2):
            kp3d = sample["target"]["kp3d"][person].numpy()
            annot3 = cells[frame, person].annot3  # [3, 17] mm
            np.testing.assert_allclose(kp3d[H36M["pelvis"], :3], annot3[:, mpi.index("pelvis")]
                                       / 1000, rtol=1e-5)
            np.testing.assert_allclose(kp3d[H36M["thorax"], :3], annot3[:, mpi.index("neck")]
                                       / 1000, rtol=1e-5)
            assert kp3d[:, 3].all()  # isValidFrame is 1 throughout TS1
            kp2d = sample["target"]["keypoints"][person].numpy()
            for name in ("left_shoulder", "right_ankle"):
                occluded = occlusion[frame, person][mpi.index(name)] == 1
                assert kp2d[COCO[name], 2] == (not occluded)
    assert shards["mupots"][0]["image"].shape == (3, 2048, 2048)


def test_panoptic_metres_in_camera_frame_and_projection(shards):
    calibration = json.loads(
        (FIXTURES / "panoptic/160906_band1/calibration_160906_band1.json").read_text())
    cameras = {c["name"]: c for c in calibration["cameras"]}
    for sample in shards["panoptic"]:
        meta = sample["meta"]
        scene = json.loads((FIXTURES / "panoptic/160906_band1/hdPose3d_stage1_coco19"
                            / f"body3DScene_{meta['frame']:08d}.json").read_text())
        camera = cameras[meta["camera"]]
        R, t = np.array(camera["R"]), np.array(camera["t"]).ravel()
        for person, body_id in enumerate(meta["body_ids"]):
            body = next(b for b in scene["bodies"] if b["id"] == body_id)
            joints = np.array(body["joints19"]).reshape(19, 4)
            centre = (R @ joints[2, :3] + t) / 100  # BodyCenter, cm world -> m camera
            kp3d = sample["target"]["kp3d"][person].numpy()
            np.testing.assert_allclose(kp3d[H36M["pelvis"], :3], centre, rtol=1e-5)
            assert kp3d[H36M["spine"], 3] == 0 and kp3d[H36M["head_top"], 3] == 0
            kp2d = sample["target"]["keypoints"][person].numpy()
            for name in ("nose", "left_knee", "right_wrist"):
                index = JOINT_LISTS["panoptic19"].index(name)
                if kp2d[COCO[name], 2]:
                    expected = _reference_projection(joints[index, :3], camera)
                    np.testing.assert_allclose(kp2d[COCO[name], :2], expected + 0.5, atol=1e-3)


def _reference_projection(world_cm: np.ndarray, camera: dict) -> np.ndarray:
    """OpenCV's model written out term by term (the Panoptic toolbox's projectPoints)."""
    x, y, z = np.array(camera["R"]) @ world_cm + np.array(camera["t"]).ravel()
    a, b = x / z, y / z
    k1, k2, p1, p2, k3 = camera["distCoef"]
    r2 = a * a + b * b
    scale = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    a2 = a * scale + 2 * p1 * a * b + p2 * (r2 + 2 * a * a)
    b2 = b * scale + p1 * (r2 + 2 * b * b) + 2 * p2 * a * b
    K = np.array(camera["K"])
    return np.array([K[0, 0] * a2 + K[0, 1] * b2 + K[0, 2], K[1, 1] * b2 + K[1, 2]])


def test_h36m_body_targets_only_with_smpl(tree, shards, tmp_path):
    params = real_params(tree, body_kind="smpl")
    prepare("h36m_test", tmp_path / "smpl", params)
    sample = next(iter(read_shards(tmp_path / "smpl")))
    npz = np.load(FIXTURES / "h36m/test_h36m.npz")
    assert sample["meta"]["has_body"] and sample["meta"]["body_model"] == "smpl"
    rotmats = sample["target"]["rotmats"][0]
    assert rotmats.shape == (24, 3, 3)
    angle = np.linalg.norm(npz["pose"][0, :3])  # the global rotation's angle
    np.testing.assert_allclose((torch.diagonal(rotmats[0]).sum().item() - 1) / 2,
                               np.cos(angle), atol=1e-5)
    np.testing.assert_allclose(sample["target"]["transl"][0], sample["target"]["kp3d"][0, 0, :3])
    anny = shards["h36m_test"][0]
    assert "rotmats" not in anny["target"] and not anny["meta"]["has_body"]


def test_grayscale_jpeg_decodes_to_rgb(tree, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(tree["coco"], root)
    path = root / "val2017/000000000785.jpg"
    gray = Image.open(path).convert("L")
    buffer = io.BytesIO()
    gray.save(buffer, format="JPEG")
    path.write_bytes(buffer.getvalue())
    params = real_params({**tree, "coco": str(root)})
    params["prepare"]["coco_val"]["limit"] = 1
    prepare("coco_val", tmp_path / "gray", params)
    sample = next(iter(read_shards(tmp_path / "gray")))
    assert sample["image"].shape == (3, 425, 640)
    assert torch.equal(sample["image"][0], sample["image"][1])


def test_letterbox_carries_ignore_regions_and_masks(shards):
    from pipelines.transforms import to_network_input

    sample = shards["posetrack_val"][0]
    network = to_network_input(sample, 256, 416)
    ignore = network["target"]["ignore"]
    assert ignore.shape == (256, 416) and ignore.dtype == torch.bool
    share = float(sample["target"]["ignore"].float().mean())
    content = ignore[:234]  # 1080x1920 -> 234x416, padding below
    assert abs(float(content.float().mean()) - share) < 0.01
    assert not ignore[234:].any()
