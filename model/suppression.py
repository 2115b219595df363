"""Soft-NMS for the box head's detections (Bodla et al., "Soft-NMS: Improving Object
Detection With One Line of Code", ICCV 2017), the Gaussian rule.

Greedy NMS deletes every box that overlaps a higher-scoring one beyond an IoU, so of two
people standing one behind the other only one survives, while a confident box over part
of a single person survives beside the whole-person box whenever their IoU is below the
threshold. Soft-NMS deletes nothing outright: each box taken lowers the scores of the
others by exp(-IoU^2 / sigma), so a second person keeps a lower score and a near-copy
keeps a much lower one.

Written here because torchvision has only greedy NMS; the loop runs over at most the
RPN's test proposals (100 in the default profile).
"""

from __future__ import annotations

import torch
from torchvision.ops import box_iou

__all__ = ["soft_nms"]


def soft_nms(boxes: torch.Tensor, scores: torch.Tensor, sigma: float,
             score_threshold: float, max_detections: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian Soft-NMS of one image's detections.

    Args:
        boxes: ``[D, 4]`` xyxy boxes.
        scores: ``[D]`` their scores.
        sigma: the decay's width: a box at IoU u with a taken box has its score
            multiplied by exp(-u^2 / sigma).
        score_threshold: boxes whose decayed score falls below it are dropped.
        max_detections: at most this many are kept.

    Returns:
        ``[K]`` indices into ``boxes`` of the kept ones, in the order taken (their
        decayed scores never increase), and ``[K]`` those decayed scores.
    """
    if sigma <= 0:
        raise ValueError(f"soft_nms: sigma must be positive, got {sigma}")
    if boxes.shape[0] != scores.shape[0] or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"soft_nms: boxes [D, 4] and scores [D] expected, got "
                         f"{tuple(boxes.shape)} and {tuple(scores.shape)}")
    # 1. every pairwise decay factor at once (D is at most a few hundred), in float64 so
    #    that near-equal scores of an untrained head are ordered as exactly as possible
    decay = torch.exp(-box_iou(boxes.double(), boxes.double()).square() / sigma)
    current = scores.double()
    open_ = torch.ones_like(scores, dtype=torch.bool)
    kept, kept_scores = [], []
    # 2. take the best open box, then decay the scores of the others by its overlap
    while len(kept) < max_detections:
        candidates = torch.where(open_, current, torch.full_like(current, -1.0))
        best = int(candidates.argmax()) if len(candidates) else 0
        if len(candidates) == 0 or float(candidates[best].detach()) < score_threshold:
            break
        kept.append(best)
        kept_scores.append(current[best])
        open_[best] = False
        current = current * torch.where(open_, decay[best], torch.ones_like(current))
    index = torch.tensor(kept, dtype=torch.long, device=boxes.device)
    decayed = torch.stack(kept_scores).to(scores.dtype) if kept_scores else scores[:0]
    return index, decayed
