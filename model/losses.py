"""Losses of the SMPL branch, as pure functions (torchvision style).

Per-person losses take the predictions of the positive proposals and the ground truth
of the person each proposal is assigned to. Scene losses take one prediction per
ground-truth person (:func:`select_per_person`). Every loss returns a scalar and is
zero, still attached to the graph, when it has nothing to supervise. The weights live
in params.yaml, not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.pose_anchors import nearest_anchor
from ops.collision import collision_loss
from ops.depth_order import depth_order_loss
from ops.raster import depth_maps

__all__ = ["keypoint_2d_loss", "keypoint_3d_loss", "body_param_loss", "pose_anchor_loss",
           "generator_loss",
           "discriminator_loss", "select_per_person", "scene_losses", "CRITERIA"]

CRITERIA = {"l1": F.l1_loss, "mse": F.mse_loss}


def _weighted(criterion: str, pred: torch.Tensor, gt: torch.Tensor,
              weight: torch.Tensor) -> torch.Tensor:
    """Mean over all elements of ``weight * criterion(pred, gt)`` (the official
    reduction: unconfident points count as zeros in the mean)."""
    if pred.numel() == 0:
        return pred.sum() * 0.0
    return (weight * CRITERIA[criterion](pred, gt, reduction="none")).mean()


def keypoint_2d_loss(pred: torch.Tensor, gt: torch.Tensor, boxes: torch.Tensor,
                     criterion: str = "l1") -> torch.Tensor:
    """Box-normalised, confidence-weighted 2D reprojection loss.

    Args:
        pred: ``[N, K, 2]`` projected keypoints (pixels).
        gt: ``[N, K, 3]`` annotated (x, y, confidence).
        boxes: ``[N, 4]`` xyxy boxes the predictions belong to; both sets of points are
            expressed as ``(p - box centre) / (box width, box height)``.
    """
    centre = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
    size = (boxes[:, None, 2:] - boxes[:, None, :2]).clamp(min=1.0)
    return _weighted(criterion, (pred - centre) / size, (gt[..., :2] - centre) / size,
                     gt[..., 2:3])


def keypoint_3d_loss(pred: torch.Tensor, gt: torch.Tensor, criterion: str = "l1") -> torch.Tensor:
    """Root-centred 3D keypoint loss: ``pred [N, K, 3]`` and ``gt [N, K, 4]`` (x, y, z,
    valid), both centred on joint 0 (the pelvis of ``h36m17``)."""
    valid = gt[..., 3:4] * gt[:, :1, 3:4]  # a joint counts only if the root is known too
    return _weighted(criterion, pred - pred[:, :1], gt[..., :3] - gt[:, :1, :3], valid)


def body_param_loss(pred_rotmats: torch.Tensor, gt_rotmats: torch.Tensor,
                    pred_shape: torch.Tensor, gt_shape: torch.Tensor,
                    pred_vertices: torch.Tensor, gt_vertices: torch.Tensor,
                    has_body: torch.Tensor) -> dict[str, torch.Tensor]:
    """Losses on the body parameters where they are known (``has_body [N]``): MSE on the
    rotation matrices, MSE on the shape, and L1 on the vertices of the posed meshes (in the
    body frame)."""
    mask = has_body.bool()
    if not mask.any():
        zero = pred_rotmats.sum() * 0.0 + pred_shape.sum() * 0.0 + pred_vertices.sum() * 0.0
        return {"rotmats": zero, "shape": zero, "vertices": zero}
    return {
        "rotmats": F.mse_loss(pred_rotmats[mask], gt_rotmats[mask]),
        "shape": F.mse_loss(pred_shape[mask], gt_shape[mask]),
        "vertices": F.l1_loss(pred_vertices[mask], gt_vertices[mask]),
    }


def pose_anchor_loss(logits: torch.Tensor, gt_rotmats: torch.Tensor, anchors: torch.Tensor,
                     has_body: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the pose-anchor scores ``logits [N, K]`` against each person's
    nearest anchor (``anchors [K, J - 1, 3, 3]``, ``gt_rotmats [N, J, 3, 3]``), where the
    body parameters are known (``has_body [N]``)."""
    mask = has_body.bool()
    if not mask.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[mask], nearest_anchor(gt_rotmats[mask], anchors))


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN generator term: mean over samples of sum over outputs of (D - 1)^2."""
    if fake_scores.numel() == 0:
        return fake_scores.sum() * 0.0
    return (fake_scores - 1).square().sum(dim=1).mean()


def discriminator_loss(real_scores: torch.Tensor,
                       fake_scores: torch.Tensor) -> dict[str, torch.Tensor]:
    """LSGAN discriminator terms: real towards 1, (detached) fakes towards 0."""
    return {"real": (real_scores - 1).square().sum(dim=1).mean(),
            "fake": fake_scores.square().sum(dim=1).mean() if fake_scores.numel()
            else fake_scores.sum() * 0.0}


def select_per_person(matched: torch.Tensor, scores: torch.Tensor,
                      num_people: int) -> torch.Tensor:
    """For each ground-truth person, the index of its highest-scoring positive proposal.

    Args:
        matched: ``[N]`` ground-truth index assigned to each positive proposal.
        scores: ``[N]`` person scores of those proposals.
        num_people: people annotated in the image.
    Returns:
        ``[num_people]`` long, -1 for a person that no positive proposal covers.
    """
    chosen = torch.full((num_people,), -1, dtype=torch.long, device=matched.device)
    for person in range(num_people):
        candidates = (matched == person).nonzero().flatten()
        if candidates.numel():
            chosen[person] = candidates[scores[candidates].argmax()]
    return chosen


def scene_losses(vertices_cam: torch.Tensor, chosen: torch.Tensor, faces: torch.Tensor,
                 K: torch.Tensor, size: tuple[int, int], gt_masks: torch.Tensor | None,
                 sigma: float, robust: str, grid_size: int,
                 want: tuple[bool, bool]) -> dict[str, torch.Tensor]:
    """Interpenetration and depth-ordering losses of one image.

    Args:
        vertices_cam: ``[N, V, 3]`` camera-frame meshes of the positive proposals.
        chosen: ``[P]`` from :func:`select_per_person`.
        gt_masks: ``[H, W]`` instance ids (person i -> i + 1) or ``None``.
        want: (collision, depth order), whether to compute each.
    """
    zero = vertices_cam.sum() * 0.0
    losses = {"collision": zero, "depth_order": zero}
    present = chosen >= 0
    people = vertices_cam[chosen[present]]
    if want[0] and people.shape[0] >= 2:
        losses["collision"] = collision_loss(people, faces, grid_size, sigma, robust)
    if want[1] and gt_masks is not None and people.shape[0] >= 2:
        rendered = depth_maps(people, faces, K, size)  # [P_present, H, W]
        depths = torch.full((chosen.numel(), *size), float("inf"), dtype=rendered.dtype,
                            device=rendered.device)
        depths = depths.index_put((present.nonzero().flatten(),), rendered)
        losses["depth_order"] = depth_order_loss(depths, gt_masks)
    return losses
