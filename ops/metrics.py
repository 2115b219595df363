"""Evaluation metrics, each faithful to its benchmark's protocol.

Inputs are in metres; lengths come out in millimetres. Joint sets are those of
:mod:`model.body` (``h36m17``: pelvis first; ``lsp14``).

- :func:`mpjpe`: root-centred mean per-joint position error. With ``visible``, this is
  the Panoptic protocol: invisible joints add 0 but stay in the denominator.
- :func:`pa_mpjpe`: the error after a similarity Procrustes alignment (Table 1).
- :func:`pck3d`: MuPoTS-3D 3DPCK. The poses are root-relative, the predicted bones
  are rescaled to the ground-truth lengths along the kinematic tree, and the result is
  the share of joints within 150 mm (Table 3).
- :func:`match_people`: the official MuPoTS greedy 2D matching. For each annotated
  person in turn, the unused prediction with the most joints within 40 px in both x
  and y wins (Table 3 "Matched"; unmatched people score 0 in "All").
- :func:`depth_order_accuracy`: Table 5. The official code never implemented it, so
  here is the definition. Over all pairs {i, j} of matched people whose ground-truth
  depths differ, a pair is correct when the predicted depths order them the same way
  as the ground truth. Depth is the camera-frame z of the pelvis.
- :func:`count_collisions`: Table 4. The number of frames in which any pair of
  predicted people has a positive intersection volume (64³ grid).
"""

from __future__ import annotations

import torch

from ops.geometry import apply_similarity, similarity_procrustes

__all__ = ["mpjpe", "pa_mpjpe", "pck3d", "match_people", "depth_order_accuracy",
           "count_collisions", "H36M_PARENTS", "rescale_bones"]

# Parent of each h36m17 joint (pelvis is the root).
H36M_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]


def _root_centred(points: torch.Tensor) -> torch.Tensor:
    return points - points[:, :1]


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor | None = None
          ) -> torch.Tensor:
    """``pred, gt [N, J, 3]`` -> ``[N]`` mm, both centred on joint 0.
    ``visible [N, J]`` (0/1) zeroes invisible joints but keeps them in the mean."""
    error = (_root_centred(pred) - _root_centred(gt)).norm(dim=-1) * 1000.0  # [N, J]
    if visible is not None:
        error = error * visible
    return error.mean(dim=-1)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``[N]`` mm after aligning each prediction to its ground truth by a similarity."""
    aligned = apply_similarity(pred, *similarity_procrustes(pred, gt))
    return (aligned - gt).norm(dim=-1).mean(dim=-1) * 1000.0


def rescale_bones(pred: torch.Tensor, gt: torch.Tensor,
                  parents: list[int] = H36M_PARENTS) -> torch.Tensor:
    """Give every predicted bone its ground-truth length, keeping its direction, by
    rebuilding the skeleton from the root outwards (parents precede children)."""
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
    """``[N]`` share of joints within ``threshold_mm`` after root centring (and bone
    rescaling, as the MuPoTS script does). ``visible [N, J]`` limits the joints counted."""
    pred, gt = _root_centred(pred), _root_centred(gt)
    if bone_rescale:
        pred = rescale_bones(pred, gt)
    close = ((pred - gt).norm(dim=-1) * 1000.0 < threshold_mm).float()
    if visible is None:
        return close.mean(dim=-1)
    return (close * visible).sum(-1) / visible.sum(-1).clamp(min=1)


def match_people(pred_2d: torch.Tensor, gt_2d: torch.Tensor, threshold_px: float = 40.0,
                 gt_visible: torch.Tensor | None = None) -> list[int | None]:
    """Greedy MuPoTS matching of ``gt_2d [P, J, 2]`` to ``pred_2d [Q, J, 2]``.

    Returns, per annotated person, the index of its prediction or ``None``. A joint
    matches when ``|dx| < threshold_px`` and ``|dy| < threshold_px`` (and, with
    ``gt_visible [P, J]``, the joint is annotated); each prediction is used once, and a
    person with no matching joint stays unmatched.
    """
    used: set[int] = set()
    matches: list[int | None] = []
    for person in range(gt_2d.shape[0]):
        close = ((pred_2d - gt_2d[person]).abs() < threshold_px).all(dim=-1)  # [Q, J]
        if gt_visible is not None:
            close = close & gt_visible[person].bool()
        counts = close.sum(dim=-1)
        best, best_count = None, 0
        for candidate in range(pred_2d.shape[0]):
            if candidate not in used and counts[candidate] > best_count:
                best, best_count = candidate, int(counts[candidate])
        if best is not None:
            used.add(best)
        matches.append(best)
    return matches


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
