"""The joint conversion tables against the official code's index tables, and on real
fixture values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model.body import COCO17_NAMES, H36M17_NAMES
from model.smpl_body import SPIN_H36M_ROWS
from pipelines.readers.joints import JOINT_LISTS, conversion, convert
from tests.real_tree import FIXTURES

# The official tables (official-implementation.md §6.3, §7.2), in SPIN's H36M order.
J24_TO_H36M = [14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6]
H36M_TO_MPI = [10, 8, 14, 15, 16, 11, 12, 13, 4, 5, 6, 1, 2, 3, 0, 7, 9]
COCO17_TO_J24 = [19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]


def test_spin24_to_h36m17_is_the_official_table():
    # h36m17 joint k is SPIN H36M joint SPIN_H36M_ROWS[k], which the official table maps.
    expected = [J24_TO_H36M[row] for row in SPIN_H36M_ROWS]
    assert conversion("spin24", "h36m17").tolist() == expected


def test_mpi17_to_h36m17_inverts_the_official_h36m_to_mpi():
    ours = conversion("mpi17", "h36m17")  # h36m17 k <- mpi17 ours[k]
    position = {row: k for k, row in enumerate(SPIN_H36M_ROWS)}  # SPIN H36M row -> h36m17
    for mpi_joint, spin_row in enumerate(H36M_TO_MPI):
        assert ours[position[spin_row]] == mpi_joint, JOINT_LISTS["mpi17"][mpi_joint]


def test_coco17_from_spin24_is_the_official_table():
    assert conversion("spin24", "coco17").tolist() == COCO17_TO_J24


def test_unknown_joints_are_marked_not_invented():
    assert [H36M17_NAMES[k] for k in np.flatnonzero(conversion("panoptic19", "h36m17") < 0)] \
        == ["spine", "head_top"]
    assert [COCO17_NAMES[k] for k in np.flatnonzero(conversion("posetrack17", "coco17") < 0)] \
        == ["left_eye", "right_eye", "left_ear", "right_ear"]
    assert [COCO17_NAMES[k] for k in np.flatnonzero(conversion("mpii16", "coco17") < 0)] \
        == COCO17_NAMES[:5]
    points = np.ones((2, 19, 4))
    converted = convert(points, "panoptic19", "h36m17")
    assert converted.shape == (2, 17, 4)
    assert converted[:, H36M17_NAMES.index("spine")].sum() == 0


def test_convert_on_a_real_panoptic_body():
    scene = json.loads((FIXTURES / "panoptic/160906_band1/hdPose3d_stage1_coco19"
                        "/body3DScene_00000168.json").read_text())
    joints = np.array(scene["bodies"][0]["joints19"]).reshape(19, 4)
    h36m = convert(joints, "panoptic19", "h36m17")
    np.testing.assert_array_equal(h36m[H36M17_NAMES.index("pelvis")], joints[2])  # BodyCenter
    np.testing.assert_array_equal(h36m[H36M17_NAMES.index("right_knee")], joints[13])
    coco = convert(joints, "panoptic19", "coco17")
    np.testing.assert_array_equal(coco[COCO17_NAMES.index("left_ear")], joints[16])


def test_wrong_joint_count_is_an_error():
    with pytest.raises(ValueError, match="mpi17 points must have 17 joints"):
        convert(np.zeros((24, 3)), "mpi17", "h36m17")
    with pytest.raises(KeyError, match="no joint conversion"):
        conversion("lsp14", "h36m17")
