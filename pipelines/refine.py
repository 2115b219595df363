"""Test-time coherence refinement: the paper's two scene losses applied to one image's
predictions, as an optional last step after the network.

The paper uses the interpenetration and depth-order losses only to train. A trained
network can still put people inside each other or in the wrong depth order; this step
optimises each image's predicted people for a few steps (Adam on their 6D rotations,
shape, and each root's image ray and log depth) to make them coherent, while keeping
them on the network's evidence. The objective, all terms weighted by :class:`RefineConfig`:

1. **Interpenetration**: :func:`ops.collision.collision_loss` (Eq. 2-3, the released
   per-vertex form), the training loss itself.
2. **Depth order** from the prediction's own evidence (the detector's boxes): where two
   predicted people overlap in the image, the one whose box reaches lower in the image
   (whose feet stand nearer the camera on the ground) must be the one in front. This
   pseudo instance map (:func:`pseudo_instances`, recomputed where they overlap at each
   step) feeds :func:`ops.depth_order.depth_order_loss` (Eq. 4) on depth maps rendered
   at ``render_scale`` of the image. The same cue also ranks the roots of every pair it
   decides (:func:`ranked_pairs`), overlapping or not: a hinge on their log depths.
3. **Agreement with the network**: each person's projected COCO joints stay near the
   network's (Geman-McClure on their offsets in box units, measured as if the person had
   kept its depth, so a move along its ray is free there), its rotations and shape stay
   near the network's, and its log depth too (squared changes).
4. **Pose prior**: the trained discriminator's adversarial term (the model file keeps
   the discriminator).

Three phases. First each person only slides along its root's ray (a move that leaves
its 2D joints in place), driven by the depth-order term and the depth-change penalty,
until the box cue's order holds (at most ``order_tolerance`` of the pixels where people
overlap in the wrong order: thin parts such as a hand in front of the nearer body are
allowed). The interpenetration term would be a barrier stopping two people from passing
each other in depth, so it waits. Second, the people move rigidly (rays and depths)
under every term but the pose's: each person's SDF is computed once and moved along, so
these steps are cheap, and most collisions of whole bodies end here. Third, what rigid
moves cannot mend (a limb inside another person): every term, poses and shapes too.
Each phase stops once no pair intersects and the order holds. A coherent image takes
zero steps and is returned unchanged (bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from model.body import BodyModel, posed_in_camera
from model.camera import project, scale_intrinsics
from model.losses import generator_loss
from ops.collision import collision_loss, geman_mcclure
from ops.depth_order import depth_order_loss, ordering_mistakes
from ops.geometry import matrix_to_rot6d, rot6d_to_matrix
from ops.raster import depth_maps
from ops.sdf import moved, sdf_grid
from pipelines.box_cues import overlapping_in_image, pseudo_instances, ranked_pairs
from pipelines.root_rays import RAY_LR_SHARE, depth_free_2d, from_ray_depth, to_ray_depth

__all__ = ["RefineConfig", "Refined", "refine", "pseudo_instances", "ranked_pairs",
           "overlapping_in_image"]


@dataclass(frozen=True)
class RefineConfig:
    """``refine`` section of params.yaml."""

    order_steps: int  # most steps of phase 1 (reordering along the rays)
    order_lr: float  # its Adam rate on the log depths (0.05: 5 % of the depth a step)
    separate_steps: int  # most steps of phase 2 (rigid moves: rays and depths)
    steps: int  # most steps of phase 3 (every term)
    lr: float  # Adam rate of phases 2 and 3
    collision: float  # weight of the interpenetration loss
    depth_order: float  # weight of the depth-order loss on the pseudo instance map
    rank: float  # weight of the root ranking over every pair the box cue decides (0: off)
    keypoints_2d: float  # weight of the agreement with the network's projected joints
    depth: float  # weight of the squared change of each person's log depth
    pose: float  # weight of the agreement with its rotations and shape
    prior: float  # weight of the discriminator's adversarial term
    sigma: float  # Geman-McClure scale of the interpenetration loss (official 0.2)
    grid: int  # SDF grid of the interpenetration loss (official 32)
    render_scale: float  # depth maps at this fraction of the image size
    order_margin: float  # the box-bottom cue decides only beyond this share of box height
    order_tolerance: float  # in order once at most this share of the overlap is wrong
    collision_tolerance: float  # apart once the interpenetration loss is at most this
    min_score: float  # detections scoring below this are left as they are (duplicates)

    @classmethod
    def from_section(cls, values: dict, where: str = "params.yaml") -> RefineConfig:
        """From the ``refine`` section of ``where`` (other keys, such as the stage's
        ``base``, are ignored); a missing or misspelt key is a clear error."""
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(f"{where}: the refine section lacks {missing} (expected the keys "
                             f"{names})")
        return cls(**{name: values[name] for name in names})


@dataclass
class Refined:
    """Refined people (``[P, ...]`` as the input), how many steps it took, and the
    interpenetration and depth-order losses before each step (and after the last)."""

    rotmats: torch.Tensor
    shape: torch.Tensor
    transl: torch.Tensor
    steps: int
    history: list[tuple[float, float]] = field(default_factory=list)


def _check(name: str, value: torch.Tensor) -> None:
    if not torch.isfinite(value).all():
        raise ValueError(f"refine: the predicted {name} contain NaN or inf")


def _involved(boxes: torch.Tensor, config: RefineConfig) -> torch.Tensor:
    """``[P]`` bool: the people refinement may move: those whose boxes overlap another's
    (only they can intersect or occlude each other) and, with the ranking term on, those
    the box cue orders against another."""
    involved = overlapping_in_image(boxes) if len(boxes) else torch.zeros(0, dtype=torch.bool)
    if config.rank > 0 and len(boxes):
        involved[ranked_pairs(boxes, config.order_margin).flatten()] = True
    return involved


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
        every person, refined where their image boxes overlap another's or the box cue
        orders them against another (``rank > 0``), else unchanged.
    """
    for name, value in (("rotations", rotmats), ("shapes", shape), ("translations", transl),
                        ("boxes", boxes)):
        _check(name, value)
    involved = _involved(boxes, config)
    phases = (config.order_steps, config.separate_steps, config.steps)
    if int(involved.sum()) < 2 or max(phases) <= 0:
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
        evidence = _Evidence.of(rotmats, shape, transl, boxes, image_size, K, body, config,
                                discriminator)
        variables = _Variables.start(evidence)
        history: list[tuple[float, float]] = []
        # 1. Reorder: each person slides along its root's ray, posed as the network said,
        #    until the box cue's depth order holds. The interpenetration term is a barrier
        #    that would stop two people from passing each other in depth, so it waits.
        steps = _reorder(evidence, variables)
        # 2. Separate: people move rigidly (rays and depths) under every term but the
        #    pose's, which is cheap: nothing is posed or voxelised again.
        taken, coherent = _separate(evidence, variables, history)
        steps += taken
        # 3. What rigid moves cannot mend (limbs inside another person): every term.
        if not coherent:
            steps += _descend(evidence, variables, history)
    if steps == 0:  # already coherent: the input, bit for bit
        return Refined(rotmats, shape, transl, 0, history)
    return Refined(rot6d_to_matrix(variables.rot6d).detach(), variables.shape.detach(),
                   variables.transl().detach(), steps, history)


