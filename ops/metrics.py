"""Evaluation metrics, each faithful to its benchmark's official protocol.

Inputs are in metres; lengths come out in millimetres. Joint sets are those of
:mod:`model.body` (``h36m17``: pelvis first).

- :func:`mpjpe`: root-centred mean per-joint position error. With ``visible``, this is
  the Panoptic protocol: invisible joints add 0 but stay in the denominator.
- :func:`pa_mpjpe`: the error after a similarity Procrustes alignment (Table 1), on
  :data:`H36M_EVAL_JOINTS`, the official evaluator's 14 joints (12 limb joints, the
  thorax and the head top of the H36M joint set).
- :func:`pck3d`: MuPoTS-3D 3DPCK, as the official MATLAB script computes it
  (``mpii_mupots_multiperson_eval.m``, ``mpii_compute_3d_pck.m`` with the joint groups
  of ``mpii_get_pck_auc_joint_groups.m``). The poses are root-relative, the predicted
  bones are rescaled to the ground-truth lengths along the script's skeleton
  (:data:`MUPOTS_PARENTS`: the head top and the head hang from the neck), and the
  result is the share of the 14 scored joints (:data:`MUPOTS_PCK_JOINTS`: head top,
  neck, shoulders, elbows, wrists, hips, knees, ankles; not the pelvis, spine or head)
  within 150 mm (Table 3).
- :func:`match_people`: the official greedy 2D matching
  (``mpii_multiperson_get_identity_matching.m``) on :data:`MUPOTS_MATCH_JOINTS` (the
  script's joints 2-14: neck and limbs). For each annotated person in turn, the unused
  prediction with the most joints within the threshold in both x and y wins; a person
  with no such joint stays unmatched (Table 3 "Matched"; unmatched people score 0 in
  "All").
- :func:`nearest_pose`: the official Panoptic matching: the prediction whose
  root-relative pose is closest to the person's (Euclidean, over the visible joints).
- :func:`depth_order_accuracy`: Table 5. The official code never implemented it, so
  here is the definition. Over all pairs {i, j} of matched people whose ground-truth
  depths differ, a pair is correct when the predicted depths order them the same way
  as the ground truth. Depth is the camera-frame z of the pelvis.
- :func:`count_collisions`: Table 4. The number of frames in which any pair of
  predicted people has a positive intersection volume (64³ grid).

The joint names of the official scripts, in ``h36m17`` terms: MPI's "neck" is the
thorax and MPI's "head" is the ``nose`` joint (H36M's Neck/Nose site).
"""

from __future__ import annotations

import torch

from model.body import H36M17_NAMES
from ops.geometry import apply_similarity, similarity_procrustes

__all__ = ["mpjpe", "pa_mpjpe", "pck3d", "match_people", "nearest_pose",
           "depth_order_accuracy", "count_collisions", "H36M_PARENTS", "MUPOTS_PARENTS",
           "MUPOTS_PCK_JOINTS", "MUPOTS_MATCH_JOINTS", "H36M_EVAL_JOINTS", "rescale_bones"]

_LIMBS = [f"{side}_{part}" for side in ("right", "left")
          for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]


def _indices(names: list[str]) -> list[int]:
    return [H36M17_NAMES.index(name) for name in names]


# Parent of each h36m17 joint along the H36M skeleton (pelvis is the root).
H36M_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
# The MuPoTS script's skeleton (its o1 table) in h36m17 order: as H36M_PARENTS, but
# the head top hangs from the thorax (MPI's neck), not from the nose.
MUPOTS_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 8, 11, 12, 8, 14, 15]
# The 14 joints 3DPCK averages (mpii_get_pck_auc_joint_groups.m).
MUPOTS_PCK_JOINTS = _indices(["head_top", "thorax", *_LIMBS])
# The 13 joints the 2D matching compares (the script's matching_joints = 2:14).
MUPOTS_MATCH_JOINTS = _indices(["thorax", *_LIMBS])
# The 14 joints of the official H36M evaluator (H36M_TO_J14: limbs, thorax, head top).
H36M_EVAL_JOINTS = _indices([*_LIMBS, "thorax", "head_top"])


