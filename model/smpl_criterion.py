"""All SMPL-branch losses of one batch: the network predicts, this scores.

:class:`SMPLCriterion` is built once by the training stage, with the body model, the
discriminator, the adversarial prior and a frozen :class:`CriterionConfig`. It turns the
network's :class:`~model.rcnn.BranchOutput` (every positive proposal's prediction, box,
matched person and score) and the targets into a dict of named losses. Per image:

1. Each positive proposal's camera is turned into a full-image translation (the paper's
   conversion, with that image's intrinsics; :func:`model.camera.predicted_translations`).
2. Its COCO keypoints are projected and compared with those of its assigned person.
3. The 3D keypoints are compared root-centred.
4. The body parameters are compared where the person has them, and so are the
   pose-anchor scores with the person's nearest anchor (when the network has anchors).
5. The scene losses (interpenetration, depth order) use one prediction per person.

Proposals whose box is at most ``min_box_size`` pixels wide or high supervise nothing
(the official filter), and are never chosen for the scene losses. Each loss is averaged
per image, then over the images of the batch, except the interpenetration loss, which is
summed over the images as the official ``loss_sdf`` (so its weight does not shrink with
the batch). A batch split over DDP ranks gives the same gradient as one process, when
every rank has the same number of images.

Where a loss weight enters and where it is used: ``params.yaml`` ``loss_weights`` and
``losses.<variant>`` -> :class:`LossWeights` and :class:`SceneLosses` (read by
``stages/train.py``) -> :class:`CriterionConfig` -> :meth:`SMPLCriterion.forward`, which
multiplies each loss by its weight, under the same name all the way.

Adversarial prior: the generator term scores the predictions with the discriminator's
parameters *detached*. The discriminator terms (``adv_*`` keys) score detached
predictions and real samples in one call. One backward pass then trains each side with
only its own loss (DDP allows one forward and one backward per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call

from model.body import BodyModel
from model.camera import predicted_translations, project
from model.losses import (
    body_param_loss,
    discriminator_loss,
    generator_loss,
    keypoint_2d_loss,
    keypoint_3d_loss,
    pose_anchor_loss,
    scene_losses,
    select_per_person,
)
from model.rcnn import BranchOutput

__all__ = ["LossWeights", "SceneLosses", "CriterionConfig", "SMPLCriterion", "SUMMED"]

SUMMED = ("collision",)  # summed over the images of the batch, as the official loss_sdf


@dataclass(frozen=True)
class LossWeights:
    """``loss_weights`` section: the per-person losses (official tune values)."""

    keypoints_2d: float
    keypoints_3d: float
    rotmats: float
    shape: float
    vertices: float
    adversarial: float
    pose_anchor: float  # the pose-anchor classification (model.pose_anchors; not in the paper)


@dataclass(frozen=True)
class SceneLosses:
    """``losses.<variant>`` section: the fine-tune's scene losses."""

    collision: float  # weight of the interpenetration loss (official 0.01)
    depth_order: float  # weight of the depth-ordering loss (official 100)
    sigma: float  # Geman-McClure scale (official 0.2)
    robust: str  # "paper" (Eq. 3) or "official" (per vertex)
    grid: int  # SDF grid (official 32)


@dataclass(frozen=True)
class CriterionConfig:
    """The losses of one training phase."""

    weights: LossWeights
    adversarial: bool  # the adversarial prior is on (baseline and fine-tune)
    keypoint_criterion: str  # "l1" (pretrain, baseline) or "mse" (fine-tune), as official
    min_box_size: float  # boxes this small or smaller (pixels) supervise nothing
    scene: SceneLosses | None  # the fine-tune's scene losses; None: off

    def weight(self, name: str) -> float:
        """The weight of loss ``name`` in this phase (0: not computed)."""
        if name in ("collision", "depth_order"):
            return getattr(self.scene, name) if self.scene else 0.0
        if name == "adversarial" and not self.adversarial:
            return 0.0
        return getattr(self.weights, name)


