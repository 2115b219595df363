"""What one step of test-time refinement (:mod:`pipelines.refine`) evaluates: the
people of one image as the network gave them (:class:`Evidence`), what is optimised
(:class:`Variables`), and the terms of the objective -- interpenetration, depth order,
root ranking and agreement with the network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch

from model.body import BodyModel, posed_in_camera
from model.camera import project, scale_intrinsics
from ops.collision import collision_loss, geman_mcclure
from ops.depth_order import ordering_mistakes
from ops.geometry import matrix_to_rot6d
from ops.raster import depth_maps
from ops.sdf import SDFGrid
from pipelines.box_cues import pseudo_instances, ranked_pairs
from pipelines.root_rays import RAY_LR_SHARE, depth_free_2d, from_ray_depth, to_ray_depth

if TYPE_CHECKING:
    from pipelines.refine import RefineConfig

__all__ = ["Evidence", "Variables", "Order", "render", "order_of", "scene_terms", "ranking",
           "agreement", "interpenetration", "RANK_MARGIN"]


@dataclass
class Evidence:
    """What the network said about the people of one image, and the fixed settings."""

    rot6d: torch.Tensor  # [P, J, 6] its rotations
    shape: torch.Tensor  # [P, S]
    ray: torch.Tensor  # [P, 2] its roots' image rays (X/Z, Y/Z)
    log_depth: torch.Tensor  # [P] log of its root depths
    joints_2d: torch.Tensor  # [P, 17, 2] its projected COCO joints
    vertices: torch.Tensor  # [P, V, 3] its people as posed, about each root (no gradient)
    joints: torch.Tensor  # [P, 17, 3] their COCO joints, likewise
    boxes: torch.Tensor  # [P, 4] its boxes (the pseudo depth-order cue)
    pairs: torch.Tensor  # [M, 2] (nearer, farther): the pairs the box cue orders
    K: torch.Tensor
    K_small: torch.Tensor  # intrinsics of the depth maps
    size: tuple[int, int]  # depth-map size
    body: BodyModel
    config: RefineConfig
    discriminator: torch.nn.Module | None

    @classmethod
    def of(cls, rotmats, shape, transl, boxes, image_size, K, body, config, discriminator):
        size = (max(round(image_size[0] * config.render_scale), 1),
                max(round(image_size[1] * config.render_scale), 1))
        with torch.no_grad():
            posed = posed_in_camera(body, rotmats, shape, transl)
            root = transl.detach()[:, None]
            joints = posed.joints["coco17"]
        return cls(matrix_to_rot6d(rotmats).detach(), shape.detach(),
                   *to_ray_depth(transl.detach()), project(joints, K), posed.vertices - root,
                   joints - root, boxes, ranked_pairs(boxes, config.order_margin), K,
                   scale_intrinsics(K, config.render_scale), size, body, config, discriminator)


@dataclass
class Variables:
    """What is optimised: 6D rotations, shape, and where each root is -- its image ray
    ``(X/Z, Y/Z)`` and the log of its depth. Along its ray a person changes depth while
    its 2D position stays, so people can be reordered in depth without leaving the
    image evidence."""

    rot6d: torch.Tensor
    shape: torch.Tensor
    ray: torch.Tensor
    log_depth: torch.Tensor

    @classmethod
    def start(cls, evidence: Evidence) -> Variables:
        """Where the network put the people."""
        return cls(*(value.detach().clone().requires_grad_(True) for value in
                     (evidence.rot6d, evidence.shape, evidence.ray, evidence.log_depth)))

    def transl(self) -> torch.Tensor:
        return from_ray_depth(self.ray, self.log_depth)

    def optimizer(self, lr: float, rigid: bool = False) -> torch.optim.Optimizer:
        """Adam on every variable, or on the rays and depths alone (``rigid``)."""
        # Short memory (betas 0.5, 0.9): one large interpenetration gradient must not
        # steer the following steps, as Adam's default 0.999 would let it.
        depths = [self.log_depth] if rigid else [self.rot6d, self.shape, self.log_depth]
        return torch.optim.Adam([
            {"params": depths},
            {"params": [self.ray], "lr": lr * RAY_LR_SHARE}], lr=lr, betas=(0.5, 0.9))


class Order(NamedTuple):
    """The people's depth order as rendered now."""

    depths: torch.Tensor  # [P, h, w] depth maps (differentiable; inf where empty)
    rightful: torch.Tensor  # [K] at each wrong pixel, the person the box cue puts in front
    visible: torch.Tensor  # [K] and the person in front there instead
    ordered: bool  # at most order_tolerance of the decided pixels are wrong
    loss: torch.Tensor  # Eq. 4 on the box cue's pseudo instance map (differentiable)


def render(evidence: Evidence, vertices: torch.Tensor) -> torch.Tensor:
    """Depth maps ``[P, h, w]`` of people at ``vertices [P, V, 3]``."""
    return depth_maps(vertices, evidence.body.faces, evidence.K_small, evidence.size)


