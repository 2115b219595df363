"""Training augmentations on decoded samples (before letterboxing): horizontal flips and
the official pretraining crops.

- :func:`flip_sample` mirrors an image left-right and everything annotated on it, as
  the official pipeline does with p = 0.5: the keypoints are mirrored and their
  left/right joints swapped, the principal point moves to ``W - c_x`` so the camera
  conversion stays exact, the 3D joints and translations are mirrored through x = 0,
  and the body rotations are mirrored joint by joint (:mod:`model.mirror`).
- :func:`crop_person` cuts the official pretraining crop: a square of 1.2 times the
  longer side of one person's box, centred on it, resized to 256 x 256. Officially only
  that person is annotated in the crop (its box, keypoints, 3D joints, body); with
  ``others`` the other people with at least that share of their box inside the crop
  stay annotated too (otherwise the detector learns them as background). The
  intrinsics follow the crop, so 3D stays in the original camera frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from model.body import COCO17_NAMES, H36M17_NAMES
from model.camera import scale_intrinsics, shift_intrinsics
from model.mirror import mirror_index, mirror_points, mirror_rotations
from pipelines.shards import BODY_ARRAYS

__all__ = ["flip_sample", "crop_person", "random_person", "COCO17_MIRROR", "H36M17_MIRROR"]

COCO17_MIRROR = mirror_index(COCO17_NAMES)
H36M17_MIRROR = mirror_index(H36M17_NAMES)


def flip_sample(sample: dict, rotation_mirror: list[int] | None) -> dict:
    """The left-right mirror image of a decoded sample.

    Args:
        rotation_mirror: the body model's rotation partners (:func:`mirror_index` of its
            ``rotation_names``); needed when the sample has body parameters.
    """
    width = sample["image"].shape[-1]
    target = dict(sample["target"])
    boxes = target["boxes"]
    target["boxes"] = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                                   boxes[:, 3]], dim=1)
    keypoints = target["keypoints"][:, COCO17_MIRROR].clone()
    labelled = keypoints[..., 2] > 0
    keypoints[..., 0] = torch.where(labelled, width - keypoints[..., 0], keypoints[..., 0])
    target["keypoints"] = keypoints
    K = target["K"].clone()
    K[0, 2] = width - K[0, 2]
    K[0, 1] = -K[0, 1]
    target["K"] = K
    for name in ("masks", "ignore"):
        if name in target:
            target[name] = target[name].flip(-1)
    if "kp3d" in target:
        kp3d = target["kp3d"]
        target["kp3d"] = torch.cat([mirror_points(kp3d[..., :3], H36M17_MIRROR),
                                    kp3d[:, H36M17_MIRROR, 3:]], dim=-1)
    if "rotmats" in target:
        if rotation_mirror is None:
            raise ValueError(f"{sample['key']}: flipping body parameters needs the body "
                             "model's rotation partners")
        target["rotmats"] = mirror_rotations(target["rotmats"], rotation_mirror)
        target["transl"] = mirror_points(target["transl"])
    return {**sample, "image": sample["image"].flip(-1), "target": target}


def crop_person(sample: dict, person: int, size: int = 256, scale: float = 1.2,
                others: float | None = None, partial: str = "background") -> dict:
    """The official single-person crop of ``person``: a ``size x size`` image of the
    square of side ``scale x max(box w, h)`` centred on its box.

    Args:
        others: ``None`` (official): only ``person`` is annotated in the crop. A share
            in (0, 1]: every other person with at least that share of their box's area
            inside the crop's square stays annotated too (boxes clipped to the crop).
        partial: what the crop says about the other people partly inside it but not
            annotated: ``"background"`` (official: nothing, so the detector learns their
            visible part as background) or ``"ignore"`` (their boxes, clipped to the
            crop, become ``target["ignore_boxes"]``: the detector is taught neither way
            there; see :mod:`model.rcnn`).
    """
    target = sample["target"]
    x1, y1, x2, y2 = target["boxes"][person].tolist()
    side = max(round(scale * max(x2 - x1, y2 - y1)), 1)
    left, top = round((x1 + x2) / 2 - side / 2), round((y1 + y2) / 2 - side / 2)
    factor = size / side
    image = _window(sample["image"], left, top, side)
    image = F.interpolate(image[None].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True)[0].round().clamp(0, 255)
    if partial not in ("background", "ignore"):
        raise ValueError(f"crop partial must be 'background' or 'ignore', got {partial!r}")
    window = (left, top, left + side, top + side)
    keep = _kept_people(target["boxes"], person, window, others)

    def in_crop(boxes: torch.Tensor) -> torch.Tensor:
        return ((boxes - torch.tensor([left, top, left, top])) * factor).clamp(0, size)

    crop = {"boxes": in_crop(target["boxes"][keep]), "labels": target["labels"][keep],
            "K": scale_intrinsics(shift_intrinsics(target["K"], -left, -top), factor)}
    if partial == "ignore":
        crop["ignore_boxes"] = in_crop(target["boxes"][_partly_inside(target["boxes"], window,
                                                                      keep)])
    keypoints = target["keypoints"][keep].clone()
    keypoints[..., :2] = (keypoints[..., :2] - torch.tensor([left, top])) * factor
    inside = ((keypoints[..., :2] >= 0) & (keypoints[..., :2] < size)).all(dim=-1)
    keypoints[..., 2] *= inside
    crop["keypoints"] = keypoints
    for name in ("kp3d", *BODY_ARRAYS):
        if name in target:
            crop[name] = target[name][keep]
    meta = {**sample["meta"], "width": size, "height": size, "num_people": len(keep),
            "has_masks": False, "has_ignore": False, "crop_of": person}
    return {**sample, "image": image.to(torch.uint8), "meta": meta, "target": crop}


def _kept_people(boxes: torch.Tensor, person: int, window: tuple[int, int, int, int],
                 others: float | None) -> torch.Tensor:
    """Indices of the people annotated in a crop of ``person`` (the square ``window``,
    x1 y1 x2 y2 in image pixels): ``person``, and with ``others`` every person with at
    least that share of their box's area inside the window, in their original order."""
    if others is None:
        return torch.tensor([person])
    if not 0 < others <= 1:
        raise ValueError(f"crop_others must be in (0, 1] or null, got {others}")
    inside, area = _areas(boxes, window)
    kept = inside >= others * area.clamp(min=1e-6)
    kept[person] = True
    return kept.nonzero()[:, 0]


