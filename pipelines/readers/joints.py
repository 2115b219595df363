"""Joint conversion tables: every dataset's own joint list to COCO-17 (2D) and h36m17 (3D).

Each dataset names its joints in file order below. A conversion is a table *by name*:
the target joints are looked up in the source list, limbs by their shared names
(``left_knee`` is ``left_knee`` everywhere) and the other joints through an explicit
alias. A target joint with no counterpart in the source is marked unknown (its
visibility or validity is 0): nothing is invented.

The aliases follow the official conversions (``official-implementation.md`` §7.2 and
SPIN's ``J24_TO_H36M``): the H36M thorax is the LSP/MPI neck, the H36M "nose" (the
Neck/Nose site) is SPIN's H36M jaw and MPI's head centre, the H36M head top is SPIN's
H36M head.
"""

from __future__ import annotations

import numpy as np

from model.body import COCO17_NAMES, H36M17_NAMES

__all__ = ["JOINT_LISTS", "conversion", "convert"]

_LIMBS = [f"{side}_{part}" for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
          for side in ("left", "right")]

JOINT_LISTS: dict[str, list[str]] = {
    # SPIN's 24 "GT" joints (the H36M and MPI-INF-3DHP .npz files of SPIN and mmpose).
    "spin24": [
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist", "lsp_neck", "lsp_head_top", "mpii_pelvis", "mpii_thorax", "h36m_spine",
        "h36m_jaw", "h36m_head", "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    ],
    # MPI-INF-3DHP / MuPoTS-3D 17 joints (annot2/annot3 order; mmpose's 17-joint .npz).
    "mpi17": [
        "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
        "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
        "left_knee", "left_ankle", "pelvis", "spine", "head",
    ],
    # MPII Human Pose 16 joints.
    "mpii16": [
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
        "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    ],
    # Leeds Sports Pose (and LSP-extended) 14 joints.
    "lsp14": [
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist", "neck", "head_top",
    ],
    # PoseTrack 2018: COCO's slots, but slots 1 and 2 hold head_bottom and head_top and
    # the ear slots are never annotated.
    "posetrack17": [
        "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder",
        "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ],
    # CMU Panoptic "coco19" (hdPose3d_stage1_coco19).
    "panoptic19": [
        "neck", "nose", "body_center", "left_shoulder", "left_elbow", "left_wrist", "left_hip",
        "left_knee", "left_ankle", "right_shoulder", "right_elbow", "right_wrist", "right_hip",
        "right_knee", "right_ankle", "left_eye", "left_ear", "right_eye", "right_ear",
    ],
    "coco17": COCO17_NAMES,
}

_FACE = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]

# target joint -> source joint, for the joints that are not limbs of the same name.
_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("spin24", "coco17"): {name: name for name in _FACE},
    ("mpi17", "coco17"): {},
    ("mpii16", "coco17"): {},
    ("lsp14", "coco17"): {},
    # PoseTrack does not annotate eyes and ears: only the nose joins the limbs.
    ("posetrack17", "coco17"): {"nose": "nose"},
    ("panoptic19", "coco17"): {name: name for name in _FACE},
    ("coco17", "coco17"): {name: name for name in _FACE},
    ("spin24", "h36m17"): {"pelvis": "mpii_pelvis", "spine": "h36m_spine",
                           "thorax": "lsp_neck", "nose": "h36m_jaw", "head_top": "h36m_head"},
    ("mpi17", "h36m17"): {"pelvis": "pelvis", "spine": "spine", "thorax": "neck",
                          "nose": "head", "head_top": "head_top"},
    # Panoptic has no spine and no head top: those stay unknown.
    ("panoptic19", "h36m17"): {"pelvis": "body_center", "thorax": "neck", "nose": "nose"},
}

_TARGETS = {"coco17": COCO17_NAMES, "h36m17": H36M17_NAMES}


def conversion(source: str, target: str) -> np.ndarray:
    """``[K]`` int: for each joint of ``target`` its index in ``source``, or -1."""
    if (source, target) not in _ALIASES:
        raise KeyError(f"no joint conversion from {source!r} to {target!r}")
    aliases = _ALIASES[(source, target)]
    names = JOINT_LISTS[source]
    index = []
    for name in _TARGETS[target]:
        wanted = aliases.get(name, name if name in _LIMBS else None)
        index.append(names.index(wanted) if wanted is not None else -1)
    return np.array(index)


def convert(points: np.ndarray, source: str, target: str) -> np.ndarray:
    """Reorder ``points [..., N, C]`` (the last channel a visibility or validity flag)
    from ``source`` to ``target`` order. Unknown target joints are all zero, flag 0."""
    if points.shape[-2] != len(JOINT_LISTS[source]):
        raise ValueError(f"{source} points must have {len(JOINT_LISTS[source])} joints, got "
                         f"shape {list(points.shape)}")
    index = conversion(source, target)
    out = np.zeros((*points.shape[:-2], len(index), points.shape[-1]), dtype=points.dtype)
    known = index >= 0
    out[..., known, :] = points[..., index[known], :]
    return out