def order_of(evidence: Evidence, depths: torch.Tensor) -> Order:
    """The depth order of people rendered as ``depths``: at each decided pixel (covered
    by several people, the box cue deciding) in the wrong order, who should be in front
    and who is; whether at most ``order_tolerance`` of the decided pixels are wrong; and
    the depth-order loss. Equal to :func:`pseudo_instances`, :func:`ordering_mistakes` and
    :func:`depth_order_loss` on the whole maps, computed on the pixels covered by two
    people or more only: nowhere else can two people be in the wrong order (a few
    hundred pixels of the map's tens of thousands)."""
    config = evidence.config
    plain = depths.detach()
    rows, cols = (torch.isfinite(plain).sum(dim=0) >= 2).nonzero(as_tuple=True)
    shared = plain[:, rows, cols][:, None]  # [P, 1, M] the maps at the shared pixels
    owner = pseudo_instances(shared, evidence.boxes, config.render_scale,
                             config.order_margin)[0]  # [M]
    wrong = ordering_mistakes(shared, owner[None])[0]  # [M]
    wrong_share = float(wrong.sum()) / max(int((owner > 0).sum()), 1)
    # Eq. 4 at the wrong pixels: the cue's person pulled forward, the visible one back.
    at = wrong.nonzero().flatten()
    rightful, visible = owner[at] - 1, shared[:, 0, at].argmin(dim=0)
    gap = depths[rightful, rows[at], cols[at]] - depths[visible, rows[at], cols[at]]
    loss = torch.nn.functional.softplus(gap).sum() / plain[0].numel()
    return Order(depths, rightful, visible, wrong_share <= config.order_tolerance, loss)


def scene_terms(evidence: Evidence, order: Order, log_depth: torch.Tensor,
                collision: torch.Tensor, history: list[tuple[float, float]]
                ) -> tuple[torch.Tensor, bool]:
    """The weighted interpenetration, depth-order and ranking terms of people rendered
    as ``order`` whose roots are at ``log_depth`` (``collision`` already computed), the
    first two appended to ``history``, and whether the people are coherent: the
    interpenetration loss at most ``collision_tolerance`` (contacts a few millimetres
    deep, finer than the 32^3 grid of the loss resolves: exact zero is rarely reached and
    costs many steps), at most
    ``order_tolerance`` of the overlap in the wrong order, and every decided pair
    ranked."""
    config = evidence.config
    loss = order.loss
    rank, ranked = ranking(evidence, log_depth)
    history.append((float(collision.detach()), float(loss.detach())))
    coherent = order.ordered and ranked and history[-1][0] <= config.collision_tolerance
    return (config.collision * collision + config.depth_order * loss + config.rank * rank,
            coherent)


def ranking(evidence: Evidence, log_depth: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The ranking term -- a hinge on each decided pair's log depths, zero once the
    nearer root is ``RANK_MARGIN`` nearer -- and whether every decided pair is ranked
    (always, with the term off)."""
    if evidence.config.rank <= 0 or len(evidence.pairs) == 0:
        return log_depth.sum() * 0.0, True
    near, far = evidence.pairs.T
    gap = log_depth[near] - log_depth[far]
    return torch.relu(gap + RANK_MARGIN).sum(), bool((gap.detach() < 0).all())


def agreement(evidence: Evidence, variables: Variables, joints: torch.Tensor,
              transl: torch.Tensor, people: torch.Tensor) -> torch.Tensor:
    """Weighted agreement of ``people`` (indices ``[M]``, at ``joints [M, 17, 3]`` and
    ``transl [M, 3]``) with the network: its 2D joints (Geman-McClure on offsets in box
    units, blind to moves along the root's ray), its rotations and shape (squared), and
    its depths (squared change of log depth: such moves are cheap, not free)."""
    config = evidence.config
    start_depth = evidence.log_depth[people].exp()
    offsets = (depth_free_2d(joints, transl, start_depth, evidence.K)
               - evidence.joints_2d[people])
    boxes = evidence.boxes[people]
    extent = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)[:, None]
    return (config.keypoints_2d * geman_mcclure(offsets / extent, 0.1).mean()
            + config.pose * ((variables.rot6d[people] - evidence.rot6d[people]).square().mean()
                             + (variables.shape[people] - evidence.shape[people]).square().mean())
            + config.depth * (variables.log_depth[people]
                              - evidence.log_depth[people]).square().sum())


def interpenetration(evidence: Evidence, vertices: torch.Tensor, sdf: SDFGrid) -> torch.Tensor:
    """The interpenetration loss of people at ``vertices`` with the fields ``sdf``."""
    config = evidence.config
    return collision_loss(vertices, evidence.body.faces, config.grid, config.sigma, "official",
                          sdf=sdf)


# The ranking hinge stops pushing once the nearer root is this much nearer in log depth
# (2 %: 10 cm at 5 m), so that a ranked pair does not sit on the edge of flipping back.
RANK_MARGIN = 0.02
