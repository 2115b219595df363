"""Probe (not part of the pipeline): how AP50 reads with *visible-extent* person boxes.

The synthetic annotations box each person's whole rendered silhouette, the parts hidden
behind others included (amodal boxes); COCO, PoseTrack and MPII box only what is seen.
This scores one model's detections against both kinds of box, on the same images:

    PYTHONPATH=. python docs/probes/modal_boxes/probe.py baseline \
        synth_single synth_multi synth_crowd        # in a workspace

Per benchmark: AP50 (pycocotools' rule, ``ops.detection``) against the amodal and the
visible boxes, with 95 % bootstrap intervals over images and the paired difference; and
how far the two kinds of box differ (the share of people whose visible box has IoU
below 0.5 or 0.7 with their amodal one).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm import tqdm

from ops.bootstrap import Interval, interval, paired, replicate_weights
from ops.detection import ap_replicates, average_precision, match_detections
from pipelines.shards import SHARDS, read_shards
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params
from stages.evaluate import load_predictor

REPLICATES = 1000


def visible_boxes(masks: torch.Tensor, people: int) -> torch.Tensor:
    """``[P, 4]`` xyxy boxes around each person's visible pixels (instance map ``[H, W]``,
    person i labelled i + 1)."""
    boxes = []
    for i in range(people):
        rows, cols = (masks == i + 1).nonzero(as_tuple=True)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)


def percent(value: Interval) -> str:
    value = value.scaled(100.0)
    return f"{value.value:.1f} [{value.low:.1f}, {value.high:.1f}]"


def main() -> None:
    model_name, benchmarks = sys.argv[1], sys.argv[2:]
    body = from_section(BodyModelParams, read_params(), "body_model").build()
    network = load_predictor(model_name, body).eval()  # models/<name>/model.pt
    for benchmark in benchmarks:
        amodal, visible, overlaps = [], [], []
        for sample in tqdm(list(read_shards(SHARDS / "test" / benchmark)), desc=benchmark):
            inputs = to_network_input(sample, 256, 416)
            target = inputs["target"]
            with torch.no_grad():
                found = network(inputs["image"][None], intrinsics=[target["K"]])[0]
            boxes, scores = found["boxes"], found["scores"]
            order = torch.argsort(scores, descending=True, stable=True)
            seen = visible_boxes(target["masks"], len(target["boxes"]))
            for kind, people in ((amodal, target["boxes"]), (visible, seen)):
                tp = match_detections(boxes[order], scores[order], people)
                kind.append(((scores[order].double().numpy(), tp), len(people)))
            overlaps.append(box_iou(seen, target["boxes"]).diagonal().numpy())
        weights = replicate_weights(len(amodal), REPLICATES, seed=0)
        results = {}
        for name, kind in (("amodal", amodal), ("visible", visible)):
            images = [k[0] for k in kind]
            counts = np.array([k[1] for k in kind])
            results[name] = (average_precision(images, counts),
                             ap_replicates(images, counts, weights))
        ratio = np.concatenate(overlaps)
        below = {limit: (ratio < limit).mean() for limit in (0.5, 0.7)}
        print(f"{benchmark}: {len(amodal)} images, {len(ratio)} people; visible box IoU with "
              f"the amodal one < 0.5: {below[0.5]:.1%}, < 0.7: {below[0.7]:.1%}")
        for name, (point, reps) in results.items():
            print(f"  AP50 against {name} boxes: {percent(interval(point, reps))}")
        (seen_point, seen_reps), (whole_point, whole_reps) = results["visible"], results["amodal"]
        difference = paired(seen_point, whole_point, seen_reps, whole_reps)
        print(f"  visible - amodal: {percent(difference)}")


if __name__ == "__main__":
    main()