@dataclass
class _Evidence:
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
class _Variables:
    """What is optimised: 6D rotations, shape, and where each root is -- its image ray
    ``(X/Z, Y/Z)`` and the log of its depth. Along its ray a person changes depth while
    its 2D position stays, so people can be reordered in depth without leaving the
    image evidence."""

    rot6d: torch.Tensor
    shape: torch.Tensor
    ray: torch.Tensor
    log_depth: torch.Tensor

    @classmethod
    def start(cls, evidence: _Evidence) -> _Variables:
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


def _reorder(evidence: _Evidence, variables: _Variables) -> int:
    """Phase 1: at most ``order_steps`` Adam steps (rate ``order_lr``) on the log depths
    alone, minimising the depth-order and ranking terms and the depth-change penalty,
    until at most ``order_tolerance`` of the overlap is in the wrong order and every pair
    the box cue decides is ranked. The people keep the
    network's pose: a move along the ray is a translation. Returns the steps taken."""
    config = evidence.config
    if config.order_steps <= 0:
        return 0
    optimizer = torch.optim.Adam([variables.log_depth], lr=config.order_lr, betas=(0.5, 0.9))
    for step in range(config.order_steps + 1):
        vertices = evidence.vertices + variables.transl()[:, None]
        depths, pseudo, ordered = _depth_order_now(evidence, vertices)
        rank, ranked = _ranking(evidence, variables.log_depth)
        if (ordered and ranked) or step == config.order_steps:
            return step
        total = (config.depth_order * depth_order_loss(depths, pseudo) + config.rank * rank
                 + config.depth * (variables.log_depth - evidence.log_depth).square().sum())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return config.order_steps


