"""RoIAlign speed on the CPU: torchvision's FPN pooler against ours (ops.roi_align),
forward and backward, on the training steps' shapes.

Rows: the crop pretraining's box head (8 crops of 128x128, 64 RoIs each, 7x7) and SMPL
branch (16 RoIs per crop, 14x14), and the whole-image step's (2 images of 256x416, 64
and 16 RoIs, 7x7 and 14x14); 128-channel features on four FPN levels, random boxes of
every level. Prints ms per call and the speed-up (target: ours faster in every row).
The two poolers are checked to agree first. CUDA keeps torchvision's kernel, so the
benchmark is CPU-only.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision

from bench._scenes import time_ms
from ops.roi_align import MultiScaleRoIAlign

# (name, images, height, width, RoIs per image, output size)
SHAPES = [("crop pretraining, box head", 8, 128, 128, 64, 7),
          ("crop pretraining, SMPL branch", 8, 128, 128, 16, 14),
          ("whole image, box head", 2, 256, 416, 64, 7),
          ("whole image, SMPL branch", 2, 256, 416, 16, 14)]
CHANNELS = 128


def inputs(images: int, height: int, width: int, rois: int, generator: torch.Generator):
    """FPN features (strides 4-32) and per-image boxes with sides from 8 pixels to the image."""
    features = OrderedDict((str(k), torch.randn(images, CHANNELS, height // 2 ** (k + 2),
                                                width // 2 ** (k + 2), generator=generator))
                           for k in range(4))
    limit = torch.tensor([width, height], dtype=torch.float32)
    boxes = []
    for _ in range(images):
        side = torch.minimum(8 * (limit.min() / 8) ** torch.rand(rois, 2, generator=generator),
                             limit - 1)
        corner = torch.rand(rois, 2, generator=generator) * (limit - side)
        boxes.append(torch.cat([corner, corner + side], dim=1))
    return features, boxes, [(height, width)] * images


def forward_backward(pooler, features, boxes, shapes) -> torch.Tensor:
    leaves = OrderedDict((k, v.detach().requires_grad_(True)) for k, v in features.items())
    out = pooler(leaves, boxes, shapes)
    out.backward(torch.ones_like(out))
    return out


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    print(f"{'RoIAlign forward + backward (CPU)':34s} {'torchvision ms':>15s} {'ours ms':>8s} "
          f"{'speed-up':>9s}")
    for name, images, height, width, rois, size in SHAPES:
        features, boxes, shapes = inputs(images, height, width, rois, generator)
        names = list(features)
        theirs = torchvision.ops.MultiScaleRoIAlign(names, size, 2)
        ours = MultiScaleRoIAlign(names, size, 2)
        torch.testing.assert_close(forward_backward(ours, features, boxes, shapes),
                                   forward_backward(theirs, features, boxes, shapes),
                                   atol=1e-4, rtol=1e-4)
        ms = [time_ms(lambda p=p, f=features, b=boxes, s=shapes: forward_backward(p, f, b, s),
                      repeats=5)
              for p in (theirs, ours)]
        print(f"{name:34s} {ms[0]:15.1f} {ms[1]:8.1f} {ms[0] / ms[1]:8.1f}x")


if __name__ == "__main__":
    main()
