"""Box suppression after the detector, measured offline (probe; run in a workspace whose
``data/shards/test`` holds the development copies).

    PYTHONPATH=. python docs/probes/containment_dev/probe.py models/baseline/model.pt \
        synth_single synth_multi synth_crowd

Runs the network once per image with its box-head NMS switched off (IoU 1.0, up to 100
detections), then applies each suppression rule to the same raw detections and prints
AP50 (ops.detection, COCO-style) and how many images keep two or more detections
scoring >= 0.5 that overlap (IoU >= 0.1: a proxy for the colliding duplicates).
Rules: greedy NMS at an IoU, optionally followed by containment suppression (a box is
dropped when a kept, higher-scoring box covers at least ``c`` of its area).
"""

import sys

import numpy as np
import torch
from torchvision.ops import box_area, box_iou, nms

from model.io import load_network
from ops.detection import average_precision, match_detections
from pipelines.shards import SHARDS, read_shards
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params


def covered(boxes: torch.Tensor) -> torch.Tensor:
    """``[D, D]``: entry (i, j) the share of box j's area inside box i."""
    lt = torch.max(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / box_area(boxes)[None, :].clamp(min=1e-6)


def suppress(boxes: torch.Tensor, scores: torch.Tensor, iou: float,
             contained: float | None) -> torch.Tensor:
    """Indices kept by NMS at ``iou`` and then containment at ``contained``."""
    keep = nms(boxes, scores, iou)[:20]
    if contained is None or len(keep) < 2:
        return keep
    inside = covered(boxes[keep])
    kept = []
    for rank in range(len(keep)):  # keep is in descending score order
        if all(inside[k, rank] < contained for k in kept):
            kept.append(rank)
    return keep[kept]


RULES = [(0.4, None), (0.3, None), (0.5, None), (0.4, 0.9), (0.4, 0.8), (0.4, 0.7),
         (0.5, 0.8), (0.5, 0.7)]


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
        for iou, contained in RULES:
            images, counts, doubled = [], [], 0
            for boxes, scores, people in raw:
                keep = suppress(boxes, scores, iou, contained)
                b, s = boxes[keep], scores[keep]
                images.append((s.numpy().astype(float), match_detections(b, s, people)))
                counts.append(len(people))
                confident = b[s >= 0.5]
                overlap = box_iou(confident, confident).fill_diagonal_(0)
                doubled += int(len(confident) > 1 and bool((overlap >= 0.1).any()))
            ap = average_precision(images, np.array(counts, dtype=float))
            print(f"{benchmark} nms {iou} contained {contained}: AP50 {100 * ap:.1f}, "
                  f"images with overlapping confident boxes {doubled} of {len(raw)}",
                  flush=True)


if __name__ == "__main__":
    main()
