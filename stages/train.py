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

Each phase starts from the previous phase's ``model.pt``. It writes
``models/<name>/model.pt``, dvclive logs in ``logs/<name>/`` and a resumable
checkpoint in ``checkpoints/<name>/``.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from dvclive import Live
from torch.nn.parallel import DistributedDataParallel

from model.rcnn import ModelConfig, build_model
from model.smpl_criterion import LossConfig
from pipelines.priors import build_prior
from stages.common import BodyModelParams, from_section, read_params
from stages.trainer import (
    Checkpointer,
    TrainParams,
    batches,
    config_hash,
    lr_factor,
    setup_distributed,
    split_losses,
)

PREVIOUS = {"pretrain": None, "baseline": "pretrain", "finetune": "baseline"}


@dataclass(frozen=True)
class PhaseParams:
    """``train.<phase>`` section."""

    iters: int
    lr: float
    adversarial: bool
    keypoint_criterion: str  # l1 | mse


@dataclass(frozen=True)
class SceneLossParams:
    """``losses.<variant>`` section: the fine-tune's scene losses."""

    collision: float  # weight of the interpenetration loss (official 0.01)
    depth_order: float  # weight of the depth-ordering loss (official 100)
    sigma: float  # Geman-McClure scale (official 0.2)
    robust: str  # "paper" (Eq. 3) or "official" (per vertex)
    grid: int  # SDF grid (official 32)


def section(params: dict, dotted: str) -> dict:
    value = params
    for part in dotted.split("."):
        if part not in value:
            raise KeyError(f"params.yaml has no '{dotted}' section")
        value = value[part]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


def typed(cls, params: dict, dotted: str):
    return from_section(cls, {dotted: section(params, dotted)}, dotted)


def loss_config(params: dict, phase: PhaseParams, variant: str | None) -> LossConfig:
    weights = dict(section(params, "loss_weights"))
    weights["adversarial"] = weights["adversarial"] if phase.adversarial else 0.0
    scene = typed(SceneLossParams, params, f"losses.{variant}") if variant else None
    weights["collision"] = scene.collision if scene else 0.0
    weights["depth_order"] = scene.depth_order if scene else 0.0
    return LossConfig(weights, phase.keypoint_criterion, scene.sigma if scene else 0.2,
                      scene.robust if scene else "paper", scene.grid if scene else 32)


def main() -> None:
    parser = argparse.ArgumentParser(description="Train one phase.")
    parser.add_argument("--phase", choices=list(PREVIOUS), required=True)
    parser.add_argument("--variant", help="fine-tune variant (a key of params.yaml losses)")
    args = parser.parse_args()
    if (args.phase == "finetune") != (args.variant is not None):
        parser.error("--variant is required for, and only for, --phase finetune")
    params = read_params()
    run(params, args.phase, args.variant)


def run(params: dict, phase_name: str, variant: str | None) -> None:
    name = variant or phase_name
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, f"train.{phase_name}")
    model_config = typed(ModelConfig, params, "model")
    losses = loss_config(params, phase, variant)
    seed = int(params["seed"])
    rank, world_size, device = setup_distributed(common.device)
    torch.manual_seed(seed)
    body = from_section(BodyModelParams, params, "body_model").build().to(device)
    prior = build_prior(common.prior, seed + 1 + rank, body.num_joints, body.shape_dim)
    model = build_model(model_config, body, prior, seed).to(device)
    model.set_losses(losses)
    previous = PREVIOUS[phase_name]
    if previous:
        model.load_state_dict(torch.load(f"models/{previous}/model.pt", map_location=device))
    detector_params = [p for n, p in model.named_parameters()
                       if not n.startswith("roi_heads.criterion.discriminator")]
    optimizers = [torch.optim.RAdam(detector_params, lr=phase.lr,
                                    weight_decay=common.weight_decay),
                  torch.optim.RAdam(model.discriminator.parameters(), lr=common.discriminator_lr,
                                    weight_decay=common.weight_decay)]
    base_lrs = [phase.lr, common.discriminator_lr]
    # The number of iterations is left out, so a longer run resumes a shorter one.
    checkpoints = Checkpointer(Path("checkpoints") / name,
                               config_hash(common, {**asdict(phase), "iters": None},
                                           model_config, losses, seed, params["body_model"],
                                           world_size))
    start = 0
    # Resume only with the logs of the interrupted run (dvc.yaml keeps them: persist).
    state = checkpoints.load() if Path(f"logs/{name}/metrics.json").is_file() else None
    if state is not None:
        model.load_state_dict(state["model"])
        for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        torch.set_rng_state(state["torch_rng"])
        prior.rng.bit_generator.state = state["prior_rng"]
        start = state["step"]
        print(f"{name}: resuming at step {start} from {checkpoints.path}")
    network = (DistributedDataParallel(model, find_unused_parameters=True)
               if world_size > 1 else model)
    live = (Live(f"logs/{name}", dvcyaml=False, save_dvc_exp=False, resume=start > 0)
            if rank == 0 else None)
    loop(network, model, optimizers, base_lrs, detector_params, common, phase, start, seed + rank,
         device, live, checkpoints, prior, rank)
    if rank == 0:
        Path(f"models/{name}").mkdir(parents=True, exist_ok=True)
        tmp = Path(f"models/{name}/model.pt.tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, f"models/{name}/model.pt")
        live.end()
    if world_size > 1:
        torch.distributed.destroy_process_group()


def loop(network, model, optimizers, base_lrs, detector_params, common: TrainParams,
         phase: PhaseParams, start: int, seed: int, device, live, checkpoints, prior,
         rank: int) -> None:
    """Run steps ``start .. phase.iters - 1``."""
    model.train()
    bad_in_a_row = skipped = 0
    data = batches(common, seed, skip=start)
    for step in range(start, phase.iters):
        images, targets, _ = next(data)
        images = images.to(device)
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        for optimizer, base in zip(optimizers, base_lrs, strict=True):
            for group in optimizer.param_groups:
                group["lr"] = base * lr_factor(step, common.warmup_iters)
        losses = network(images, targets)
        detector, adversary = split_losses(losses)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(detector.item() + adversary.item()):
            skipped, bad_in_a_row = skipped + 1, bad_in_a_row + 1
            print(f"step {step}: non-finite loss, skipped ({skipped} so far)")
            if bad_in_a_row > common.max_bad_steps:
                raise RuntimeError(f"{bad_in_a_row} non-finite losses in a row at step {step}")
            continue
        bad_in_a_row = 0
        (detector + adversary).backward()
        torch.nn.utils.clip_grad_norm_(detector_params, common.grad_clip)
        torch.nn.utils.clip_grad_norm_(model.discriminator.parameters(), common.grad_clip)
        for optimizer in optimizers:
            optimizer.step()
        if live is not None and (step % common.log_every == 0 or step == phase.iters - 1):
            live.step = step
            for key, value in losses.items():
                live.log_metric(f"train/{key}", round(float(value.detach()), 6))
            live.log_metric("train/total", round(float(detector.detach()), 6))
            live.log_metric("train/skipped_steps", skipped)
            live.log_metric("train/lr", optimizers[0].param_groups[0]["lr"])
            live.next_step()
        if rank == 0 and (step + 1) % common.checkpoint_every == 0:
            checkpoints.save(step + 1, model, optimizers, prior.rng.bit_generator.state)


if __name__ == "__main__":
    main()
