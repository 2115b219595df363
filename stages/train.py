"""Stage ``pretrain`` / ``baseline`` / ``finetune@<variant>``: the paper's three phases.

    python -m stages.train --phase pretrain
    python -m stages.train --phase baseline
    python -m stages.train --phase finetune --variant full
    torchrun --nproc_per_node=2 -m stages.train --phase baseline     # DDP

The phases:
- ``pretrain``: detection and the per-person losses.
- ``baseline``: adds the adversarial prior.
- ``finetune``: adds the variant's scene losses (``losses.<variant>``) and switches the
  keypoint criterion to MSE, as in the official tune config.

Each phase starts from the previous phase's ``model.pt`` (network and discriminator);
the first one fits the network's pose anchors, if it has any (``model.pose_anchors``),
to poses drawn from the training prior.
It writes ``models/<name>/model.pt`` (:mod:`model.io`), dvclive logs in
``logs/<name>/`` and a resumable checkpoint in ``checkpoints/<name>/``. The network
predicts; the :class:`~model.smpl_criterion.SMPLCriterion` built here scores; the
discriminator and its optimiser are objects of their own.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from dvclive import Live
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from model.body import BodyModel
from model.discriminator import build_discriminator
from model.io import read_model, save_model
from model.mirror import mirror_index
from model.pose_anchors import fit_pose_anchors
from model.rcnn import CoherentRCNN, ModelConfig, build_model
from model.smpl_criterion import CriterionConfig, LossWeights, SceneLosses, SMPLCriterion
from pipelines.determinism import deterministic_cpu_kernels
from pipelines.priors import NpzPrior, build_prior
from pipelines.synthetic import SyntheticConfig
from pipelines.synthetic.poses import SyntheticPrior
from pipelines.training import (
    Checkpointer,
    PhaseParams,
    TrainParams,
    batches,
    build_optimizers,
    config_hash,
    on_device,
    set_learning_rates,
    setup_distributed,
    split_losses,
)
from stages.common import BodyModelParams, from_section, read_params, typed

PREVIOUS = {"pretrain": None, "baseline": "pretrain", "finetune": "baseline"}
ANCHOR_FIT_POSES = 4096  # prior poses the pose anchors are fitted to
# the step counters a run logs (train/<name>) and its checkpoints keep: skipped steps,
# and the steps each scene loss acted on (was non-zero)
COUNTS = {"skipped_steps": 0, "active_collision": 0, "active_depth_order": 0}


def criterion_config(params: dict, phase: PhaseParams, variant: str | None) -> CriterionConfig:
    """The phase's losses: ``loss_weights``, the phase's switches and, for a fine-tune
    variant, ``losses.<variant>``."""
    common = typed(TrainParams, params, "train.common")
    scene = typed(SceneLosses, params, f"losses.{variant}") if variant else None
    return CriterionConfig(typed(LossWeights, params, "loss_weights"), phase.adversarial,
                           phase.keypoint_criterion, common.min_box_size, scene)


@dataclass
class Parts:
    """What a phase starts from: the body model, the adversarial prior, and the network
    and discriminator (the previous phase's weights loaded), with the phase's losses."""

    body: BodyModel
    prior: NpzPrior | SyntheticPrior
    network: CoherentRCNN
    discriminator: nn.Module
    losses: CriterionConfig


def build_parts(params: dict, phase_name: str, variant: str | None, device: torch.device,
                rank: int = 0) -> Parts:
    """The phase's :class:`Parts` on ``device``; the prior of process ``rank`` draws its
    own samples."""
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, f"train.{phase_name}")
    model_config = typed(ModelConfig, params, "model")
    seed = int(params["seed"])
    child_fraction = typed(SyntheticConfig, params, "synthetic").child_fraction
    body = from_section(BodyModelParams, params, "body_model").build().to(device)
    prior = build_prior(common.prior, seed + 1 + rank, body.num_joints, body.shape_dim,
                        child_fraction)
    network = build_network(model_config, phase, body, seed).to(device)
    discriminator = build_discriminator(body.num_joints, body.shape_dim, seed + 1).to(device)
    previous = PREVIOUS[phase_name]
    if previous:
        state = read_model(f"models/{previous}/model.pt")
        network.load_state_dict(state["network"])
        discriminator.load_state_dict(state["discriminator"])
    elif model_config.pose_anchors:
        fit_anchors(network, common.prior, seed, body.num_joints, body.shape_dim,
                    child_fraction)
    return Parts(body, prior, network, discriminator, criterion_config(params, phase, variant))


@dataclass
class Session:
    """What a phase trains: the network (``forward`` is the DDP wrapper when there is
    one), the criterion with the discriminator, and the two optimisers."""

    forward: nn.Module
    network: CoherentRCNN
    discriminator: nn.Module
    criterion: SMPLCriterion
    optimizers: list[torch.optim.Optimizer]  # detector, discriminator
    base_lrs: list[float]


def main() -> None:
    parser = argparse.ArgumentParser(description="Train one phase.")
    parser.add_argument("--phase", choices=list(PREVIOUS), required=True)
    parser.add_argument("--variant", help="fine-tune variant (a key of params.yaml losses)")
    args = parser.parse_args()
    if (args.phase == "finetune") != (args.variant is not None):
        parser.error("--variant is required for, and only for, --phase finetune")
    run(read_params(), args.phase, args.variant)


def run(params: dict, phase_name: str, variant: str | None) -> None:
    name = variant or phase_name
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, f"train.{phase_name}")
    model_config = typed(ModelConfig, params, "model")
    seed = int(params["seed"])
    rank, world_size, device = setup_distributed(common.device)
    torch.manual_seed(seed)
    random.seed(seed)  # nothing draws from it, but checkpoints store its state
    parts = build_parts(params, phase_name, variant, device, rank)
    body, prior, network, discriminator = (parts.body, parts.prior, parts.network,
                                           parts.discriminator)
    losses = parts.losses
    optimizers = build_optimizers(network, discriminator, phase.lr, common.discriminator_lr,
                                  common.weight_decay)
    # The number of iterations is left out, so a longer run resumes a shorter one.
    checkpoints = Checkpointer(Path("checkpoints") / name,
                               config_hash(common, {**asdict(phase), "iters": None},
                                           model_config, losses, seed, params["body_model"],
                                           world_size))
    start, counts = resume(checkpoints, name, network, discriminator, optimizers, prior)
    if rank == 0 and start > 0:  # the resumed run logs those steps again; dvclive appends
        drop_logged_steps(Path("logs") / name / "plots" / "metrics", start)
    wrap = (lambda m: DistributedDataParallel(m, find_unused_parameters=True)
            ) if world_size > 1 else (lambda m: m)
    session = Session(wrap(network), network, discriminator,
                      SMPLCriterion(body, wrap(discriminator), prior, losses,
                                    anchors(network)), optimizers,
                      [phase.lr, common.discriminator_lr])
    live = (Live(f"logs/{name}", dvcyaml=False, save_dvc_exp=False, resume=start > 0)
            if rank == 0 else None)
    data = batches(common, phase, seed, rank, skip=start,
                   rotation_mirror=mirror_index(body.rotation_names), body_model=body.name)
    with deterministic_cpu_kernels(device):  # repeatable beside other busy processes
        loop(session, data, common, phase, start, counts, live,
             checkpoints if rank == 0 else None)
    if rank == 0:
        save_model(f"models/{name}/model.pt", network, discriminator, model_config, body.name,
                   (common.input_height, common.input_width))
        live.end()
    if world_size > 1:
        torch.distributed.destroy_process_group()


def build_network(model_config: ModelConfig, phase: PhaseParams, body: BodyModel,
                  seed: int) -> CoherentRCNN:
    """The network as ``model`` builds it, with the phase's own cap on the SMPL-branch
    RoIs when it sets one (a training-time sampling choice: the weights are the same)."""
    network = build_model(model_config, body, seed)
    if phase.smpl_rois_per_image is not None:
        network.roi_heads.smpl_rois_per_image = phase.smpl_rois_per_image
    return network


def fit_anchors(network: CoherentRCNN, prior_source: str, seed: int, num_joints: int,
                shape_dim: int, child_fraction: float) -> None:
    """Fit the network's pose anchors to poses of the training prior (its own draw, the
    same on every rank, so the adversarial prior's stream is untouched)."""
    rotmats, _ = build_prior(prior_source, seed + 2, num_joints, shape_dim,
                             child_fraction)(ANCHOR_FIT_POSES)
    head = network.roi_heads.smpl_head
    head.set_anchors(fit_pose_anchors(rotmats, len(head.anchors), seed).to(head.anchors))


def anchors(network: CoherentRCNN) -> torch.Tensor | None:
    """``[K, J - 1, 3, 3]`` the network's pose anchors, or None."""
    head = network.roi_heads.smpl_head
    return head.anchor_rotations() if hasattr(head, "anchors") else None


def resume(checkpoints: Checkpointer, name: str, network: nn.Module, discriminator: nn.Module,
           optimizers: list, prior: SyntheticPrior | NpzPrior) -> tuple[int, dict[str, int]]:
    """Restore an interrupted run of this configuration: the step to start from and the
    run's step counters so far. Only with the interrupted run's logs (dvc.yaml keeps
    them: persist)."""
    state = checkpoints.load() if Path(f"logs/{name}/metrics.json").is_file() else None
    if state is None:
        return 0, dict(COUNTS)
    network.load_state_dict(state["network"])
    discriminator.load_state_dict(state["discriminator"])
    for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
        optimizer.load_state_dict(saved)
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    prior.rng.bit_generator.state = state["prior_rng"]
    print(f"{name}: resuming at step {state['step']} from {checkpoints.path}")
    return state["step"], {**COUNTS, **state.get("counts", {})}


def drop_logged_steps(plots: Path, start: int) -> None:
    """Remove the rows of steps ``start`` and later from the logged curves (``<plots>/**/
    *.tsv``: a header naming a ``step`` column, then one row per logged step)."""
    for curve in sorted(plots.rglob("*.tsv")):
        lines = curve.read_text().splitlines(keepends=True)
        if not lines:
            continue
        column = lines[0].rstrip("\n").split("\t").index("step")
        kept = [row for row in lines[1:] if int(row.split("\t")[column]) < start]
        curve.write_text(lines[0] + "".join(kept))


def loop(session: Session, data: Iterator[tuple], common: TrainParams, phase: PhaseParams,
         start: int, counts: dict[str, int], live: Live | None,
         checkpoints: Checkpointer | None) -> None:
    """Run steps ``start .. phase.iters - 1`` on the batches of ``data``, counting in
    ``counts`` (:data:`COUNTS`, from step 0); log on ``live`` and save ``checkpoints``
    (both ``None`` on the other DDP ranks)."""
    session.forward.train()
    bad_in_a_row = 0
    device = next(session.network.parameters()).device
    progress = tqdm(range(start, phase.iters), initial=start, total=phase.iters, unit="step",
                    mininterval=5.0, disable=live is None)
    for step in progress:
        images, targets, _ = next(data)
        images, targets = on_device(images, targets, device)
        set_learning_rates(session.optimizers, session.base_lrs, step, common.warmup_iters)
        detector_losses, branch = session.forward(images, targets)
        losses = {**detector_losses,
                  **session.criterion(branch, targets, tuple(images.shape[-2:]))}
        detector, adversary = split_losses(losses)
        for optimizer in session.optimizers:
            optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(detector.item() + adversary.item()):
            counts["skipped_steps"] += 1
            bad_in_a_row += 1
            print(f"step {step}: non-finite loss, skipped ({counts['skipped_steps']} so far)")
            if bad_in_a_row > common.max_bad_steps:
                raise RuntimeError(f"{bad_in_a_row} non-finite losses in a row at step {step}")
            continue
        bad_in_a_row = 0
        for name in ("loss_collision", "loss_depth_order"):
            counts[f"active_{name[5:]}"] += int(name in losses
                                               and float(losses[name].detach()) > 0)
        (detector + adversary).backward()
        torch.nn.utils.clip_grad_norm_(session.network.parameters(), common.grad_clip)
        torch.nn.utils.clip_grad_norm_(session.discriminator.parameters(), common.grad_clip)
        for optimizer in session.optimizers:
            optimizer.step()
        if live is not None and (step % common.log_every == 0 or step == phase.iters - 1):
            log_step(live, step, losses, detector, counts, session.optimizers[0])
            rate = progress.format_dict["rate"] or 0.0  # steps/s
            progress.set_postfix(loss=f"{float(detector.detach()):.3f}",
                                 images_per_s=f"{rate * phase.batch_size:.2f}", refresh=False)
        if checkpoints is not None and (step + 1) % common.checkpoint_every == 0:
            checkpoints.save(step + 1, session.network, session.discriminator,
                             session.optimizers, session.criterion.prior.rng.bit_generator.state,
                             counts)


def log_step(live: Live, step: int, losses: dict[str, torch.Tensor], total: torch.Tensor,
             counts: dict[str, int], optimizer: torch.optim.Optimizer) -> None:
    live.step = step
    for key, value in losses.items():
        live.log_metric(f"train/{key}", round(float(value.detach()), 6))
    live.log_metric("train/total", round(float(total.detach()), 6))
    for name, count in counts.items():  # steps so far: skipped, scene losses on
        live.log_metric(f"train/{name}", count)
    live.log_metric("train/lr", optimizer.param_groups[0]["lr"])
    live.next_step()


if __name__ == "__main__":
    main()
