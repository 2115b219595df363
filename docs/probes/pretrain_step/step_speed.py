"""Crop-pretraining step speed at a given cap on the SMPL-branch RoIs per crop, and
optionally where the step goes (``torch.profiler``). Not part of the pipeline.

    PYTHONPATH=. python docs/probes/pretrain_step/step_speed.py 8 --profile   # from the root
    PYTHONPATH=. python docs/probes/pretrain_step/step_speed.py 2
    PYTHONPATH=. python docs/probes/pretrain_step/step_speed.py 2 --per-image-bodies

Runs the ``train.pretrain`` phase as ``stages.train`` does (fresh weights, the training
shards of ``make repro``, the deterministic CPU kernels): five warm-up steps, then
crops/s over fifteen, then (``--profile``) five steps under the profiler.
``--per-image-bodies`` poses each crop's annotated people in a body-model call of its
own, as the criterion did before it posed every crop's in one call.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from model.discriminator import build_discriminator
from model.mirror import mirror_index
from model.rcnn import ModelConfig
from model.smpl_criterion import SMPLCriterion
from pipelines.determinism import deterministic_cpu_kernels
from pipelines.priors import build_prior
from pipelines.training import (
    PhaseParams,
    TrainParams,
    batches,
    build_optimizers,
    on_device,
    split_losses,
)
from stages.common import BodyModelParams, from_section, read_params, typed
from stages.train import build_network, criterion_config

WARMUP, TIMED, PROFILED = 5, 15, 5


def pretraining_step(cap: int, per_image_bodies: bool = False):
    """``(step, crops per step)``: one ``train.pretrain`` step as ``stages.train`` runs
    it (fresh weights, the training shards), each call on the stream's next batch."""
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = dataclasses.replace(typed(PhaseParams, params, "train.pretrain"),
                                smpl_rois_per_image=cap)
    torch.manual_seed(0)
    body = from_section(BodyModelParams, params, "body_model").build()
    prior = build_prior(common.prior, 1, body.num_joints, body.shape_dim, 0.2)
    network = build_network(typed(ModelConfig, params, "model"), phase, body, 0).train()
    discriminator = build_discriminator(body.num_joints, body.shape_dim, 1)
    optimizers = build_optimizers(network, discriminator, phase.lr, common.discriminator_lr,
                                  common.weight_decay)
    criterion = SMPLCriterion(body, discriminator, prior, criterion_config(params, phase, None))
    if per_image_bodies:
        criterion._annotated_vertices = lambda targets: [
            body(t["rotmats"], t["shape"]).vertices.detach() for t in targets]
    data = batches(common, phase, 0, rotation_mirror=mirror_index(body.rotation_names),
                   body_model=body.name)

    def step() -> None:
        images, targets = on_device(*next(data)[:2], torch.device("cpu"))
        detector_losses, branch = network(images, targets)
        losses = {**detector_losses,
                  **criterion(branch, targets, tuple(images.shape[-2:]))}
        detector, adversary = split_losses(losses)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        (detector + adversary).backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), common.grad_clip)
        for optimizer in optimizers:
            optimizer.step()

    return step, phase.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cap", type=int, help="SMPL-branch RoIs per crop")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--per-image-bodies", action="store_true")
    args = parser.parse_args()
    step, batch_size = pretraining_step(args.cap, args.per_image_bodies)
    with deterministic_cpu_kernels(torch.device("cpu")):
        for _ in range(WARMUP):
            step()
        start = time.perf_counter()
        for _ in range(TIMED):
            step()
        seconds = (time.perf_counter() - start) / TIMED
        print(f"cap {args.cap}{' per-image bodies' if args.per_image_bodies else ''}: "
              f"{batch_size / seconds:.2f} crops/s, "
              f"{seconds * 1000:.0f} ms per step")
        if args.profile:
            with torch.profiler.profile() as profiler:
                for _ in range(PROFILED):
                    step()
            print(profiler.key_averages().table(sort_by="cpu_time_total", row_limit=30))


if __name__ == "__main__":
    main()
