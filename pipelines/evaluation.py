"""One image's evaluation, and a benchmark's numbers with their bootstrap intervals.

:func:`image_values` scores one image's detections against its annotation with every
protocol of :mod:`ops.metrics` and returns, per metric, a numerator and a denominator
(``values["pck_all"] = (sum of the people's PCK, people)``). Nothing is accumulated
there: an image either yields all its values or raises, so a failed image leaves no
trace in the metrics (the stage counts it once). :func:`summarise` turns the images'
values into each metric (the ratio of sums) with its bootstrap interval
(:mod:`ops.bootstrap`). Frames of a video are resampled in blocks
(:func:`resampling_block`), other images one by one.

Per image:

1. Detections scoring at least ``score_threshold`` (official: 0.05) are the
   predictions; a non-finite prediction fails the image.
2. The annotated people are those with any valid 3D joint (MuPoTS: ``isValidFrame``;
   the official script leaves the others out).
3. **3DPCK** (Table 3): the official greedy 2D matching, in the original image's
   pixels, then 3DPCK of each matched person; unmatched people score 0 in "All".
4. **Depth order** (Table 5): over the pairs of matched people, pelvis depths; as
   diagnostics, over the pairs whose annotated boxes overlap, and over all the matched
   pairs again ordered by the bottom edges of the predicted boxes instead of any depth
   (the ground-plane cue a model could read from the boxes alone).
5. **MPJPE** (Table 2, Panoptic protocol): each person against the prediction with the
   nearest root-relative pose over the joints visible for every annotated person of
   the frame; the person's own invisible joints count 0, joints nobody in the frame has
   leave the mean; people with no prediction at all are counted, not dropped.
6. **PA-MPJPE** (Table 1, H36M protocol): on the official 14 joints, the best
   prediction where one person is annotated; among several, the person's own match
   (the nearest pose, as MPJPE).
7. **Collisions** (Table 4): whether any two predictions scoring at least
   ``collision_score_threshold`` intersect (64³ volumes), and, as a diagnostic, only
   among those of them matched to distinct people (so a duplicate of one person does
   not count, and the diagnostic never counts a frame the Table 4 count leaves out).
   Also, as diagnostics, how much they intersect: the summed intersection volume of
   every pair, in litres per frame, among the same two sets (a frame count only asks
   whether two people touch; the interpenetration loss acts on how deep they are).
8. **Per action** (a diagnostic): where the benchmark names each person's action
   (:func:`action_labels`), MPJPE and PA-MPJPE again over the people of each action
   (``values["pa_mpjpe@crouch"]``), so a model that predicts one pose whatever the image
   shows is seen failing on the poses far from it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from model.body import BodyModel, posed_in_camera
from model.camera import project
from ops.bootstrap import Interval, group_mean, interval, ratio, replicate_weights
from ops.collision import collision_volume
from ops.detection import ap_replicates, average_precision
from ops.metrics import (
    H36M_EVAL_JOINTS,
    count_collisions,
    depth_order_accuracy,
    match_people,
    mpjpe,
    nearest_pose,
    pa_mpjpe,
    pck3d,
)

__all__ = ["EvalParams", "Protocol", "PredictionError", "image_values", "summarise", "METRICS",
           "GROUPED", "BY_ACTION", "action_labels", "annotated_kp3d", "metric_replicates",
           "flat", "write_records", "read_records", "detection_inputs", "detection_summary",
           "resampling_block", "record_weights", "records_path", "find_records",
           "metrics_path"]


@dataclass(frozen=True)
class EvalParams:
    """``eval`` section."""

    models: tuple[str, ...]
    benchmarks: tuple[str, ...]
    score_threshold: float  # detections used by the metrics (official 0.05)
    collision_score_threshold: float  # detections checked for collisions
    match_threshold_px: float  # MuPoTS 2D matching threshold (official 40 px)
    synthetic_match_focal: float  # synthetic images: threshold x f / this (same angle)
    bootstrap_replicates: int  # resamples of the images for the intervals
    bootstrap_block_frames: int  # video benchmarks: frames per resampled block
    max_failed_fraction: float
    stands_for: dict[str, str]  # benchmark -> the paper benchmark (h36m, panoptic, mupots,
    #                             posetrack) whose tables it feeds


class PredictionError(ValueError):
    """A prediction the metrics cannot score (non-finite values)."""


@dataclass(frozen=True)
class Protocol:
    """How one benchmark is scored."""

    score_threshold: float  # detections used by the metrics (official 0.05)
    collision_score_threshold: float  # detections checked for collisions
    match_threshold_px: float  # 2D matching threshold in the original image's pixels


# metric key -> (values entry, scale): the metric is scale x sum(numerator) / sum(denominator)
# over the images; a scale of None makes it a count over the images (a frame count).
METRICS = {
    "pck_all": ("pck_all", 100.0),
    "pck_matched": ("pck_matched", 100.0),
    "matched_share": ("matched", 100.0),
    "mpjpe_mm": ("mpjpe", 1.0),
    "mpjpe_missed_share": ("mpjpe_missed", 100.0),
    "pa_mpjpe_mm": ("pa_mpjpe", 1.0),
    "depth_order_acc": ("depth_order", 100.0),
    "depth_order_overlap_acc": ("depth_order_overlap", 100.0),  # pairs whose boxes overlap
    "depth_order_box_cue_acc": ("depth_order_box_cue", 100.0),  # its pairs, by box bottoms
    "collision_frames": ("collision", None),
    "collision_frames_matched": ("collision_matched", None),
    "collision_litres": ("collision_volume", 1.0),  # mean summed volume per frame
    "collision_litres_matched": ("collision_volume_matched", 1.0),
}
# metrics also reported per group (layout or sequence) and as the mean over groups
GROUPED = ("mpjpe_mm", "pck_all", "pck_matched")
# metrics also reported per action (key ``<metric>_action_<action>``) where people have one
BY_ACTION = ("mpjpe_mm", "pa_mpjpe_mm")


def action_labels(meta: dict, people: int) -> list[str] | None:
    """Each of the image's ``people`` annotated rows' action, or ``None`` where the
    benchmark names none: the synthetic scenes' per-person activity, or Human3.6M's
    action of the frame without its take number ("Directions_1" -> "Directions")."""
    if "activities" in meta:
        labels = [str(a) for a in meta["activities"]]
        if len(labels) != people:
            raise ValueError(f"{len(labels)} activities in the sample's meta for {people} "
                             "annotated people: expected one per person")
        return labels
    if "action" in meta:
        return [re.sub(r"[ _]\d+$", "", str(meta["action"]))] * people
    return None


def resampling_block(meta: dict, block_frames: int) -> str | None:
    """The stretch of video an image is resampled with, or ``None`` for an image that
    stands alone (every synthetic image).

    Neighbouring frames of a video show nearly the same people in nearly the same poses,
    so the bootstrap draws them together: a block is ``block_frames`` consecutive frames
    (the readers' original frame numbers) of one video, all its cameras included, as
    they film the same moment. The video is the reader's ``sequence`` (Panoptic,
    MuPoTS, PoseTrack) or Human3.6M's subject and action. (PoseTrack's frame numbers
    are its global ``frame_id``s, the video then the frame in the last four digits, so
    a block still holds consecutive frames.)"""
    if "sequence" in meta:
        video = str(meta["sequence"])
    elif "subject" in meta and "action" in meta:
        video = f"{meta['subject']}/{meta['action']}"
    else:
        return None
    if "frame" not in meta:
        return video
    if block_frames < 1:
        raise ValueError(f"bootstrap_block_frames must be at least 1, got {block_frames}")
    return f"{video}#{int(meta['frame']) // block_frames}"


def annotated_kp3d(target: dict[str, torch.Tensor]) -> torch.Tensor:
    """The target's ``kp3d [P, 17, 4]``; without 3D annotations (PoseTrack), one row per
    box with every joint invalid, so nobody counts as annotated in 3D."""
    return target.get("kp3d", torch.zeros(len(target["boxes"]), 17, 4))


def _check_finite(detections: dict[str, torch.Tensor]) -> None:
    for name, value in detections.items():
        if not torch.isfinite(value).all():
            raise PredictionError(f"non-finite predicted {name}")


def image_values(detections: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                 K: torch.Tensor, body: BodyModel, protocol: Protocol,
                 actions: list[str] | None = None) -> dict[str, tuple[float, float]]:
    """Every metric's ``(numerator, denominator)`` for one image.

    Args:
        detections: ``boxes, scores, rotmats, shape, transl`` of the detections.
        target: ``kp3d [P, 17, 4]`` (camera frame, valid flag) of the annotated people
            (a benchmark without 3D, PoseTrack, is scored for collisions only), and
            ``kp3d_univ`` where the benchmark has a normalised skeleton for 3DPCK
            (MuPoTS's ``univ_annot3``, as the official script).
        K: ``[3, 3]`` intrinsics of the *original* image (matching is in its pixels).
        actions: each row of ``kp3d``'s action (:func:`action_labels`), or ``None``.
    """
    keep = detections["scores"] >= protocol.score_threshold
    det = {k: v[keep] for k, v in detections.items()}
    _check_finite(det)
    kp3d = annotated_kp3d(target)
    annotated = kp3d[..., 3].bool().any(dim=-1)
    gt, valid = kp3d[annotated][..., :3], kp3d[annotated][..., 3].bool()  # [P, 17, 3], [P, 17]
    gt_pck = target["kp3d_univ"][annotated][..., :3] if "kp3d_univ" in target else gt
    posed = posed_in_camera(body, det["rotmats"], det["shape"], det["transl"])
    pred, vertices = posed.joints["h36m17"], posed.vertices  # [Q, 17, 3], [Q, V, 3]
    matches = match_people(project(pred, K), project(gt, K), protocol.match_threshold_px)
    values = _pck_and_depth(pred, gt, gt_pck, matches, target["boxes"][annotated],
                            det["boxes"])
    labels = None if actions is None else [
        action for action, has_3d in zip(actions, annotated.tolist(), strict=True) if has_3d]
    values.update(_mpjpe_values(pred, gt, valid, labels))
    confident = (det["scores"] >= protocol.collision_score_threshold).nonzero().flatten()
    # Volumes are pairwise, so one computation over the confident detections serves both
    # counts; the diagnostic keeps those of them matched to distinct people.
    volumes = collision_volume(vertices[confident], body.faces, grid_size=64)
    slot = {person: k for k, person in enumerate(confident.tolist())}
    matched = [slot[m] for m in matches if m in slot]
    for key, subset in (("collision", list(slot.values())), ("collision_matched", matched)):
        index = torch.tensor(subset, dtype=torch.long)
        pairs = volumes[index][:, index]
        values[key] = (float(count_collisions([pairs])), 1.0)
        # each pair once (the matrix is symmetric), m^3 -> litres
        values[key.replace("collision", "collision_volume")] = (
            1000.0 * float(pairs.triu(diagonal=1).sum()), 1.0)
    return values


def _pck_and_depth(pred: torch.Tensor, gt: torch.Tensor, gt_pck: torch.Tensor,
                   matches: list[int | None], gt_boxes: torch.Tensor,
                   pred_boxes: torch.Tensor) -> dict[str, tuple[float, float]]:
    pairs = [(p, m) for p, m in enumerate(matches) if m is not None]
    pck = [float(pck3d(pred[m:m + 1], gt_pck[p:p + 1])) for p, m in pairs]
    values = {"pck_all": (sum(pck), float(len(matches))),
              "pck_matched": (sum(pck), float(len(pairs))),
              "matched": (float(len(pairs)), float(len(matches)))}
    for key in ("depth_order", "depth_order_overlap", "depth_order_box_cue"):
        values[key] = (0.0, 0.0)
    if len(pairs) >= 2:
        people, predictions = (list(index) for index in zip(*pairs, strict=True))
        pred_depth, gt_depth = pred[predictions, 0, 2], gt[people, 0, 2]
        correct, total = depth_order_accuracy(pred_depth, gt_depth)
        values["depth_order"] = (float(correct), float(total))
        # The pairs whose annotated boxes overlap: the only ones a rendering loss sees.
        overlapping = (box_iou(gt_boxes[people], gt_boxes[people]) > 0).triu(1).nonzero()
        counts = [depth_order_accuracy(pred_depth[pair], gt_depth[pair])
                  for pair in overlapping]
        values["depth_order_overlap"] = (float(sum(c for c, _ in counts)),
                                         float(sum(t for _, t in counts)))
        # The same pairs ordered by no network depth at all: the lower a predicted box
        # ends in the image, the nearer (people on one ground), as a reference.
        correct, total = depth_order_accuracy(-pred_boxes[predictions, 3], gt_depth)
        values["depth_order_box_cue"] = (float(correct), float(total))
    return values


def _mpjpe_values(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor,
                  actions: list[str] | None) -> dict[str, tuple[float, float]]:
    # Matching compares the joints every annotated person has (official); each person's
    # error counts their own invisible joints as 0 (official), and leaves out of the mean
    # the joints nobody in the frame has (Panoptic's spine and head top, which the
    # dataset never provides; the official code filled them from an SMPL fit).
    visible = valid.all(dim=0).to(gt.dtype)
    scored = valid.any(dim=0)
    errors: dict[int, tuple[float, float]] = {}  # person -> (MPJPE, PA-MPJPE)
    for person in range(gt.shape[0]):
        nearest = nearest_pose(pred, gt[person], visible)
        if nearest is None:
            continue
        # PA-MPJPE: the best detection where one person is annotated (the official
        # Human3.6M rule); among several people, the one matched to this person, so
        # nobody is scored against someone else's prediction.
        candidates = pred if gt.shape[0] == 1 else pred[nearest:nearest + 1]
        joints = [j for j in H36M_EVAL_JOINTS if valid[person, j]]
        aligned = pa_mpjpe(candidates[:, joints],
                           gt[person, joints].expand(len(candidates), -1, -1))
        own = valid[person:person + 1].to(gt.dtype)
        errors[person] = (float(mpjpe(pred[nearest:nearest + 1], gt[person:person + 1], own,
                                      scored)), float(aligned.min()))
    values = {"mpjpe": (sum(e[0] for e in errors.values()), float(len(errors))),
              "mpjpe_missed": (float(gt.shape[0] - len(errors)), float(gt.shape[0])),
              "pa_mpjpe": (sum(e[1] for e in errors.values()), float(len(errors)))}
    for action in sorted(set(actions or ())):
        people = [errors[p] for p, a in enumerate(actions) if a == action and p in errors]
        values[f"mpjpe@{action}"] = (sum(e[0] for e in people), float(len(people)))
        values[f"pa_mpjpe@{action}"] = (sum(e[1] for e in people), float(len(people)))
    return values


# ----------------------------------------------------------------------------
# A benchmark's numbers

def metric_replicates(records: list[dict], weights: np.ndarray, metric: str,
                      group: str | None = None,
                      action: str | None = None) -> tuple[float, np.ndarray]:
    """The point value and ``[R]`` replicate values of ``metric`` over ``records``
    (the images' ``values`` and ``group``). ``group``: one group's metric, or
    ``"mean"`` for the mean over groups. ``action``: over that action's people only
    (an image without any counts as 0 / 0)."""
    entry, scale = METRICS[metric]
    if action is not None:
        entry = f"{entry}@{action}"
    pairs = [r["values"].get(entry, (0.0, 0.0)) if action else r["values"][entry]
             for r in records]
    numerator = np.array([p[0] for p in pairs])
    denominator = np.array([p[1] for p in pairs])
    groups = np.array([r["group"] for r in records])
    everything = np.ones((1, len(records)))
    if group == "mean":
        if scale is None:
            raise ValueError(f"{metric} is a count: it has no mean over groups")
        point = group_mean(everything, numerator, denominator, groups)[0]
        return point * scale, group_mean(weights, numerator, denominator, groups) * scale
    if group is not None:
        chosen = groups == group
        numerator, denominator = numerator * chosen, denominator * chosen
    if scale is None:  # a count over the (chosen) images, each drawn as often as weighted
        return float(numerator.sum()), weights @ numerator
    point = ratio(everything, numerator, denominator)[0]
    return point * scale, ratio(weights, numerator, denominator) * scale


def record_weights(records: list[dict], replicates: int, seed: int) -> np.ndarray:
    """``[replicates, len(records)]`` bootstrap weights of the records: blocks of video
    frames drawn together (each record's ``block``), every other image on its own."""
    labels = [r.get("block") for r in records]
    if all(label is None for label in labels):
        return replicate_weights(len(records), replicates, seed)
    labels = [f"image {r['key']}" if label is None else f"block {label}"
              for r, label in zip(records, labels, strict=True)]
    return replicate_weights(len(records), replicates, seed, np.array(labels))


def summarise(records: list[dict], replicates: int, seed: int) -> dict[str, float]:
    """Flat metrics with ``_lo``/``_hi`` bootstrap bounds (95 %), per-group values of
    :data:`GROUPED` and their mean over groups (``<metric>_group_mean``), and per-action
    values of :data:`BY_ACTION` (``<metric>_action_<action>``) with the number of each
    action's people scored (``people_action_<action>``)."""
    if not records:
        return {}
    weights = record_weights(records, replicates, seed)
    groups = sorted({r["group"] for r in records})
    wanted = [(metric, None, None, metric) for metric in METRICS]
    for metric in GROUPED:
        wanted += [(metric, g, None, f"{metric}_{g}") for g in groups]
        wanted.append((metric, "mean", None, f"{metric}_group_mean"))
    actions = sorted({k.split("@", 1)[1] for r in records for k in r["values"] if "@" in k})
    for metric in BY_ACTION:
        wanted += [(metric, None, a, f"{metric}_action_{a}") for a in actions]
    result: dict[str, float] = detection_summary(records, weights)
    for action in actions:
        result[f"people_action_{action}"] = int(sum(
            r["values"].get(f"pa_mpjpe@{action}", (0.0, 0.0))[1] for r in records))
    for metric, group, action, key in wanted:
        if any(METRICS[metric][0] not in r["values"] for r in records):
            continue  # a protocol this benchmark's records do not have
        point, draws = metric_replicates(records, weights, metric, group, action)
        if not np.isfinite(point):
            continue  # nothing to measure (e.g. no pairs for depth order)
        value = interval(point, draws)
        result.update(flat(key, value, integer=METRICS[metric][1] is None))
    return result


def detection_inputs(records: list[dict]) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                   np.ndarray]:
    """The records' detections as :mod:`ops.detection` takes them: per image
    ``(scores, tp)``, and each image's number of annotated people."""
    images = [(np.array(r["detection"]["scores"], dtype=float),
               np.array(r["detection"]["tp"], dtype=bool)) for r in records]
    return images, np.array([r["detection"]["gt"] for r in records], dtype=float)


def detection_summary(records: list[dict], weights: np.ndarray) -> dict[str, float]:
    """``ap50`` (%, COCO-style, :mod:`ops.detection`) with its bootstrap bounds, when the
    records carry their detections."""
    if not records or any("detection" not in r for r in records):
        return {}
    images, counts = detection_inputs(records)
    point = average_precision(images, counts)
    if not np.isfinite(point):
        return {}
    return flat("ap50", interval(point, ap_replicates(images, counts, weights)).scaled(100.0))


def flat(key: str, value: Interval, integer: bool = False) -> dict[str, float]:
    """``{key, key_lo, key_hi}`` (bounds left out when the replicates give none);
    ``integer`` for counts, whose bounds are rounded outwards to whole frames."""
    if integer:
        value = Interval(round(value.value), math.floor(value.low + 1e-9),
                         math.ceil(value.high - 1e-9)) if np.isfinite(value.low) else value
    result = {key: round(value.value, 3)}
    if np.isfinite(value.low) and np.isfinite(value.high):
        result.update({f"{key}_lo": round(value.low, 3), f"{key}_hi": round(value.high, 3)})
    return result


def records_path(root: Path, benchmark: str, model: str) -> Path:
    """Where ``evaluate@<model>`` writes a benchmark's per-image records:
    ``<root>/<model>/<benchmark>.jsonl`` (``root``: ``evaluations``). One folder per
    model, because one stage evaluates a model on every benchmark."""
    return root / model / f"{benchmark}.jsonl"


def find_records(root: Path, benchmark: str, model: str) -> Path:
    """The records of ``model`` on ``benchmark`` under ``root``: at :func:`records_path`,
    or else at ``<root>/<benchmark>/<model>.jsonl``, the layout of the runs and probe
    folders made while each (model, benchmark) pair was a stage of its own."""
    path = records_path(root, benchmark, model)
    earlier = root / benchmark / f"{model}.jsonl"
    return path if path.is_file() or not earlier.is_file() else earlier


def metrics_path(root: Path, benchmark: str, model: str) -> Path:
    """Where ``evaluate@<model>`` writes a benchmark's metrics:
    ``<root>/<model>/<benchmark>.json`` (``root``: ``metrics``)."""
    return root / model / f"{benchmark}.json"


def write_records(path: Path, records: list[dict]) -> None:
    """One JSON line per image (sorted keys: reruns give the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record, sort_keys=True) for record in records]
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def read_records(path: Path) -> list[dict]:
    """The per-image records of one evaluation (the images that did not fail)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [r for r in records if "failed" not in r]
