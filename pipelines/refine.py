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
Phases 2 and 3 move only the people in trouble when they begin (in a pair that
intersects, stands in the wrong order or is not ranked); the others are held still,
and their depth maps and SDFs are not computed again. Each phase stops once no pair
intersects and the order holds, or when its interpenetration loss stalls. A coherent
image takes zero steps and is returned unchanged (bit for bit).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import torch

from model.body import BodyModel, posed_in_camera
from model.losses import generator_loss
from ops.geometry import rot6d_to_matrix
from pipelines.box_cues import overlapping_in_image, pseudo_instances, ranked_pairs
from pipelines.determinism import deterministic_cpu_kernels
from pipelines.refine_held import Fields, Still, troubled
from pipelines.refine_scene import (
    Evidence,
    Order,
    Variables,
    agreement,
    interpenetration,
    order_of,
    ranking,
    render,
    scene_terms,
)

__all__ = ["RefineConfig", "Refined", "refine", "pseudo_instances", "ranked_pairs",
           "overlapping_in_image"]


@dataclass(frozen=True)
class RefineConfig:
    """``refine`` section of params.yaml."""

    order_steps: int  # most steps of phase 1 (reordering along the rays)
    order_lr: float  # its Adam rate on the log depths (0.05: 5 % of the depth a step)
    separate_steps: int  # most steps of phase 2 (rigid moves: rays and depths)
    separate_lr: float  # its Adam rate
    steps: int  # most steps of phase 3 (every term)
    lr: float  # its Adam rate
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
    with torch.enable_grad(), deterministic_cpu_kernels(rotmats.device):
        evidence = Evidence.of(rotmats, shape, transl, boxes, image_size, K, body, config,
                               discriminator)
        variables = Variables.start(evidence)
        history: list[tuple[float, float]] = []
        # 1. Reorder: each person slides along its root's ray, posed as the network said,
        #    until the box cue's depth order holds. The interpenetration term is a barrier
        #    that would stop two people from passing each other in depth, so it waits.
        steps, last = _reorder(evidence, variables)
        # 2. Separate: the people in trouble move rigidly (rays and depths) under every
        #    term but the pose's, which is cheap: nothing is posed or voxelised again.
        taken, trouble = _separate(evidence, variables, history, last)
        steps += taken
        # 3. What rigid moves cannot mend (limbs inside another person): every term, for
        #    the people still in trouble.
        if trouble is not None:
            steps += _descend(evidence, variables, history, trouble)
    if steps == 0:  # already coherent: the input, bit for bit
        return Refined(rotmats, shape, transl, 0, history)
    return Refined(rot6d_to_matrix(variables.rot6d).detach(), variables.shape.detach(),
                   variables.transl().detach(), steps, history)


class Rendered(NamedTuple):
    """The people where a phase left them, as its last check rendered them (the next
    phase's first check, not rendered again): roots ``transl [P, 3]``, ``vertices
    [P, V, 3]`` and their :class:`Order`, all still attached to the variables."""

    transl: torch.Tensor
    vertices: torch.Tensor
    order: Order


def _reorder(evidence: Evidence, variables: Variables) -> tuple[int, Rendered | None]:
    """Phase 1: at most ``order_steps`` Adam steps (rate ``order_lr``) on the log depths
    alone, minimising the depth-order and ranking terms and the depth-change penalty,
    until at most ``order_tolerance`` of the overlap is in the wrong order and every pair
    the box cue decides is ranked. The people keep the
    network's pose: a move along the ray is a translation. Returns the steps taken and
    the last check's rendering (None when the phase is off)."""
    config = evidence.config
    if config.order_steps <= 0:
        return 0, None
    optimizer = torch.optim.Adam([variables.log_depth], lr=config.order_lr, betas=(0.5, 0.9))
    for step in itertools.count():  # the last step returns
        transl = variables.transl()
        vertices = evidence.vertices + transl[:, None]
        order = order_of(evidence, render(evidence, vertices))
        rank, ranked = ranking(evidence, variables.log_depth)
        if (order.ordered and ranked) or step == config.order_steps:
            return step, Rendered(transl, vertices, order)
        total = (config.depth_order * order.loss
                 + config.rank * rank
                 + config.depth * (variables.log_depth - evidence.log_depth).square().sum())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()


