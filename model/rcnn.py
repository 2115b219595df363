"""The network: a torchvision Faster R-CNN with an SMPL branch on RoIAlign 14x14 features.

Parts are injected as in torchvision's detection models:
- a ResNet-FPN backbone;
- torchvision's RPN (:class:`IgnoringRPN`);
- :class:`SMPLRoIHeads`, which is torchvision's box head plus the SMPL branch.

A training target may carry ``ignore_boxes`` ``[K, 4]`` beside its people's ``boxes``:
regions the detector is taught nothing about (people only partly inside a pretraining
crop, :func:`pipelines.augment.crop_person`). Anchors and proposals that match one are
neither positive nor negative, as torchvision does for matches between its thresholds.

The SMPL branch sees the *positive proposals* of the box sampler during training, and
the final detections at test time (as in the official code). The network predicts and
holds no loss state. In training it returns torchvision's detector losses and, as a
:class:`BranchOutput`, every positive proposal's SMPL-branch prediction, its box, its
matched ground-truth index and its score; :class:`model.smpl_criterion.SMPLCriterion`
turns those into the SMPL losses. In evaluation it returns one dict per image: boxes,
scores, rotmats, shape, cam and the full-image translation (``transl``).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import FeaturePyramidNetwork, box_iou
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from model.body import BodyModel
from model.camera import predicted_translations
from model.positives import balanced_positives
from model.precision import reduced_precision
from model.smpl_head import SMPLHead
from model.suppression import soft_nms
from ops.max_pool import MaxPool2d
from ops.roi_align import MultiScaleRoIAlign  # torchvision's, pooled as one sparse product on CPU

__all__ = ["FPN_LEVELS", "ModelConfig", "CoherentRCNN", "SMPLRoIHeads", "IgnoringRPN",
           "BranchOutput", "build_model", "with_ignored_boxes"]


FPN_LEVELS = ("0", "1", "2", "3", "pool")  # torchvision's names of P2 to P6 (strides 4-64)


@dataclass(frozen=True)
class ModelConfig:
    """``model`` section of params.yaml."""

    backbone: str  # resnet18 | resnet34 | resnet50 (the paper: resnet50)
    fpn_channels: int  # FPN, RPN and box-head width (the paper: 256)
    head_channels: int  # SMPL-branch convolution width (the paper: 256)
    precision: str  # fp32 | bf16: backbone, RPN head, box head, SMPL-branch convolutions
    #                 (the paper: fp32)
    imagenet_weights: bool  # needs torchvision's weight file in the torch hub cache
    trainable_layers: int  # ResNet stages trained (5 = all; the paper: 3 with frozen BN)
    anchor_sizes: tuple[int | None, ...]  # one per FPN level, P2 to P6 (None: the RPN
    #                                        skips that level; the box pooler still reads it)
    anchor_ratios: tuple[float, ...]  # height / width
    rpn_pre_nms_train: int
    rpn_post_nms_train: int
    rpn_pre_nms_test: int
    rpn_post_nms_test: int
    box_batch_size_per_image: int
    box_nms_thresh: float  # box-head NMS IoU (official 0.5)
    detections_per_image: int
    regressor_iterations: int
    dropout: float
    smpl_rois_per_image: int = 0  # SMPL-branch RoIs per training image (0: every positive,
    #                               the official behaviour; see model.positives)
    pose_anchors: int = 0  # anchor poses the SMPL regressor starts from (0: the mean pose,
    #                        the paper; see model.pose_anchors)
    box_suppression: str = "nms"  # nms (greedy at box_nms_thresh, official) | soft
    #                               (Gaussian Soft-NMS; see model.suppression)
    soft_nms_sigma: float = 0.5  # the Soft-NMS decay width (Bodla et al.'s default)

    def __post_init__(self) -> None:
        if self.box_suppression not in ("nms", "soft"):
            raise ValueError(f"model.box_suppression: nms or soft, got {self.box_suppression!r}")
        if len(self.anchor_sizes) != len(FPN_LEVELS) or all(
                size is None for size in self.anchor_sizes):
            raise ValueError(f"model.anchor_sizes: one size (or null) per FPN level "
                             f"{FPN_LEVELS}, at least one a size; got {list(self.anchor_sizes)}")


@dataclass
class BranchOutput:
    """The SMPL branch on the positive proposals of a training batch.

    Attributes:
        boxes: per image, ``[N_i, 4]`` the positive proposals (xyxy, input pixels).
        matched: per image, ``[N_i]`` the ground-truth person each is assigned to.
        scores: per image, ``[N_i]`` their person scores (detached).
        rotmats: ``[N, J, 3, 3]``, ``shape`` ``[N, S]``, ``cam`` ``[N, 3]``: the
            predictions of all images, concatenated in image order (N = sum of N_i).
        anchor_logits: ``[N, K]`` the pose-anchor scores (None without anchors).
    """

    boxes: list[torch.Tensor]
    matched: list[torch.Tensor]
    scores: list[torch.Tensor]
    rotmats: torch.Tensor
    shape: torch.Tensor
    cam: torch.Tensor
    anchor_logits: torch.Tensor | None = None


class SMPLRoIHeads(RoIHeads):
    """torchvision's box RoI heads plus the SMPL branch."""

    def __init__(self, *args, smpl_roi_pool: MultiScaleRoIAlign, smpl_head: SMPLHead,
                 smpl_rois_per_image: int = 0, soft_nms: tuple[float, int] | None = None,
                 **kwargs) -> None:
        """``soft_nms``: (sigma, detections kept) to apply Soft-NMS after torchvision's
        post-processing, whose own NMS and limit should then let every box through."""
        super().__init__(*args, **kwargs)
        self.smpl_roi_pool, self.smpl_head = smpl_roi_pool, smpl_head
        self.smpl_rois_per_image = smpl_rois_per_image
        self.soft_nms = soft_nms

    def forward(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
                image_shapes: list[tuple[int, int]], targets: list[dict] | None = None,
                intrinsics: list[torch.Tensor] | None = None
                ) -> list[dict] | tuple[dict[str, torch.Tensor], BranchOutput]:
        if self.training:
            proposals, matched, labels, regression_targets = self.select_training_samples(
                proposals, with_ignored_boxes(targets))
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        if not self.training:
            return self._detect(features, class_logits, box_regression, proposals,
                                image_shapes, intrinsics)
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels,
                                                      regression_targets)
        scores = F.softmax(class_logits, dim=-1)[:, 1].split([len(p) for p in proposals])
        positives = [self._smpl_positives(label, m, s)
                     for label, m, s in zip(labels, matched, scores, strict=True)]
        boxes = [p[pos] for p, pos in zip(proposals, positives, strict=True)]
        prediction = self.smpl_head(self.smpl_roi_pool(features, boxes, image_shapes))
        branch = BranchOutput(
            boxes=boxes, matched=[m[pos] for m, pos in zip(matched, positives, strict=True)],
            scores=[s[pos].detach() for s, pos in zip(scores, positives, strict=True)],
            rotmats=prediction["rotmats"], shape=prediction["shape"], cam=prediction["cam"],
            anchor_logits=prediction.get("anchor_logits"))
        return {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}, branch

    def _smpl_positives(self, labels: torch.Tensor, matched: torch.Tensor,
                        scores: torch.Tensor) -> torch.Tensor:
        """``[K]`` indices of one image's proposals that feed the SMPL branch: its
        positives, at most ``smpl_rois_per_image`` of them spread over the people."""
        positive = (labels > 0).nonzero()[:, 0]
        keep = balanced_positives(matched[positive], scores[positive], self.smpl_rois_per_image)
        return positive[keep]

    def _detect(self, features, class_logits, box_regression, proposals, image_shapes,
                intrinsics):
        boxes, scores, _ = self.postprocess_detections(class_logits, box_regression, proposals,
                                                       image_shapes)
        if self.soft_nms is not None:
            sigma, limit = self.soft_nms
            kept = [soft_nms(b, s, sigma, self.score_thresh, limit)
                    for b, s in zip(boxes, scores, strict=True)]
            boxes = [b[index] for b, (index, _) in zip(boxes, kept, strict=True)]
            scores = [decayed for _, decayed in kept]
        prediction = self.smpl_head(self.smpl_roi_pool(features, boxes, image_shapes))
        transl = predicted_translations(prediction["cam"], boxes, intrinsics)
        counts = [len(b) for b in boxes]
        split = {k: v.split(counts) for k, v in prediction.items()}
        return [{"boxes": boxes[i], "scores": scores[i], "rotmats": split["rotmats"][i],
                 "shape": split["shape"][i], "cam": split["cam"][i], "transl": transl[i]}
                for i in range(len(boxes))]


