"""All SMPL-branch losses of one batch, weighted by the phase's :class:`LossConfig`.

Per image:
1. Each positive proposal's camera is turned into a full-image translation (the paper's
   conversion, with that image's intrinsics).
2. Its COCO keypoints are projected and compared with those of its assigned person.
3. The 3D keypoints are compared root-centred.
4. The body parameters are compared where the person has them.
5. The scene losses (interpenetration, depth order) use one prediction per person.
Proposals whose box is at most ``min_box_size`` pixels wide or high supervise nothing
(the official filter), and are never chosen for the scene losses. Each loss is averaged
per image, then over the images of the batch, except the interpenetration loss, which is
summed over the images as the official ``loss_sdf`` (so its weight does not shrink with
the batch). A batch split over DDP ranks gives the same gradient as one process, when
every rank has the same number of images.

Adversarial prior: the generator term scores the predictions with the discriminator's
parameters *detached*. The discriminator terms (``adv_*`` keys) score detached
predictions and real samples. One backward pass then trains each side with only its
own loss (DDP allows one backward per forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call

from model.body import BodyModel
from model.camera import box_camera_to_translation, project
from model.discriminator import Discriminator
from model.losses import (
    body_param_loss,
    discriminator_loss,
    generator_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    scene_losses,
    select_per_person,
)

__all__ = ["LossConfig", "SMPLCriterion", "MIN_CAMERA_SCALE"]

SUMMED = ("collision",)  # summed over the images of the batch, as the official loss_sdf

MIN_CAMERA_SCALE = 1e-2  # s <= 0 would put the body behind the camera


@dataclass(frozen=True)
class LossConfig:
    """The losses of one training phase."""

    weights: dict  # keypoints_2d, keypoints_3d, rotmats, shape, vertices, adversarial,
    #                collision, depth_order (0 switches a loss off)
    keypoint_criterion: str  # "l1" (pretrain, baseline) or "mse" (fine-tune), as official
    collision_sigma: float
    collision_robust: str  # "paper" or "official"
    collision_grid: int
    min_box_size: float = 5.0  # boxes narrower or lower than this (pixels) are not supervised


class SMPLCriterion(nn.Module):
    def __init__(self, body: BodyModel, discriminator: Discriminator, prior) -> None:
        super().__init__()
        # Not a submodule: the body model is fixed and large; the trainer moves it.
        object.__setattr__(self, "body", body)
        self.discriminator, self.prior = discriminator, prior
        self.config: LossConfig | None = None

    def translations(self, cam: torch.Tensor, boxes: list[torch.Tensor],
                     intrinsics: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-image ``[N_i, 3]`` translations of the predictions in ``boxes``."""
        cams = cam.split([len(b) for b in boxes])
        safe = [torch.cat([c[:, :1].clamp(min=MIN_CAMERA_SCALE), c[:, 1:]], 1) for c in cams]
        return [box_camera_to_translation(c, b, K[0, 0], K[:2, 2])
                for c, b, K in zip(safe, boxes, intrinsics, strict=True)]

    def forward(self, prediction, boxes, matched, scores, targets, image_size):
        config = self.config
        if config is None:
            raise RuntimeError("SMPLCriterion: call model.set_losses(...) before training")
        weights = config.weights
        output = self.body(prediction["rotmats"], prediction["shape"])
        transl = self.translations(prediction["cam"], boxes, [t["K"] for t in targets])
        counts = [len(b) for b in boxes]
        per_image = {name: [] for name in ("keypoints_2d", "keypoints_3d", "rotmats", "shape",
                                           "vertices", "collision", "depth_order")}
        pieces = zip(output.vertices.split(counts), output.joints["coco17"].split(counts),
                     output.joints["h36m17"].split(counts), prediction["rotmats"].split(counts),
                     prediction["shape"].split(counts), strict=True)
        for i, (vertices, coco, h36m, rotmats, shape) in enumerate(pieces):
            image = self._image_losses(vertices, coco, h36m, rotmats, shape, boxes[i],
                                       matched[i], scores[i], transl[i], targets[i], image_size)
            for name, value in image.items():
                per_image[name].append(value)
        losses = {f"loss_{name}": weights[name] * _reduce(name, values)
                  for name, values in per_image.items() if weights[name] > 0}
        if weights["adversarial"] > 0:
            losses.update(self._adversarial(prediction["rotmats"], prediction["shape"],
                                            weights["adversarial"]))
        return losses

    def _image_losses(self, vertices, coco, h36m, rotmats, shape, boxes, matched, scores,
                      transl, target, image_size) -> dict[str, torch.Tensor]:
        config = self.config
        # The official small-box filter: proposals this small supervise nothing.
        size = boxes[:, 2:] - boxes[:, :2]
        valid = (size > config.min_box_size).all(dim=1)
        zero = vertices.sum() * 0.0
        losses = dict.fromkeys(("keypoints_3d", "rotmats", "shape", "vertices"), zero)
        keypoints = project(coco + transl[:, None], target["K"])
        gt_2d = target["keypoints"][matched] * valid[:, None, None]
        losses["keypoints_2d"] = keypoint_2d_loss(keypoints, gt_2d, boxes,
                                                  config.keypoint_criterion)
        if "kp3d" in target:
            gt_3d = target["kp3d"][matched].clone()
            gt_3d[..., 3] *= valid[:, None]  # small boxes: no valid joint
            losses["keypoints_3d"] = keypoint_3d_loss(h36m, gt_3d, config.keypoint_criterion)
        if "rotmats" in target and matched.numel():
            with torch.no_grad():
                gt_body = self.body(target["rotmats"][matched], target["shape"][matched])
            losses.update(body_param_loss(rotmats, target["rotmats"][matched], shape,
                                          target["shape"][matched], vertices, gt_body.vertices,
                                          target["has_body"][matched] & valid))
        weights = config.weights
        want = (weights["collision"] > 0, weights["depth_order"] > 0)
        losses.update(dict.fromkeys(("collision", "depth_order"), zero))
        if any(want):
            eligible = torch.where(valid, matched, torch.full_like(matched, -1))
            chosen = select_per_person(eligible, scores, len(target["boxes"]))
            losses.update(scene_losses(vertices + transl[:, None], chosen, self.body.faces,
                                       target["K"], image_size, target.get("masks"),
                                       config.collision_sigma, config.collision_robust,
                                       config.collision_grid, want))
        return losses

    def _adversarial(self, rotmats, shape, weight) -> dict[str, torch.Tensor]:
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        fake_for_generator = functional_call(self.discriminator, frozen, (rotmats, shape))
        real_rotmats, real_shape = self.prior(max(len(rotmats), 1))
        real = self.discriminator(real_rotmats.to(rotmats), real_shape.to(shape))
        fake = self.discriminator(rotmats.detach(), shape.detach())
        terms = discriminator_loss(real, fake)
        return {"loss_adversarial": weight * generator_loss(fake_for_generator),
                "adv_loss_real": weight * terms["real"], "adv_loss_fake": weight * terms["fake"]}


def _reduce(name: str, per_image: list[torch.Tensor]) -> torch.Tensor:
    """Mean over the batch's images; the collision loss is summed over the images of the
    *global* batch, as the official ``loss_sdf`` (each DDP rank scales its sum by the
    number of ranks, whose gradients DDP averages)."""
    values = torch.stack(per_image)
    if name not in SUMMED:
        return values.mean()
    ranks = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    return values.sum() * ranks