def _separate(evidence: _Evidence, variables: _Variables,
              history: list[tuple[float, float]]) -> tuple[int, bool]:
    """Phase 2: at most ``separate_steps`` Adam steps (rate ``lr``) on the rays
    and log depths, the people keeping the network's pose, on every term but the pose's.
    Each person's SDF is voxelised once: a translated person's is the same field moved
    along (:func:`ops.sdf.moved`), so a step poses and voxelises nothing. Appends each
    step's interpenetration and depth-order losses to ``history``; stops early when the
    interpenetration loss stalls (``STALL_STEPS``). Returns the steps taken and whether
    the people are coherent (see :func:`_scene_terms`)."""
    config = evidence.config
    start = variables.transl().detach()
    grid = sdf_grid(evidence.vertices + start[:, None], evidence.body.faces, config.grid)
    optimizer = variables.optimizer(config.lr, rigid=True)
    best, since_best = float("inf"), 0
    for step in range(max(config.separate_steps, 0) + 1):
        transl = variables.transl()
        vertices = evidence.vertices + transl[:, None]
        collision = collision_loss(vertices, evidence.body.faces, config.grid, config.sigma,
                                   "official", sdf=moved(grid, transl - start))
        scene, coherent = _scene_terms(evidence, vertices, variables.log_depth, collision,
                                       history)
        best, since_best = ((history[-1][0], 0) if history[-1][0] < best
                            else (best, since_best + 1))
        if coherent or step >= config.separate_steps or since_best >= STALL_STEPS:
            return step, coherent
        total = scene + _agreement(evidence, variables, evidence.joints + transl[:, None],
                                   transl)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return config.separate_steps, False


def _scene_terms(evidence: _Evidence, vertices: torch.Tensor, log_depth: torch.Tensor,
                 collision: torch.Tensor, history: list[tuple[float, float]]
                 ) -> tuple[torch.Tensor, bool]:
    """The weighted interpenetration, depth-order and ranking terms of people at
    ``vertices`` whose roots are at ``log_depth`` (``collision`` already computed), the
    first two appended to ``history``, and whether the people are coherent: the
    interpenetration loss at most ``collision_tolerance`` (grazing contacts of a
    millimetre or so; exact zero is rarely reached and costs many steps), at most
    ``order_tolerance`` of the overlap in the wrong order, and every decided pair
    ranked."""
    config = evidence.config
    depths, pseudo, ordered = _depth_order_now(evidence, vertices)
    order = depth_order_loss(depths, pseudo)
    rank, ranked = _ranking(evidence, log_depth)
    history.append((float(collision.detach()), float(order.detach())))
    coherent = ordered and ranked and history[-1][0] <= config.collision_tolerance
    return (config.collision * collision + config.depth_order * order + config.rank * rank,
            coherent)