def _partly_inside(boxes: torch.Tensor, window: tuple[int, int, int, int],
                   kept: torch.Tensor) -> torch.Tensor:
    """Indices of the people not in ``kept`` whose box overlaps ``window`` with some area."""
    partly = _areas(boxes, window)[0] > 0
    partly[kept] = False
    return partly.nonzero()[:, 0]


def _areas(boxes: torch.Tensor, window: tuple[int, int, int, int]
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``[P]`` each box's area inside ``window`` (x1 y1 x2 y2), and ``[P]`` its area."""
    lower = torch.maximum(boxes[:, :2], torch.tensor(window[:2], dtype=boxes.dtype))
    upper = torch.minimum(boxes[:, 2:], torch.tensor(window[2:], dtype=boxes.dtype))
    inside = (upper - lower).clamp(min=0).prod(dim=1)
    return inside, (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=1)


def _window(image: torch.Tensor, left: int, top: int, side: int) -> torch.Tensor:
    """``image [C, H, W]``'s square ``[top, top + side) x [left, left + side)``, zero
    outside the image."""
    height, width = image.shape[-2:]
    window = torch.zeros((image.shape[0], side, side), dtype=image.dtype)
    rows = slice(max(top, 0), min(top + side, height))
    cols = slice(max(left, 0), min(left + side, width))
    if rows.start < rows.stop and cols.start < cols.stop:
        window[:, rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = \
            image[:, rows, cols]
    return window


def random_person(sample: dict, rng: np.random.Generator) -> int | None:
    """A person to crop: one with a box and at least one labelled keypoint, or ``None``."""
    target = sample["target"]
    candidates = [i for i in range(len(target["boxes"]))
                  if (target["keypoints"][i, :, 2] > 0).any()
                  and (target["boxes"][i, 2:] > target["boxes"][i, :2]).all()]
    return int(rng.choice(candidates)) if candidates else None
