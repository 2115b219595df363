"""COCO-style average precision of the person detector at IoU 0.5 (AP50), with bootstrap
replicates over images.

The computation follows pycocotools' ``COCOeval`` for one category and all areas:

1. Per image, detections are taken in descending score order and each is matched to the
   unmatched ground-truth box of highest IoU, if that IoU is at least 0.5
   (:func:`match_detections`); a matched detection is a true positive.
2. Over all images, detections are sorted by score (stably, images in order), true and
   false positives are accumulated, precision is made monotone (each value the maximum
   of those at higher recall), and read at the 101 recall thresholds 0, 0.01 ... 1
   (0 where the recall is never reached); AP is their mean.

Regions marked as holding unannotated people (PoseTrack's ignore regions) act as
pycocotools' crowd annotations: a detection matched to no person that has at least half
its area inside them is left out, neither true nor false (:func:`ignored_detections`).

A bootstrap replicate weights each image by how often it is drawn, so its detections'
counts and its ground-truth people are weighted alike (:func:`ap_replicates`). A test
checks the point value against pycocotools itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

__all__ = ["match_detections", "matched_people", "ignored_detections", "average_precision",
           "ap_replicates"]

RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def match_detections(boxes: torch.Tensor, scores: torch.Tensor, gt_boxes: torch.Tensor,
                     threshold: float = 0.5) -> np.ndarray:
    """``[D]`` bool, per detection (in the given order): matched to a ground-truth box.

    Args:
        boxes: ``[D, 4]`` xyxy detections; ``scores`` ``[D]``; ``gt_boxes`` ``[G, 4]``.
    """
    return matched_people(boxes, scores, gt_boxes, threshold) >= 0


def matched_people(boxes: torch.Tensor, scores: torch.Tensor, gt_boxes: torch.Tensor,
                   threshold: float = 0.5) -> np.ndarray:
    """``[D]`` int, per detection (in the given order): the index of the ground-truth box
    it is matched to, or -1 (the greedy rule of :func:`match_detections`)."""
    person = np.full(len(boxes), -1, dtype=np.int64)
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return person
    iou = box_iou(boxes.double(), gt_boxes.double()).numpy()  # [D, G]
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for d in np.argsort(-scores.numpy(), kind="mergesort"):
        candidates = np.where(taken, -1.0, iou[d])
        best = int(candidates.argmax())
        if candidates[best] >= threshold:
            taken[best], person[d] = True, best
    return person


def ignored_detections(boxes: torch.Tensor, ignore: torch.Tensor,
                       threshold: float = 0.5) -> np.ndarray:
    """``[D]`` bool: at least ``threshold`` of each box's area lies in the ``ignore``
    regions (``[H, W]`` bool pixels), pycocotools' crowd rule (intersection over the
    detection's area), counted on the pixels whose centres the box contains."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    height, width = ignore.shape
    inside = np.zeros((height + 1, width + 1))  # summed-area table
    inside[1:, 1:] = ignore.numpy().astype(float).cumsum(0).cumsum(1)
    # pixel i (centre i + 0.5) lies in [a, b) when ceil(a - 0.5) <= i < ceil(b - 0.5)
    edges = np.ceil(boxes.double().numpy() - 0.5).astype(int)
    x1, y1, x2, y2 = (edges[:, k] for k in range(4))
    area = np.maximum((x2 - x1) * (y2 - y1), 1)
    x1, x2 = np.clip(x1, 0, width), np.clip(x2, 0, width)
    y1, y2 = np.clip(y1, 0, height), np.clip(y2, 0, height)
    covered = inside[y2, x2] - inside[y1, x2] - inside[y2, x1] + inside[y1, x1]
    return covered >= threshold * area


def _curve_ap(tp_sum: np.ndarray, fp_sum: np.ndarray, positives: float) -> float:
    if positives <= 0:
        return float("nan")
    if len(tp_sum) == 0:
        return 0.0
    recall = tp_sum / positives
    precision = tp_sum / np.maximum(tp_sum + fp_sum, np.finfo(float).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    index = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    reached = index < len(recall)
    return float(np.where(reached, precision[np.minimum(index, len(recall) - 1)], 0.0).mean())


def _ordered(images: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """All detections in pycocotools' order: (scores, tp, image index), sorted by score,
    stably, over the images' detections each in descending score order."""
    scores, tp, owner = [], [], []
    for index, (image_scores, image_tp) in enumerate(images):
        order = np.argsort(-image_scores, kind="mergesort")
        scores.append(image_scores[order])
        tp.append(image_tp[order])
        owner.append(np.full(len(order), index))
    scores, tp, owner = (np.concatenate(a) if a else np.zeros(0) for a in (scores, tp, owner))
    order = np.argsort(-scores, kind="mergesort")
    return scores[order], tp[order].astype(bool), owner[order].astype(int)


def average_precision(images: list[tuple[np.ndarray, np.ndarray]], gt_counts: np.ndarray
                      ) -> float:
    """AP50 of ``images``: per image ``(scores [D], tp [D])`` and its number of
    ground-truth people ``gt_counts [N]``."""
    _, tp, _ = _ordered(images)
    return _curve_ap(np.cumsum(tp), np.cumsum(~tp), float(np.sum(gt_counts)))


def ap_replicates(images: list[tuple[np.ndarray, np.ndarray]], gt_counts: np.ndarray,
                  weights: np.ndarray) -> np.ndarray:
    """``[R]`` AP50 of each bootstrap replicate (``weights [R, N]``: draws per image)."""
    _, tp, owner = _ordered(images)
    draws = []
    for row in weights:
        weight = row[owner]
        draws.append(_curve_ap(np.cumsum(weight * tp), np.cumsum(weight * ~tp),
                               float(row @ gt_counts)))
    return np.array(draws)
