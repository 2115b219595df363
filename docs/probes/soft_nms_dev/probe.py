"""Probe (not part of the pipeline): the box head's suppression rule against AP50 and
single-person duplicates, on the same raw detections.

    PYTHONPATH=<repo> python <repo>/docs/probes/soft_nms_dev/probe.py models/baseline/model.pt \
        synth_single synth_multi synth_crowd     # in a workspace (here: the development copies)

Runs the network once per image with its box-head NMS switched off (IoU 1.0, up to 100
detections scoring >= 0.05), then applies each rule and keeps at most 20 detections at
>= 0.05, as the model does. Prints AP50 (``ops.detection``) with its 95 % bootstrap
interval over images and the paired difference from greedy NMS at 0.4 (the default),
and the images with two or more detections scoring >= 0.5 that overlap (IoU >= 0.1; on
``synth_single``, one person per image, these are the duplicates that collide).
Rules: greedy NMS at an IoU; Soft-NMS (Bodla et al. 2017) with a Gaussian decay
exp(-IoU^2 / sigma) or a linear one (1 - IoU above a threshold).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
from torchvision.ops import box_iou, nms

from model.io import load_network
from ops.bootstrap import interval, paired, replicate_weights
from ops.detection import ap_replicates, average_precision, match_detections
from pipelines.shards import SHARDS, read_shards
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params

REPLICATES = 1000
SCORE, KEEP = 0.05, 20


def soft_nms(boxes: torch.Tensor, scores: torch.Tensor, decay: str, param: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-loop Soft-NMS: (kept indices in selection order, their decayed scores)."""
    scores = scores.clone().double()
    remaining = list(range(len(boxes)))
    kept, kept_scores = [], []
    while remaining:
        best = max(remaining, key=lambda i: float(scores[i]))
        if float(scores[best]) < SCORE or len(kept) == KEEP:
            break
        kept.append(best)
        kept_scores.append(float(scores[best]))
        remaining.remove(best)
        for i in remaining:
            iou = float(box_iou(boxes[best][None], boxes[i][None]))
            if decay == "gaussian":
                scores[i] *= math.exp(-iou * iou / param)
            elif iou > param:
                scores[i] *= 1.0 - iou
    return torch.tensor(kept, dtype=torch.long), torch.tensor(kept_scores)


def apply(rule: tuple, boxes: torch.Tensor, scores: torch.Tensor):
    kind, param = rule
    if kind == "nms":
        keep = nms(boxes, scores, param)[:KEEP]
        return boxes[keep], scores[keep].double()
    keep, new_scores = soft_nms(boxes, scores, kind, param)
    return boxes[keep], new_scores


RULES = [("nms", 0.4), ("nms", 0.5), ("nms", 0.6), ("gaussian", 0.5), ("gaussian", 0.3),
         ("gaussian", 0.2), ("linear", 0.3), ("linear", 0.4)]


def main() -> None:
    torch.set_num_threads(2)
    model_path, benchmarks = sys.argv[1], sys.argv[2:]
    body = from_section(BodyModelParams, read_params(), "body_model").build()
    network, _ = load_network(model_path, body)
    network.eval()
    network.roi_heads.nms_thresh, network.roi_heads.detections_per_img = 1.0, 100
    for benchmark in benchmarks:
        raw = []
        for sample in read_shards(SHARDS / "test" / benchmark):
            inputs = to_network_input(sample, 256, 416)
            with torch.no_grad():
                found = network(inputs["image"][None], intrinsics=[inputs["target"]["K"]])[0]
            raw.append((found["boxes"], found["scores"], inputs["target"]["boxes"]))
        weights = replicate_weights(len(raw), REPLICATES, seed=0)
        counts = np.array([len(r[2]) for r in raw], dtype=float)
        reference = None
        for rule in RULES:
            images, doubled = [], 0
            for boxes, scores, people in raw:
                b, s = apply(rule, boxes, scores)
                images.append((s.numpy(), match_detections(b, s.float(), people)))
                confident = b[s >= 0.5]
                overlap = box_iou(confident, confident).fill_diagonal_(0)
                doubled += int(len(confident) > 1 and bool((overlap >= 0.1).any()))
            point = average_precision(images, counts)
            reps = ap_replicates(images, counts, weights)
            if reference is None:
                reference = (point, reps)
            ap = interval(point, reps).scaled(100)
            diff = paired(point, reference[0], reps, reference[1]).scaled(100)
            print(f"{benchmark} {rule[0]} {rule[1]}: AP50 {ap.value:.1f} [{ap.low:.1f}, "
                  f"{ap.high:.1f}], vs nms 0.4 {diff.value:+.1f} [{diff.low:+.1f}, "
                  f"{diff.high:+.1f}]; images with overlapping confident boxes {doubled} "
                  f"of {len(raw)}", flush=True)


if __name__ == "__main__":
    main()