def with_ignored_boxes(targets: list[dict]) -> list[dict]:
    """Each target with its ``ignore_boxes`` appended to its ``boxes`` under label -1.
    torchvision's box matcher gives a proposal the label of its best-matching box, and
    its sampler takes label -1 neither as positive nor as negative; the people come
    first, so their indices (``matched``) are unchanged."""
    joined = []
    for target in targets:
        ignore = target.get("ignore_boxes")
        if ignore is None or len(ignore) == 0:
            joined.append(target)
            continue
        labels = torch.full((len(ignore),), -1, dtype=target["labels"].dtype,
                            device=ignore.device)
        joined.append({**target, "boxes": torch.cat([target["boxes"], ignore.to(
            target["boxes"].dtype)]), "labels": torch.cat([target["labels"], labels])})
    return joined


class IgnoringRPN(RegionProposalNetwork):
    """torchvision's RPN on the pyramid levels named ``levels`` (all when None), except
    that an anchor it would take as a negative is ignored (label -1) where it overlaps
    one of the target's ``ignore_boxes`` at least as much as the background threshold
    (IoU 0.3)."""

    def __init__(self, *args, levels: tuple[str, ...] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.levels = levels

    def forward(self, images: ImageList, features: dict[str, torch.Tensor],
                targets: list[dict] | None = None
                ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """torchvision's RPN on ``levels`` only: (proposals per image, losses)."""
        if self.levels is not None:
            features = OrderedDict((name, features[name]) for name in self.levels)
        return super().forward(images, features, targets)

    def assign_targets_to_anchors(self, anchors: list[torch.Tensor], targets: list[dict]
                                  ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        labels, matched_boxes = super().assign_targets_to_anchors(anchors, targets)
        for labels_in_image, anchors_in_image, target in zip(labels, anchors, targets,
                                                             strict=True):
            ignore = target.get("ignore_boxes")
            if ignore is None or len(ignore) == 0:
                continue
            overlap = box_iou(ignore, anchors_in_image).amax(dim=0)
            near = overlap >= self.proposal_matcher.low_threshold
            labels_in_image[near & (labels_in_image == 0)] = -1.0
        return labels, matched_boxes


class CoherentRCNN(nn.Module):
    """Backbone -> RPN -> :class:`SMPLRoIHeads`. Inputs are float images in [0, 1] of one
    size ``[B, 3, H, W]`` (the data transforms letterbox them), normalised here."""

    def __init__(self, backbone: nn.Module, rpn: RegionProposalNetwork,
                 roi_heads: SMPLRoIHeads, precision: str = "fp32") -> None:
        super().__init__()
        self.backbone, self.rpn, self.roi_heads = backbone, rpn, roi_heads
        self.precision = precision
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor, targets: list[dict] | None = None,
                intrinsics: list[torch.Tensor] | None = None
                ) -> list[dict] | tuple[dict[str, torch.Tensor], BranchOutput]:
        """Training: ``targets`` (per-image dicts with boxes and labels) -> (dict of
        detector losses, :class:`BranchOutput`). Evaluation: ``intrinsics`` (``[3, 3]``
        per image) -> one dict of detections per image."""
        if self.training and targets is None:
            raise ValueError("CoherentRCNN: training needs targets")
        if not self.training and intrinsics is None:
            raise ValueError("CoherentRCNN: evaluation needs each image's intrinsics")
        normalised = (images - self.mean) / self.std
        with reduced_precision(self.precision, images.device.type):
            features = self.backbone(normalised)
        features = OrderedDict((name, value.float()) for name, value in features.items())
        image_list = ImageList(normalised, [tuple(images.shape[-2:])] * images.shape[0])
        proposals, rpn_losses = self.rpn(image_list, features, targets)
        output = self.roi_heads(features, proposals, image_list.image_sizes, targets, intrinsics)
        if not self.training:
            return output
        roi_losses, branch = output
        return {**rpn_losses, **roi_losses}, branch


class ReducedPrecisionRPNHead(RPNHead):
    """torchvision's RPN head (its 3x3 convolution runs on every pyramid level: a tenth of
    a CPU step) under ``precision``, its scores and box deltas returned in float32."""

    def __init__(self, in_channels: int, num_anchors: int, precision: str) -> None:
        super().__init__(in_channels, num_anchors)
        self.precision = precision

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        with reduced_precision(self.precision, x[0].device.type):
            logits, deltas = super().forward(x)
        return [t.float() for t in logits], [t.float() for t in deltas]


class ReducedPrecisionTwoMLPHead(TwoMLPHead):
    """torchvision's box head (two fully connected layers, 7.5 million weights at
    FPN 128) under ``precision``, its output in float32."""

    def __init__(self, in_channels: int, representation_size: int, precision: str) -> None:
        super().__init__(in_channels, representation_size)
        self.precision = precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with reduced_precision(self.precision, x.device.type):
            return super().forward(x).float()


def _backbone(config: ModelConfig) -> nn.Module:
    """torchvision's ResNet-FPN, with an FPN of ``config.fpn_channels`` channels and the
    stem's max pooling of :mod:`ops.max_pool` (the same results, faster on the CPU)."""
    backbone = _resnet_fpn(config)
    stem = backbone.body.maxpool
    backbone.body.maxpool = MaxPool2d(stem.kernel_size, stem.stride, stem.padding)
    if config.fpn_channels != backbone.out_channels:
        # torchvision fixes its FPN at 256 channels; a narrower one is the same module
        in_channels = [block[0].in_channels for block in backbone.fpn.inner_blocks]
        backbone.fpn = FeaturePyramidNetwork(in_channels, config.fpn_channels,
                                             extra_blocks=LastLevelMaxPool())
        backbone.out_channels = config.fpn_channels
    return backbone


def _resnet_fpn(config: ModelConfig) -> nn.Module:
    weights = None
    if config.imagenet_weights:
        from torchvision.models import get_model_weights

        weights = get_model_weights(config.backbone).IMAGENET1K_V1
        cached = os.path.join(torch.hub.get_dir(), "checkpoints", weights.url.rsplit("/", 1)[-1])
        if not os.path.isfile(cached):
            raise FileNotFoundError(f"model.imagenet_weights needs {cached} (torchvision's "
                                    f"{config.backbone} ImageNet file, {weights.url}); crmh "
                                    "never downloads at run time: place the file there first")
        return resnet_fpn_backbone(backbone_name=config.backbone, weights=weights,
                                   trainable_layers=config.trainable_layers)
    # From scratch, frozen BatchNorm would be an identity: use GroupNorm, which trains
    # well at small batch and behaves the same under DDP as in one process.
    return resnet_fpn_backbone(backbone_name=config.backbone, weights=None,
                               norm_layer=partial(nn.GroupNorm, 16),
                               trainable_layers=config.trainable_layers)


def _suppression(config: ModelConfig) -> dict:
    """The box head's suppression arguments: greedy NMS inside torchvision's
    post-processing, or that step passing every box on to Soft-NMS."""
    if config.box_suppression == "nms":
        return {"nms_thresh": config.box_nms_thresh,
                "detections_per_img": config.detections_per_image}
    return {"nms_thresh": 1.0, "detections_per_img": config.rpn_post_nms_test,
            "soft_nms": (config.soft_nms_sigma, config.detections_per_image)}


def build_model(config: ModelConfig, body: BodyModel, seed: int) -> CoherentRCNN:
    """Assemble the network for ``body`` (Anny or SMPL), initialised from ``seed``."""
    torch.manual_seed(seed)
    backbone = _backbone(config)
    # the RPN's levels: those with an anchor size (whole-image people here never match
    # P2's 16-pixel anchors, README "Deviations")
    rpn_levels = [(name, size) for name, size in zip(FPN_LEVELS, config.anchor_sizes,
                                                     strict=True) if size is not None]
    anchors = AnchorGenerator(tuple((size,) for _, size in rpn_levels),
                              (tuple(config.anchor_ratios),) * len(rpn_levels))
    rpn = IgnoringRPN(
        anchors, ReducedPrecisionRPNHead(backbone.out_channels, len(config.anchor_ratios),
                                         config.precision),
        fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256, positive_fraction=0.5,
        pre_nms_top_n={"training": config.rpn_pre_nms_train, "testing": config.rpn_pre_nms_test},
        post_nms_top_n={"training": config.rpn_post_nms_train,
                        "testing": config.rpn_post_nms_test}, nms_thresh=0.7,
        levels=tuple(name for name, _ in rpn_levels))
    levels = list(FPN_LEVELS[:4])  # the box and SMPL poolers: P2 to P5
    head = SMPLHead(backbone.out_channels, body.num_joints, body.mean_shape(),
                    bounded_shape=body.name == "anny", iterations=config.regressor_iterations,
                    dropout=config.dropout, channels=config.head_channels,
                    precision=config.precision, pose_anchors=config.pose_anchors)
    roi_heads = SMPLRoIHeads(
        MultiScaleRoIAlign(levels, 7, 2),
        ReducedPrecisionTwoMLPHead(backbone.out_channels * 49, 1024, config.precision),
        FastRCNNPredictor(1024, 2),
        # the official R-CNN settings: IoU 0.5 for positives and negatives, 25 % positives
        fg_iou_thresh=0.5, bg_iou_thresh=0.5,
        batch_size_per_image=config.box_batch_size_per_image, positive_fraction=0.25,
        bbox_reg_weights=None, score_thresh=0.05,
        smpl_roi_pool=MultiScaleRoIAlign(levels, 14, 2), smpl_head=head,
        smpl_rois_per_image=config.smpl_rois_per_image, **_suppression(config))
    return CoherentRCNN(backbone, rpn, roi_heads, config.precision)
