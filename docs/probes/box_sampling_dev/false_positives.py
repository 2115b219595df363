"""What the confident false positives of a model are (probe; run in a workspace).

    PYTHONPATH=. python docs/probes/box_sampling_dev/false_positives.py synth_multi \
        models/baseline/model.pt

On the benchmark's first 100 images: detections scoring >= 0.5 matched greedily (score
order) to people at IoU >= 0.5; each unmatched one is described by its best IoU with a
person, its area against that person's box, and whether that person was already taken.
"""

import sys

import numpy as np
import torch
from torchvision.ops import box_area, box_iou

from model.io import load_network
from pipelines.shards import SHARDS, read_shards
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params


def false_positives(network, sample) -> tuple[int, list[tuple[float, float, float, bool]]]:
    """(true positives, [(best IoU, area ratio, score, duplicate)] of the false ones)."""
    inputs = to_network_input(sample, 256, 416)
    with torch.no_grad():
        found = network(inputs["image"][None], intrinsics=[inputs["target"]["K"]])[0]
    people = inputs["target"]["boxes"]
    confident = found["scores"] >= 0.5
    boxes, scores = found["boxes"][confident], found["scores"][confident]
    if not len(boxes):
        return 0, []
    overlap = box_iou(boxes, people)
    taken, true_positives, false = set(), 0, []
    for k in range(len(boxes)):
        free = [int(j) for j in overlap[k].argsort(descending=True)
                if overlap[k, j] >= 0.5 and int(j) not in taken]
        if free:
            taken.add(free[0])
            true_positives += 1
            continue
        j = int(overlap[k].argmax())
        false.append((float(overlap[k, j]), float(box_area(boxes[k:k + 1]) /
                                                  box_area(people[j:j + 1])),
                       float(scores[k]), bool(overlap[k, j] >= 0.5)))
    return true_positives, false


def main() -> None:
    torch.set_num_threads(2)
    benchmark, model_path = sys.argv[1:3]
    body = from_section(BodyModelParams, read_params(), "body_model").build()
    network, _ = load_network(model_path, body)
    network.eval()
    true_positives, false = 0, []
    for i, sample in enumerate(read_shards(SHARDS / "test" / benchmark)):
        if i == 100:
            break
        tp, fp = false_positives(network, sample)
        true_positives += tp
        false += fp
    rows = np.array(false)
    print("true positives", true_positives, "false positives scoring >= 0.5", len(rows))
    print("best IoU with a person, bins [0, .1, .3, .4, .5, 1]:",
          np.histogram(rows[:, 0], bins=[0, .1, .3, .4, .5, 1.01])[0])
    print("duplicates of an already matched person:", int(rows[:, 3].sum()))
    print("area against that person's box: < 0.5", int((rows[:, 1] < .5).sum()),
          "0.5-2", int(((rows[:, 1] >= .5) & (rows[:, 1] < 2)).sum()),
          "> 2", int((rows[:, 1] >= 2).sum()))


if __name__ == "__main__":
    main()