def _root_centred(points: torch.Tensor) -> torch.Tensor:
    return points - points[:, :1]


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor | None = None,
          scored: torch.Tensor | None = None) -> torch.Tensor:
    """``pred, gt [N, J, 3]`` -> ``[N]`` mm, both centred on joint 0.
    ``visible [N, J]`` (0/1) zeroes invisible joints but keeps them in the mean (the
    official Panoptic rule); ``scored [J]`` (bool) limits the mean to those joints."""
    error = (_root_centred(pred) - _root_centred(gt)).norm(dim=-1) * 1000.0  # [N, J]
    if visible is not None:
        error = error * visible
    if scored is not None:
        error = error[:, scored]
    return error.mean(dim=-1)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``[N]`` mm after aligning each prediction to its ground truth by a similarity.
    Pass the joints to compare (for Table 1, ``[:, H36M_EVAL_JOINTS]``)."""
    aligned = apply_similarity(pred, *similarity_procrustes(pred, gt))
    return (aligned - gt).norm(dim=-1).mean(dim=-1) * 1000.0


def rescale_bones(pred: torch.Tensor, gt: torch.Tensor,
                  parents: list[int] = MUPOTS_PARENTS) -> torch.Tensor:
    """Give every predicted bone its ground-truth length, keeping its direction, by
    rebuilding the skeleton from the root outwards (parents precede children), as
    ``mpii_map_to_gt_bone_lengths.m`` does."""
    out = [pred[:, 0]]
    for joint in range(1, len(parents)):
        parent = parents[joint]
        direction = pred[:, joint] - pred[:, parent]
        length = (gt[:, joint] - gt[:, parent]).norm(dim=-1, keepdim=True)
        unit = direction / direction.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        out.append(out[parent] + unit * length)
    return torch.stack(out, dim=1)


def pck3d(pred: torch.Tensor, gt: torch.Tensor, threshold_mm: float = 150.0,
          visible: torch.Tensor | None = None, bone_rescale: bool = True) -> torch.Tensor:
    """``[N]`` share of the 14 scored joints (:data:`MUPOTS_PCK_JOINTS`) within
    ``threshold_mm``, after root centring and (as the MuPoTS script does) rescaling
    the predicted bones to the ground truth's. ``visible [N, 17]`` further limits the
    joints counted (the script's visible/occluded breakdowns)."""
    pred, gt = _root_centred(pred), _root_centred(gt)
    if bone_rescale:
        pred = rescale_bones(pred, gt)
    distance = (pred - gt)[:, MUPOTS_PCK_JOINTS].norm(dim=-1) * 1000.0
    close = (distance < threshold_mm).float()
    if visible is None:
        return close.mean(dim=-1)
    counted = visible[:, MUPOTS_PCK_JOINTS].float()
    return (close * counted).sum(-1) / counted.sum(-1).clamp(min=1)


def match_people(pred_2d: torch.Tensor, gt_2d: torch.Tensor,
                 threshold_px: float = 40.0) -> list[int | None]:
    """Greedy MuPoTS matching of ``gt_2d [P, 17, 2]`` to ``pred_2d [Q, 17, 2]``
    (h36m17 joints; only :data:`MUPOTS_MATCH_JOINTS` are compared).

    Returns, per annotated person, the index of its prediction or ``None``. A joint
    matches when ``|dx| < threshold_px`` and ``|dy| < threshold_px``; each prediction
    is used once; ties go to the lower index, as MATLAB's ``max``.
    """
    gt_2d, pred_2d = gt_2d[:, MUPOTS_MATCH_JOINTS], pred_2d[:, MUPOTS_MATCH_JOINTS]
    used: set[int] = set()
    matches: list[int | None] = []
    for person in range(gt_2d.shape[0]):
        close = ((pred_2d - gt_2d[person]).abs() < threshold_px).all(dim=-1)  # [Q, J]
        counts = close.sum(dim=-1)
        best, best_count = None, 0
        for candidate in range(pred_2d.shape[0]):
            if candidate not in used and counts[candidate] > best_count:
                best, best_count = candidate, int(counts[candidate])
        if best is not None:
            used.add(best)
        matches.append(best)
    return matches


def nearest_pose(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor) -> int | None:
    """Index of the prediction ``pred [Q, J, 3]`` whose root-relative pose is nearest
    to ``gt [J, 3]`` over the ``visible [J]`` joints (the official Panoptic matching;
    a prediction may serve several people), or ``None`` without predictions."""
    if pred.shape[0] == 0:
        return None
    difference = (_root_centred(pred) - _root_centred(gt[None])) * visible[None, :, None]
    return int(difference.flatten(1).norm(dim=-1).argmin())


def depth_order_accuracy(pred_depth: torch.Tensor, gt_depth: torch.Tensor) -> tuple[int, int]:
    """``(correct, total)`` over all pairs of people whose ground-truth depths differ."""
    correct = total = 0
    for i in range(gt_depth.numel()):
        for j in range(i + 1, gt_depth.numel()):
            gt_sign = torch.sign(gt_depth[i] - gt_depth[j])
            if gt_sign == 0:
                continue
            total += 1
            correct += int(torch.sign(pred_depth[i] - pred_depth[j]) == gt_sign)
    return correct, total


def count_collisions(volumes: list[torch.Tensor]) -> int:
    """Frames (each a ``[P, P]`` intersection-volume matrix) with any positive volume."""
    return sum(int((v > 0).any()) for v in volumes)