class SMPLCriterion(nn.Module):
    """``criterion(branch, targets, image_size) -> dict of named losses``.

    Args:
        body: the body model the network's parameters pose.
        discriminator: the adversarial prior's discriminator (possibly DDP-wrapped).
        prior: ``prior(n) -> (rotmats, shape)``: n "real" samples for the discriminator.
        config: the phase's losses.
        anchors: ``[K, J - 1, 3, 3]`` the network's pose anchors (None: it has none).
    """

    def __init__(self, body: BodyModel, discriminator: nn.Module, prior,
                 config: CriterionConfig, anchors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.body, self.discriminator, self.prior, self.config = body, discriminator, prior, config
        self.anchors = anchors

    def forward(self, branch: BranchOutput, targets: list[dict],
                image_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        config = self.config
        output = self.body(branch.rotmats, branch.shape)
        transl = predicted_translations(branch.cam, branch.boxes, [t["K"] for t in targets])
        counts = [len(b) for b in branch.boxes]
        names = ("keypoints_2d", "keypoints_3d", "rotmats", "shape", "vertices", "pose_anchor",
                 "collision", "depth_order")
        per_image: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        logits = (branch.anchor_logits.split(counts) if branch.anchor_logits is not None
                  else [None] * len(counts))
        pieces = zip(output.vertices.split(counts), output.joints["coco17"].split(counts),
                     output.joints["h36m17"].split(counts), branch.rotmats.split(counts),
                     branch.shape.split(counts), logits, strict=True)
        posed = self._annotated_vertices(targets)
        for i, (vertices, coco, h36m, rotmats, shape, anchor_logits) in enumerate(pieces):
            image = self._image_losses(vertices, coco, h36m, rotmats, shape, anchor_logits,
                                       branch.boxes[i], branch.matched[i], branch.scores[i],
                                       transl[i], targets[i], image_size, posed[i])
            for name, value in image.items():
                per_image[name].append(value)
        losses = {f"loss_{name}": config.weight(name) * _reduce(name, values)
                  for name, values in per_image.items() if values and config.weight(name) > 0}
        if config.weight("adversarial") > 0:
            losses.update(self._adversarial(branch.rotmats, branch.shape,
                                            config.weight("adversarial")))
        return losses

    @torch.no_grad()
    def _annotated_vertices(self, targets: list[dict]) -> list[torch.Tensor | None]:
        """Per image, ``[P_i, V, 3]`` the vertices of its annotated people's body
        parameters (None without them): every image's people posed in one body-model
        call, each person once however many proposals match them."""
        with_body = [i for i, t in enumerate(targets) if "rotmats" in t]
        posed: list[torch.Tensor | None] = [None] * len(targets)
        if not with_body:
            return posed
        vertices = self.body(torch.cat([targets[i]["rotmats"] for i in with_body]),
                             torch.cat([targets[i]["shape"] for i in with_body])).vertices
        counts = [len(targets[i]["rotmats"]) for i in with_body]
        for i, image_vertices in zip(with_body, vertices.split(counts), strict=True):
            posed[i] = image_vertices
        return posed

    def _image_losses(self, vertices, coco, h36m, rotmats, shape, anchor_logits, boxes,
                      matched, scores, transl, target, image_size,
                      annotated_vertices) -> dict[str, torch.Tensor]:
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
            losses.update(body_param_loss(rotmats, target["rotmats"][matched], shape,
                                          target["shape"][matched], vertices,
                                          annotated_vertices[matched],
                                          target["has_body"][matched] & valid))
        if anchor_logits is not None:
            losses["pose_anchor"] = self._anchor_loss(anchor_logits, matched, valid, target)
        losses.update(dict.fromkeys(("collision", "depth_order"), zero))
        scene = config.scene
        want = (config.weight("collision") > 0, config.weight("depth_order") > 0)
        if scene is not None and any(want):
            eligible = torch.where(valid, matched, torch.full_like(matched, -1))
            chosen = select_per_person(eligible, scores, len(target["boxes"]))
            losses.update(scene_losses(vertices + transl[:, None], chosen, self.body.faces,
                                       target["K"], image_size, target.get("masks"),
                                       scene.sigma, scene.robust, scene.grid, want))
        return losses

    def _anchor_loss(self, logits, matched, valid, target) -> torch.Tensor:
        if self.anchors is None:
            raise ValueError("SMPLCriterion: the network scores pose anchors, but the "
                             "criterion was given none")
        if "rotmats" not in target or not matched.numel():
            return logits.sum() * 0.0
        return pose_anchor_loss(logits, target["rotmats"][matched], self.anchors,
                                target["has_body"][matched] & valid)

    def _adversarial(self, rotmats, shape, weight) -> dict[str, torch.Tensor]:
        module = getattr(self.discriminator, "module", self.discriminator)  # under DDP
        frozen = {name: p.detach() for name, p in module.named_parameters()}
        fake_for_generator = functional_call(module, frozen, (rotmats, shape))
        real_rotmats, real_shape = self.prior(max(len(rotmats), 1))
        count = len(real_rotmats)
        scores = self.discriminator(torch.cat([real_rotmats.to(rotmats), rotmats.detach()]),
                                    torch.cat([real_shape.to(shape), shape.detach()]))
        terms = discriminator_loss(scores[:count], scores[count:])
        return {"loss_adversarial": weight * generator_loss(fake_for_generator),
                "adv_loss_real": weight * terms["real"], "adv_loss_fake": weight * terms["fake"]}


def _reduce(name: str, per_image: list[torch.Tensor]) -> torch.Tensor:
    """Mean over the batch's images; the collision loss is summed over the images, as the
    official ``loss_sdf``, but over the *global* batch (each DDP rank scales its sum by
    the number of ranks, whose gradients DDP averages), so N processes equal one with the
    same global batch. The official code summed over each GPU's images only (README,
    deviations)."""
    values = torch.stack(per_image)
    if name not in SUMMED:
        return values.mean()
    ranks = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    return values.sum() * ranks
