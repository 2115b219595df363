"""Probe (not part of the pipeline): which pyramid level holds the RPN's positive anchors.

The RPN of the network with anchors on every level (16-256 pixels on P2-P6, the default
before eb7670e) is given the training batches of the default stream (150 crop-
pretraining batches, 300 baseline batches) and labels every anchor with its own matcher
(ignored boxes included); prints the positives per level. Only the feature maps' sizes
matter, so no backbone runs.

    PYTHONPATH=. python docs/probes/rpn_levels/positives.py     # in a workspace after `dvc repro`
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torchvision.models.detection.image_list import ImageList

from model.body import load_body_model
from model.rcnn import ModelConfig, build_model, with_ignored_boxes
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed

STRIDES = (4, 8, 16, 32, 64)  # P2-P6
EVERY_LEVEL = (16, 32, 64, 128, 256)


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    config = dataclasses.replace(typed(ModelConfig, params, "model"), anchor_sizes=EVERY_LEVEL)
    rpn = build_model(config, load_body_model("anny"), 0).rpn
    ratios = len(config.anchor_ratios)
    for phase_name, count in (("pretrain", 150), ("baseline", 300)):
        phase = typed(PhaseParams, params, f"train.{phase_name}")
        data = batches(common, phase, 0)
        positives = np.zeros(len(STRIDES), dtype=int)
        for _ in range(count):
            images, targets = next(data)[:2]
            height, width = images.shape[-2:]
            maps = [torch.zeros(len(images), 1, -(-height // s), -(-width // s)) for s in STRIDES]
            anchors = rpn.anchor_generator(ImageList(images, [(height, width)] * len(images)),
                                           maps)
            per_level = [m.shape[-2] * m.shape[-1] * ratios for m in maps]
            labels, _ = rpn.assign_targets_to_anchors(anchors, with_ignored_boxes(targets))
            for image_labels in labels:
                for level, part in enumerate(image_labels.split(per_level)):
                    positives[level] += int((part == 1).sum())
        print(f"{phase_name}: {count} batches of {phase.batch_size}, anchors per image "
              f"{per_level}; positive anchors on P2-P6 {positives.tolist()} "
              f"(shares {np.round(positives / positives.sum(), 4).tolist()})")


if __name__ == "__main__":
    main()