def _ranking(evidence: _Evidence, log_depth: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The ranking term -- a hinge on each decided pair's log depths, zero once the
    nearer root is ``RANK_MARGIN`` nearer -- and whether every decided pair is ranked
    (always, with the term off)."""
    if evidence.config.rank <= 0 or len(evidence.pairs) == 0:
        return log_depth.sum() * 0.0, True
    near, far = evidence.pairs.T
    gap = log_depth[near] - log_depth[far]
    return torch.relu(gap + RANK_MARGIN).sum(), bool((gap.detach() < 0).all())


def _descend(evidence: _Evidence, variables: _Variables,
             history: list[tuple[float, float]]) -> int:
    """Phase 3: at most ``steps`` Adam steps on the whole objective, appending each
    step's interpenetration and depth-order losses to ``history``, until coherent.
    Returns the steps taken."""
    config = evidence.config
    if config.steps <= 0:
        return 0
    optimizer = variables.optimizer(config.lr)
    for step in range(config.steps + 1):
        rotmats, transl = rot6d_to_matrix(variables.rot6d), variables.transl()
        posed = posed_in_camera(evidence.body, rotmats, variables.shape, transl)
        collision = collision_loss(posed.vertices, evidence.body.faces, config.grid,
                                   config.sigma, "official")
        scene, coherent = _scene_terms(evidence, posed.vertices, variables.log_depth, collision,
                                       history)
        if coherent or step == config.steps:
            return step
        total = scene + _agreement(evidence, variables, posed.joints["coco17"], transl)
        if evidence.discriminator is not None and config.prior > 0:
            total = total + config.prior * generator_loss(
                evidence.discriminator(rotmats, variables.shape))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return config.steps


def _depth_order_now(evidence: _Evidence, vertices: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """The people's depth maps ``[P, h, w]`` (differentiable), the pseudo instance map
    where they overlap now, and whether the order holds: at most ``order_tolerance``
    of the pixels where several people overlap and the box cue decides are wrong."""
    config = evidence.config
    depths = depth_maps(vertices, evidence.body.faces, evidence.K_small, evidence.size)
    pseudo = pseudo_instances(depths.detach(), evidence.boxes, config.render_scale,
                              config.order_margin)
    decided = (pseudo > 0) & (torch.isfinite(depths.detach()).sum(dim=0) >= 2)
    wrong = ordering_mistakes(depths, pseudo) & decided
    wrong_share = float(wrong.sum()) / max(int(decided.sum()), 1)
    return depths, pseudo, wrong_share <= config.order_tolerance


def _agreement(evidence: _Evidence, variables: _Variables, joints: torch.Tensor,
               transl: torch.Tensor) -> torch.Tensor:
    """Weighted agreement with the network: its 2D joints (Geman-McClure on offsets in
    box units, blind to moves along the root's ray), its rotations and shape (squared),
    and its depths (squared change of log depth: such moves are cheap, not free)."""
    config = evidence.config
    start_depth = evidence.log_depth.exp()
    offsets = (depth_free_2d(joints, transl, start_depth, evidence.K) - evidence.joints_2d)
    extent = (evidence.boxes[:, 2:] - evidence.boxes[:, :2]).clamp(min=1.0)[:, None]
    return (config.keypoints_2d * geman_mcclure(offsets / extent, 0.1).mean()
            + config.pose * ((variables.rot6d - evidence.rot6d).square().mean()
                             + (variables.shape - evidence.shape).square().mean())
            + config.depth * (variables.log_depth - evidence.log_depth).square().sum())


# The ranking hinge stops pushing once the nearer root is this much nearer in log depth
# (2 %: 10 cm at 5 m), so that a ranked pair does not sit on the edge of flipping back.
RANK_MARGIN = 0.02

# The rigid phase hands over to the every-term phase once its interpenetration loss has
# not reached a new low for this many steps: near contact, the agreement terms pull the
# people back as hard as the vanishing interpenetration gradient pushes them apart, and
# only posing them differently (a limb, not the whole body) mends what is left.
STALL_STEPS = 5
