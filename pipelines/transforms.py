"""From decoded shard samples to network batches: letterbox, colour noise, collate.

The network takes images of one size. Each image is resized keeping its aspect ratio
so it fits inside ``height x width``, then padded at the bottom and right, as the
official pipeline does. Boxes (a crop's ignored boxes too) and keypoints are scaled by
the same factor. The intrinsics are scaled too, so the camera conversion stays exact.
Masks are resized with nearest neighbour, and so are the ignore regions. Training adds
the official per-channel colour scaling.
Horizontal flips are not used: flipping an Anny pose needs a left/right bone mirror
that is not written yet.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from model.camera import letterbox

__all__ = ["to_network_input", "collate"]


def to_network_input(sample: dict, height: int, width: int,
                     colour_noise: float = 0.0, rng: np.random.Generator | None = None) -> dict:
    """Letterbox one decoded sample. Returns ``{"key", "image" float [3, H, W] in [0, 1],
    "target"}`` with boxes, keypoints, K and masks in network-input pixels."""
    image = sample["image"].float() / 255.0
    target = dict(sample["target"])
    in_height, in_width = image.shape[-2:]
    K, factor = letterbox(target["K"], in_width, in_height, width, height)
    new_size = (round(in_height * factor), round(in_width * factor))
    if new_size != (in_height, in_width):
        image = F.interpolate(image[None], size=new_size, mode="bilinear", align_corners=False,
                              antialias=True)[0]
        for name in ("boxes", "ignore_boxes"):
            if name in target:
                target[name] = target[name] * factor
        target["keypoints"] = target["keypoints"] * torch.tensor([factor, factor, 1.0])
        target["K"] = K
        for name, dtype in (("masks", torch.long), ("ignore", torch.bool)):
            if name in target:
                target[name] = F.interpolate(target[name][None, None].float(), size=new_size,
                                             mode="nearest")[0, 0].to(dtype)
    pad = (0, width - new_size[1], 0, height - new_size[0])
    image = F.pad(image, pad)
    for name in ("masks", "ignore"):
        if name in target:
            target[name] = F.pad(target[name], pad)
    if colour_noise > 0:
        scale = rng.uniform(1 - colour_noise, 1 + colour_noise, 3)
        image = (image * torch.tensor(scale, dtype=image.dtype)[:, None, None]).clamp(0, 1)
    return {"key": sample["key"], "image": image, "target": target}


def collate(samples: list[dict]) -> tuple[torch.Tensor, list[dict], list[str]]:
    """Stack images (all the network size) and keep targets as a list (one per image)."""
    return (torch.stack([s["image"] for s in samples]), [s["target"] for s in samples],
            [s["key"] for s in samples])
