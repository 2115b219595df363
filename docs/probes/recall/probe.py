"""Probe (not part of the pipeline): which people the detector misses, and where.

AP50 cannot exceed the share of people matched at some score. This runs one model on a
benchmark and follows every annotated person that the evaluation's matching (pycocotools'
greedy rule, ``ops.detection.match_detections``, scores >= 0.05 after the box-head NMS)
leaves unmatched, back through the network:

- ``taken``: a kept detection overlaps the person at IoU >= 0.5, but a higher-scoring
  neighbour's match took it;
- ``nms``: the box head scored a box (>= 0.05) at IoU >= 0.5 with the person, and the
  suppression removed it (greedy NMS: a higher-scoring box of another person overlapped
  it; Soft-NMS: its decayed score fell below 0.05 or out of the 20 kept);
- ``box head``: the RPN proposed the person (a proposal at IoU >= 0.5) and the box head
  scored every such box below 0.05 or moved it off the person;
- ``rpn``: no proposal reached IoU 0.5 with the person.

Beside each class, the people's median box height, share of their box covered by other
people's visible pixels (``covered``), visible pixels, and best IoU of their box with
another person's (a neighbour that NMS at the model's threshold would fight).

    PYTHONPATH=. python docs/probes/recall/probe.py baseline synth_multi synth_crowd
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np
import torch
from torchvision.ops import box_iou
from tqdm import tqdm

from ops.detection import matched_people
from pipelines.shards import SHARDS, read_shards
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params
from stages.evaluate import load_predictor

SCORE = 0.05  # params.yaml evaluate.score_threshold


def best_iou(boxes: torch.Tensor, people: torch.Tensor) -> np.ndarray:
    """``[G]`` each person's best IoU with any of ``boxes``."""
    if len(boxes) == 0:
        return np.zeros(len(people))
    return box_iou(boxes.double(), people.double()).max(0).values.numpy()


def person_features(target: dict) -> dict[str, np.ndarray]:
    """Per person: box height, share of the box under other people's pixels, visible
    pixels, best IoU with another person's box."""
    people, masks = target["boxes"], target["masks"]
    heights, covered, visible = [], [], []
    for i, (x1, y1, x2, y2) in enumerate(people.round().long().tolist()):
        window = masks[max(y1, 0):y2, max(x1, 0):x2]
        heights.append(y2 - y1)
        covered.append(float(((window > 0) & (window != i + 1)).float().mean()))
        visible.append(int((masks == i + 1).sum()))
    overlap = box_iou(people, people).fill_diagonal_(0).max(1).values.numpy()
    return {"height": np.array(heights), "covered": np.array(covered),
            "visible": np.array(visible), "neighbour_iou": overlap}


def classify(network, sample: dict) -> tuple[list[str], dict[str, np.ndarray]]:
    """Each annotated person's class (``found`` or a miss class, module docstring)."""
    inputs = to_network_input(sample, 256, 416)
    target, image = inputs["target"], inputs["image"][None]
    proposals = []
    hook = network.rpn.register_forward_hook(lambda _m, _i, out: proposals.append(out[0][0]))
    heads = network.roi_heads
    settings = heads.nms_thresh, heads.detections_per_img, heads.soft_nms
    with torch.no_grad():
        kept = network(image, intrinsics=[target["K"]])[0]
        heads.nms_thresh, heads.detections_per_img, heads.soft_nms = 1.0, 1000, None
        raw = network(image, intrinsics=[target["K"]])[0]
    heads.nms_thresh, heads.detections_per_img, heads.soft_nms = settings
    hook.remove()
    people = target["boxes"]
    scores, boxes = kept["scores"], kept["boxes"]
    boxes, scores = boxes[scores >= SCORE], scores[scores >= SCORE]
    matched = np.zeros(len(people), dtype=bool)
    taken = matched_people(boxes, scores, people)
    matched[taken[taken >= 0]] = True
    kept_iou = best_iou(boxes, people)
    raw_iou = best_iou(raw["boxes"][raw["scores"] >= SCORE], people)
    proposal_iou = best_iou(proposals[0], people)
    classes = []
    for g in range(len(people)):
        if matched[g]:
            classes.append("found")
        elif kept_iou[g] >= 0.5:
            classes.append("taken")
        elif raw_iou[g] >= 0.5:
            classes.append("nms")
        elif proposal_iou[g] >= 0.5:
            classes.append("box head")
        else:
            classes.append("rpn")
    return classes, person_features(target)


def main() -> None:
    torch.set_num_threads(2)
    model_name, benchmarks = sys.argv[1], sys.argv[2:]
    body = from_section(BodyModelParams, read_params(), "body_model").build()
    for benchmark in benchmarks:
        network = load_predictor(model_name, body).eval()
        soft = network.roi_heads.soft_nms is not None
        nms_iou = 0.4 if soft else network.roi_heads.nms_thresh  # soft: the old default's
        rows: dict[str, list[dict]] = defaultdict(list)
        for sample in tqdm(list(read_shards(SHARDS / "test" / benchmark)), desc=benchmark):
            classes, features = classify(network, sample)
            for g, name in enumerate(classes):
                rows[name].append({k: v[g] for k, v in features.items()})
        total = sum(len(v) for v in rows.values())
        rule = "Soft-NMS" if soft else f"box NMS IoU {nms_iou}"
        print(f"{benchmark}: {total} people, model {model_name}, {rule}")
        print(f"  {'class':9s} {'people':>7s} {'share':>6s} {'height px':>9s} {'covered':>7s} "
              f"{'visible px':>10s} {'neighbour IoU':>13s} {'> NMS IoU':>9s}")
        for name in ("found", "taken", "nms", "box head", "rpn"):
            group = rows.get(name, [])
            if not group:
                print(f"  {name:9s} {0:7d}")
                continue
            median = {k: float(np.median([r[k] for r in group])) for k in group[0]}
            above = np.mean([r["neighbour_iou"] > nms_iou for r in group])
            print(f"  {name:9s} {len(group):7d} {len(group) / total:6.1%} "
                  f"{median['height']:9.0f} {median['covered']:7.2f} {median['visible']:10.0f} "
                  f"{median['neighbour_iou']:13.2f} {above:9.1%}")


if __name__ == "__main__":
    main()
