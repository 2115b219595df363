"""Training-step speed and memory: the previous CPU profile, the default, and the default
with the scene losses.

Runs on the same batches of the default training shards (``make repro`` must have
prepared them) with the baseline losses:

1. the previous CPU profile (before issue 13: float32, FPN and SMPL-branch convolutions
   256 wide, as the paper, and torchvision's RoIAlign kernel), fresh weights;
2. the default profile (params.yaml ``model``), with the trained baseline weights when
   they exist (a trained detector proposes more positives, so this row is the slower
   case);
3. the default profile with the full fine-tune losses (interpenetration + depth order).

Prints images/s, peak extra memory and the speed relative to row 1. Targets: row 2 at
least 3x row 1 (issue 13); row 3 at most 1.5x row 2's step time (issue 5). With a GPU all
rows run on CUDA (``--device cpu`` keeps them on the CPU) and the memory column is the
peak CUDA allocation.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
import torchvision

from bench._scenes import describe, parse_device, synchronize
from bench.memory import peak_extra_mb
from model.body import load_body_model
from model.discriminator import build_discriminator
from model.io import read_model
from model.rcnn import ModelConfig, build_model
from model.smpl_criterion import SMPLCriterion
from pipelines.synthetic.poses import SyntheticPrior
from pipelines.training import PhaseParams, TrainParams, batches, on_device, split_losses
from stages.common import read_params, typed
from stages.train import criterion_config

STEPS = 8
TRAINED = "models/baseline/model.pt"  # used when `make repro` has made it
PREVIOUS_PROFILE = {"fpn_channels": 256, "head_channels": 256, "precision": "fp32"}
ROUNDS = 2  # the two settings alternate, and each keeps its fastest round (less noise)


class Step:
    """One training step of a network and its criterion."""

    def __init__(self, network, criterion) -> None:
        self.network, self.criterion = network.train(), criterion
        parameters = [*network.parameters(), *criterion.discriminator.parameters()]
        self.optimizer = torch.optim.RAdam(parameters, lr=1e-4)

    def __call__(self, images, targets) -> None:
        images, targets = on_device(images, targets, next(self.network.parameters()).device)
        losses, branch = self.network(images, targets)
        losses.update(self.criterion(branch, targets, tuple(images.shape[-2:])))
        detector, adversary = split_losses(losses)
        self.optimizer.zero_grad()
        (detector + adversary).backward()
        self.optimizer.step()


def step_time(step: Step, data) -> float:
    """Mean seconds per training step over ``STEPS`` steps after one warm-up step."""
    step(*next(data)[:2])
    start = time.perf_counter()
    for _ in range(STEPS):
        step(*next(data)[:2])
    synchronize()
    return (time.perf_counter() - start) / STEPS


def peak_memory_mb(step: Step, data, device: str) -> float:
    """Peak extra memory of ``STEPS`` steps: resident memory on the CPU, allocations on CUDA."""
    if device == "cpu":
        return peak_extra_mb(lambda: step_time(step, data))
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step_time(step, data)
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def with_torchvision_pooling(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` with torchvision's RoIAlign poolers instead of :mod:`ops.roi_align`'s
    (the previous profile's step; same sampling, same outputs)."""
    heads = network.roi_heads
    for name in ("box_roi_pool", "smpl_roi_pool"):
        pool = getattr(heads, name)
        setattr(heads, name, torchvision.ops.MultiScaleRoIAlign(
            pool.featmap_names, pool.output_size, pool.sampling_ratio))
    return network


def build_step(params: dict, body, model_config: ModelConfig, phase_name: str,
               variant: str | None, device: str, weights: str | None = None,
               torchvision_pooling: bool = False) -> Step:
    """A training step of ``model_config`` with the losses of ``train.<phase_name>`` (and
    the scene losses of ``variant``), from fresh weights or those in the file ``weights``;
    with torchvision's RoIAlign kernel if ``torchvision_pooling``."""
    network = build_model(model_config, body, 0)
    if torchvision_pooling:
        network = with_torchvision_pooling(network)
    discriminator = build_discriminator(body.num_joints, body.shape_dim, 1)
    if weights is not None:
        state = read_model(weights)  # trained predictions overlap like real ones do
        network.load_state_dict(state["network"])
        discriminator.load_state_dict(state["discriminator"])
    losses = criterion_config(params, typed(PhaseParams, params, f"train.{phase_name}"), variant)
    criterion = SMPLCriterion(body, discriminator.to(device), SyntheticPrior(0), losses)
    return Step(network.to(device), criterion)


def main() -> None:
    device = parse_device(__doc__.splitlines()[0])
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    data_phase = typed(PhaseParams, params, "train.baseline")  # both settings read its batches
    body = load_body_model(params["body_model"]["kind"]).to(device)
    config = typed(ModelConfig, params, "model")
    previous = dataclasses.replace(config, **PREVIOUS_PROFILE)
    trained = TRAINED if Path(TRAINED).is_file() else None
    settings = {
        "previous profile (fp32, 256)": build_step(params, body, previous, "baseline", None,
                                                   device, torchvision_pooling=True),
        "default profile": build_step(params, body, config, "baseline", None, device, trained),
        "default + scene losses (full)": build_step(params, body, config, "finetune", "full",
                                                    device, trained),
    }
    seconds = {label: float("inf") for label in settings}
    for _ in range(ROUNDS):
        for label, step in settings.items():  # same batches for both
            seconds[label] = min(seconds[label], step_time(step, batches(common, data_phase, 0)))
    rows = []
    for label, step in settings.items():
        memory = peak_memory_mb(step, batches(common, data_phase, 0), device)
        rows.append((label, data_phase.batch_size / seconds[label], memory))
    print(f"device: {describe(device)}")
    print(f"{'training step, batch ' + str(data_phase.batch_size):30s} {'images/s':>9s} "
          f"{'peak extra MB':>14s} {'vs previous':>12s}")
    for label, speed, memory in rows:
        print(f"{label:30s} {speed:9.2f} {memory:14.0f} {speed / rows[0][1]:11.2f}x")
    print(f"scene losses: step time x{rows[1][1] / rows[2][1]:.2f} of the default's")


if __name__ == "__main__":
    main()
