"""Test-time coherence refinement: the paper's two scene losses applied to one image's
predictions, as an optional last step after the network.

The paper uses the interpenetration and depth-order losses only to train. A trained
network can still put people inside each other or in the wrong depth order; this step
optimises each image's predicted people for a few steps (Adam on their 6D rotations,
shape and translation) to make them coherent, while keeping them on the network's
evidence. The objective, all terms weighted by :class:`RefineConfig`:

1. **Interpenetration**: :func:`ops.collision.collision_loss` (Eq. 2-3, the released
   per-vertex form), the training loss itself.
2. **Depth order** from the prediction's own evidence (the detector's boxes): where two
   predicted people overlap in the image, the one whose box reaches lower in the image
   (whose feet stand nearer the camera on the ground) must be the one in front. This
   pseudo instance map (:func:`pseudo_instances`) feeds
   :func:`ops.depth_order.depth_order_loss` (Eq. 4) on depth maps rendered at
   ``render_scale`` of the image. It steers which person ends in front while colliding
   people are pushed apart.
3. **Agreement with the network**: each person's projected COCO joints stay near the
   network's (Geman-McClure on their offsets in box units), and the rotations and shape
   near the network's (squared differences).
4. **Pose prior**: the trained discriminator's adversarial term (the model file keeps
   the discriminator).

Steps stop as soon as no pair of people intersects, so an image without collisions takes
zero steps and is returned unchanged (bit for bit). The depth-order term does not run on
its own: measured on two non-colliding people in the wrong order, it lowered its loss
by shrinking their overlap rather than by reordering them (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from model.body import BodyModel, posed_in_camera
from model.camera import project, scale_intrinsics
from model.discriminator import build_discriminator
from model.losses import generator_loss
from ops.collision import collision_loss, geman_mcclure
from ops.depth_order import depth_order_loss
from ops.geometry import matrix_to_rot6d, rot6d_to_matrix
from ops.raster import depth_maps

__all__ = ["RefineConfig", "Refined", "RefiningNetwork", "refine", "refine_detections",
           "pseudo_instances", "overlapping_in_image", "with_refinement"]


@dataclass(frozen=True)
class RefineConfig:
    """``refine`` section of params.yaml."""

    steps: int  # most optimisation steps per image
    lr: float  # Adam's learning rate
    collision: float  # weight of the interpenetration loss
    depth_order: float  # weight of the depth-order loss on the pseudo instance map
    keypoints_2d: float  # weight of the agreement with the network's projected joints
    pose: float  # weight of the agreement with its rotations and shape
    prior: float  # weight of the discriminator's adversarial term
    sigma: float  # Geman-McClure scale of the interpenetration loss (official 0.2)
    grid: int  # SDF grid of the interpenetration loss (official 32)
    render_scale: float  # depth maps at this fraction of the image size
    order_margin: float  # the box-bottom cue decides only beyond this share of box height
    min_score: float  # detections scoring below this are left as they are (duplicates)


@dataclass
class Refined:
    """Refined people (``[P, ...]`` as the input), how many steps it took, and the
    interpenetration and depth-order losses before each step (and after the last)."""

    rotmats: torch.Tensor
    shape: torch.Tensor
    transl: torch.Tensor
    steps: int
    history: list[tuple[float, float]] = field(default_factory=list)


def pseudo_instances(depths: torch.Tensor, boxes: torch.Tensor, scale: float,
                     margin: float) -> torch.Tensor:
    """``[H, W]`` instance ids (person i + 1; 0: background or unknown) from rendered
    ``depths [P, H, W]``: a pixel covered by several people goes to the one whose box's
    bottom edge (``boxes [P, 4]``, image pixels, ``scale`` times the depth maps') is
    lowest in the image, when it is lower than every other covering person's by at least
    ``margin`` times its box height; otherwise the cue cannot tell and the pixel is 0."""
    covered = torch.isfinite(depths)  # [P, H, W]
    bottom = boxes[:, 3] * scale
    height = (boxes[:, 3] - boxes[:, 1]) * scale
    rank = torch.where(covered, bottom[:, None, None], torch.tensor(-float("inf")))
    if len(boxes) >= 2:
        top2, owner = rank.topk(2, dim=0)
        first, second, owner = top2[0], top2[1], owner[0]
    else:
        first, owner = rank.max(dim=0)
        second = torch.full_like(first, -float("inf"))
    clear = first - second >= margin * height[owner]
    return torch.where(covered.any(dim=0) & clear, owner + 1, torch.zeros_like(owner))


def _check(name: str, value: torch.Tensor) -> None:
    if not torch.isfinite(value).all():
        raise ValueError(f"refine: the predicted {name} contain NaN or inf")


def overlapping_in_image(boxes: torch.Tensor) -> torch.Tensor:
    """``[P]`` bool: does person i's box overlap another person's? Only such people can
    intersect in 3D or occlude each other, so only they are refined."""
    low, high = boxes[:, :2], boxes[:, 2:]
    overlap = ((low[:, None] < high[None]) & (low[None] < high[:, None])).all(dim=-1)
    overlap.fill_diagonal_(False)
    return overlap.any(dim=1)


def refine(rotmats: torch.Tensor, shape: torch.Tensor, transl: torch.Tensor,
           boxes: torch.Tensor, image_size: tuple[int, int], K: torch.Tensor, body: BodyModel,
           config: RefineConfig, discriminator: torch.nn.Module | None = None) -> Refined:
    """Refine one image's predicted people.

    Args:
        rotmats: ``[P, J, 3, 3]``, shape ``[P, S]``, transl ``[P, 3]`` (camera frame),
            boxes ``[P, 4]`` xyxy: the network's people.
        image_size: ``(height, width)`` of the image ``K [3, 3]`` belongs to.
        discriminator: the trained pose discriminator (the prior term), or None.
    Returns:
        every person, refined where their image boxes overlap another's, else unchanged.
    """
    for name, value in (("rotations", rotmats), ("shapes", shape), ("translations", transl),
                        ("boxes", boxes)):
        _check(name, value)
    involved = overlapping_in_image(boxes) if len(boxes) else torch.zeros(0, dtype=torch.bool)
    if int(involved.sum()) < 2 or config.steps <= 0:
        return Refined(rotmats, shape, transl, 0)
    part = _refine_people(rotmats[involved], shape[involved], transl[involved], boxes[involved],
                          image_size, K, body, config, discriminator)
    if part.steps == 0:  # already coherent: the input, bit for bit
        return Refined(rotmats, shape, transl, 0, part.history)
    out_rot, out_shape, out_transl = rotmats.clone(), shape.clone(), transl.clone()
    out_rot[involved], out_shape[involved], out_transl[involved] = (
        part.rotmats, part.shape, part.transl)
    return Refined(out_rot, out_shape, out_transl, part.steps, part.history)


def _refine_people(rotmats: torch.Tensor, shape: torch.Tensor, transl: torch.Tensor,
                   boxes: torch.Tensor, image_size: tuple[int, int], K: torch.Tensor,
                   body: BodyModel, config: RefineConfig,
                   discriminator: torch.nn.Module | None) -> Refined:
    """The optimisation, over people that all take part in it (gradients on, whatever
    the caller's mode: evaluation runs under ``torch.no_grad``)."""
    with torch.enable_grad():
        return _optimise(rotmats, shape, transl, boxes, image_size, K, body, config,
                         discriminator)


def _optimise(rotmats: torch.Tensor, shape: torch.Tensor, transl: torch.Tensor,
              boxes: torch.Tensor, image_size: tuple[int, int], K: torch.Tensor,
              body: BodyModel, config: RefineConfig,
              discriminator: torch.nn.Module | None) -> Refined:
    # 1. What the network said: its 2D joints, and the pseudo instance map.
    size = (max(round(image_size[0] * config.render_scale), 1),
            max(round(image_size[1] * config.render_scale), 1))
    K_small = scale_intrinsics(K, config.render_scale)
    faces = body.faces
    with torch.no_grad():
        start = posed_in_camera(body, rotmats, shape, transl)
        target_2d = project(start.joints["coco17"], K)  # [P, 17, 2]
        pseudo = pseudo_instances(depth_maps(start.vertices, faces, K_small, size), boxes,
                                  config.render_scale, config.order_margin)
    extent = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)[:, None]  # [P, 1, 2]

    # 2. Adam over 6D rotations, shape and translation, from the network's values.
    start_6d = matrix_to_rot6d(rotmats).detach()
    rot6d = start_6d.clone().requires_grad_(True)
    shape_v = shape.detach().clone().requires_grad_(True)
    transl_v = transl.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([rot6d, shape_v, transl_v], lr=config.lr)
    history: list[tuple[float, float]] = []
    for step in range(config.steps + 1):
        current = rot6d_to_matrix(rot6d)
        posed = posed_in_camera(body, current, shape_v, transl_v)
        collision = collision_loss(posed.vertices, faces, config.grid, config.sigma, "official")
        order = depth_order_loss(depth_maps(posed.vertices, faces, K_small, size), pseudo)
        history.append((float(collision.detach()), float(order.detach())))
        if history[-1][0] == 0.0 or step == config.steps:  # no pair collides, or out of steps
            break
        # 3. The objective: coherence, kept on the network's evidence and the prior.
        offsets = (project(posed.joints["coco17"], K) - target_2d) / extent
        total = (config.collision * collision + config.depth_order * order
                 + config.keypoints_2d * geman_mcclure(offsets, 0.1).mean()
                 + config.pose * ((rot6d - start_6d).square().mean()
                                  + (shape_v - shape).square().mean()))
        if discriminator is not None and config.prior > 0:
            total = total + config.prior * generator_loss(discriminator(current, shape_v))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    # an unchanged scene is returned as given, bit for bit
    if step == 0:
        return Refined(rotmats, shape, transl, 0, history)
    return Refined(current.detach(), shape_v.detach(), transl_v.detach(), step, history)


def refine_detections(detections: dict[str, torch.Tensor], K: torch.Tensor,
                      image_size: tuple[int, int], body: BodyModel, config: RefineConfig,
                      discriminator: torch.nn.Module | None = None
                      ) -> tuple[dict[str, torch.Tensor], Refined]:
    """One image's network detections (``boxes, scores, rotmats, shape, transl`` in the
    frame of ``K`` and ``image_size``) with the people scoring >= ``config.min_score``
    refined; lower-scoring detections (mostly duplicates) are left as they are."""
    confident = detections["scores"] >= config.min_score
    result = refine(detections["rotmats"][confident], detections["shape"][confident],
                    detections["transl"][confident], detections["boxes"][confident],
                    image_size, K, body, config, discriminator)
    out = dict(detections)
    if result.steps:
        for key, value in (("rotmats", result.rotmats), ("shape", result.shape),
                           ("transl", result.transl)):
            out[key] = detections[key].clone()
            out[key][confident] = value
    return out, result


class RefiningNetwork(torch.nn.Module):
    """A trained network followed by :func:`refine_detections` on each image; called as
    the network is in evaluation (``images [B, 3, H, W]``, ``intrinsics``), it adds
    ``refine_steps`` to each image's detections."""

    def __init__(self, network: torch.nn.Module, body: BodyModel, config: RefineConfig,
                 discriminator: torch.nn.Module | None) -> None:
        super().__init__()
        self.network, self.body, self.config = network, body, config
        self.discriminator = discriminator

    def forward(self, images: torch.Tensor, intrinsics: list[torch.Tensor]) -> list[dict]:
        detections = self.network(images, intrinsics=intrinsics)
        size = tuple(images.shape[-2:])
        out = []
        for image_detections, K in zip(detections, intrinsics, strict=True):
            refined, result = refine_detections(image_detections, K, size, self.body,
                                                self.config, self.discriminator)
            refined["refine_steps"] = torch.tensor(result.steps)
            out.append(refined)
        return out


def with_refinement(network: torch.nn.Module, state: dict, body: BodyModel,
                    config: RefineConfig | None = None) -> RefiningNetwork:
    """``network`` (loaded from a model file's ``state``) followed by refinement with
    ``config``, or with the configuration the model file carries (``refine``)."""
    if config is None:
        if "refine" not in state:
            raise ValueError("this model file carries no refine configuration; give one")
        config = RefineConfig(**state["refine"])
    discriminator = build_discriminator(body.num_joints, body.shape_dim, 0)
    discriminator.load_state_dict(state["discriminator"])
    return RefiningNetwork(network, body, config, discriminator.eval()).eval()