def _separate(evidence: Evidence, variables: Variables, history: list[tuple[float, float]],
              rendered: Rendered | None) -> tuple[int, Still | None]:
    """Phase 2: at most ``separate_steps`` Adam steps (rate ``separate_lr``) on the rays
    and log depths of the people in trouble at its start (:func:`troubled`), keeping the
    network's pose, on every term but the pose's. A step poses nothing, voxelises nobody
    it has voxelised before (:class:`Fields`: a translated person's SDF is the same
    field moved along) and renders only the people that move. Appends each step's
    interpenetration and depth-order losses to ``history``; stops early when the
    interpenetration loss stalls (``STALL_STEPS``). Its first check takes phase 1's last
    ``rendered`` people (the same state) when given. Returns the steps taken and, unless
    the people are coherent (see :func:`scene_terms`), who is still in trouble."""
    config = evidence.config
    fields = Fields(evidence.body.faces, config.grid, len(evidence.vertices),
                    evidence.vertices.device)
    optimizer = variables.optimizer(config.separate_lr, rigid=True)
    best, since_best, still = float("inf"), 0, None
    for step in itertools.count():  # the last step returns
        fresh = step > 0 or rendered is None
        if fresh:
            transl = variables.transl()
            vertices = evidence.vertices + transl[:, None]
        else:
            transl, vertices, order = rendered
        sdf = fields.at(vertices, transl)
        collision = interpenetration(evidence, vertices, sdf)
        if fresh:
            order = order_of(evidence, render(evidence, vertices) if still is None
                             else still.depth_maps(evidence, vertices))
        scene, coherent = scene_terms(evidence, order, variables.log_depth, collision, history)
        best, since_best = ((history[-1][0], 0) if history[-1][0] < best
                            else (best, since_best + 1))
        if coherent:
            return step, None
        last = step >= config.separate_steps or since_best >= STALL_STEPS
        if last or still is None:
            trouble = troubled(evidence, vertices, sdf, history[-1][0], order,
                               variables.log_depth)
            still = Still(trouble, vertices, order.depths, fields)
            if last:
                return step, still
        movers = still.index
        joints = (evidence.joints + transl[:, None])[movers]
        total = scene + agreement(evidence, variables, joints, transl[movers], movers)
        optimizer.zero_grad()
        total.backward()
        still.hold(variables)
        optimizer.step()


def _descend(evidence: Evidence, variables: Variables, history: list[tuple[float, float]],
             still: Still) -> int:
    """Phase 3: at most ``steps`` Adam steps on the whole objective for the people in
    trouble (``still.movers``; the others keep their vertices, depth maps and SDFs),
    appending each step's interpenetration and depth-order losses to ``history``, until
    coherent. Returns the steps taken.

    The movers' SDFs are voxelised again only every ``REFRESH_STEPS`` steps, and always
    before the people are declared apart; in between, each mover's field is the one last
    voxelised, moved with its root (a pose a few steps old: the interpenetration values
    of those steps are approximate)."""
    config = evidence.config
    if config.steps <= 0:
        return 0
    optimizer = variables.optimizer(config.lr)
    movers, fields = still.index, still.fields
    stale = False  # have the movers been posed anew since their fields were voxelised?
    best, since_best = float("inf"), 0
    for step in itertools.count():  # the last step returns
        rotmats, transl = rot6d_to_matrix(variables.rot6d[movers]), variables.transl()
        posed = posed_in_camera(evidence.body, rotmats, variables.shape[movers], transl[movers])
        vertices = still.vertices_with(posed.vertices)
        if stale and step % REFRESH_STEPS == 0:
            fields.voxelise(still.movers, vertices, transl)
            stale = False
        collision = interpenetration(evidence, vertices, fields.at(vertices, transl))
        if stale and float(collision.detach()) <= config.collision_tolerance:  # make sure
            fields.voxelise(still.movers, vertices, transl)
            stale = False
            collision = interpenetration(evidence, vertices, fields.at(vertices, transl))
        order = order_of(evidence, still.depth_maps(evidence, vertices))
        scene, coherent = scene_terms(evidence, order, variables.log_depth, collision, history)
        best, since_best = ((history[-1][0], 0) if history[-1][0] < best
                            else (best, since_best + 1))
        if coherent or step == config.steps or since_best >= STALL_STEPS:
            return step
        total = scene + agreement(evidence, variables, posed.joints["coco17"], transl[movers],
                                  movers)
        if evidence.discriminator is not None and config.prior > 0:
            total = total + config.prior * generator_loss(
                evidence.discriminator(rotmats, variables.shape[movers]))
        optimizer.zero_grad()
        total.backward()
        still.hold(variables)
        optimizer.step()
        stale = True


# Phases 2 and 3 stop once their interpenetration loss has not reached a new low for
# this many steps. In phase 2, near contact, the agreement terms pull the people back as
# hard as the vanishing interpenetration gradient pushes them apart, and only posing them
# differently (a limb, not the whole body) mends what is left: phase 3 takes over. In
# phase 3, Adam's steps of about ``lr`` each make a loss near zero oscillate rather than
# vanish; more steps there cost time and rarely end a collision.
STALL_STEPS = 5

# Phase 3 voxelises the people it poses again every this many steps (and before it
# declares them apart): voxelising costs about 8 ms a person on this CPU, a step's pose
# change moves a limb by millimetres to a centimetre.
REFRESH_STEPS = 4
