"""Training-step speed and memory: the previous CPU profile, the default, and the default
with the scene losses.

Runs on the same batches of the default training shards (``make repro`` must have
prepared them) with the baseline losses:

1. the previous CPU profile (before issue 13: float32, FPN and SMPL-branch convolutions
   256 wide, as the paper, every positive proposal in the SMPL branch, the RPN on every
   pyramid level, torchvision's RoIAlign kernel, PyTorch's max pooling, torch's RAdam and
   the prior's poses converted one at a time), fresh weights;
2. the default profile (params.yaml ``model``), with the trained baseline weights when
   they exist (a trained detector proposes more positives, so this row is the slower
   case);
3. the default profile with the full fine-tune losses (interpenetration + depth order).

Rows 2 and 3 run on the deterministic CPU kernels, as training does
(pipelines.determinism); row 1 on PyTorch's default ones, as it did. Prints images/s, peak
extra memory (each row's measured in a fresh process) and the speed
relative to row 1. Targets: row 2 at least 3x row 1 (issue 13); row 3 at most 1.5x row
2's step time (issue 5). With a GPU all rows run on CUDA (``--device cpu`` keeps them on
the CPU) and the memory column is the peak CUDA allocation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import time
from collections.abc import Callable
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
from pipelines.determinism import deterministic_cpu_kernels
from pipelines.synthetic.poses import ACTIVITIES, SyntheticPrior, sample_phenotype, sample_pose
from pipelines.training import (
    PhaseParams,
    TrainParams,
    batches,
    build_optimizers,
    on_device,
    split_losses,
)
from stages.common import read_params, typed
from stages.train import criterion_config

STEPS = 8
TRAINED = "models/baseline/model.pt"  # used when `make repro` has made it
PREVIOUS_PROFILE = {"fpn_channels": 256, "head_channels": 256, "precision": "fp32",
                    "smpl_rois_per_image": 0, "rpn_pre_nms_train": 1000,
                    "rpn_post_nms_train": 500, "box_batch_size_per_image": 64,
                    "anchor_sizes": (16, 32, 64, 128, 256)}  # the RPN on every level
ROUNDS = 2  # the two settings alternate, and each keeps its fastest round (less noise)


class Step:
    """One training step of a network and its criterion, with the pipeline's two
    optimisers, on the deterministic CPU kernels as training runs (``previous``: torch's
    RAdam and PyTorch's default kernels, as before issue 13)."""

    def __init__(self, network, criterion, previous: bool = False) -> None:
        self.network, self.criterion, self.previous = network.train(), criterion, previous
        modules = (network, criterion.discriminator)
        self.optimizers = ([torch.optim.RAdam(m.parameters(), lr=1e-4, weight_decay=1e-4,
                                              decoupled_weight_decay=True) for m in modules]
                           if previous else build_optimizers(*modules, 1e-4, 1e-4, 1e-4))

    def __call__(self, images, targets) -> None:
        device = next(self.network.parameters()).device
        with contextlib.nullcontext() if self.previous else deterministic_cpu_kernels(device):
            self.take(*on_device(images, targets, device))

    def take(self, images, targets) -> None:
        losses, branch = self.network(images, targets)
        losses.update(self.criterion(branch, targets, tuple(images.shape[-2:])))
        detector, adversary = split_losses(losses)
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        (detector + adversary).backward()
        for optimizer in self.optimizers:
            optimizer.step()


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


def with_torch_pooling(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` with torchvision's RoIAlign poolers instead of :mod:`ops.roi_align`'s
    and PyTorch's stem max pooling instead of :mod:`ops.max_pool`'s (the previous
    profile's step; same sampling, same outputs)."""
    heads = network.roi_heads
    for name in ("box_roi_pool", "smpl_roi_pool"):
        pool = getattr(heads, name)
        setattr(heads, name, torchvision.ops.MultiScaleRoIAlign(
            pool.featmap_names, pool.output_size, pool.sampling_ratio))
    stem = network.backbone.body.maxpool
    network.backbone.body.maxpool = torch.nn.MaxPool2d(stem.kernel, stem.stride, stem.padding)
    return network


class OnePoseAtATimePrior(SyntheticPrior):
    """The adversarial prior as it was before issue 13's last speed-ups: each pose's
    matrices computed in a call of their own (the same draws as :class:`SyntheticPrior`)."""

    def __call__(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        activities = self.rng.choice(ACTIVITIES, size=count)
        local = torch.stack([sample_pose(str(a), self.rng) for a in activities])
        rotmats = torch.cat([torch.eye(3).expand(count, 1, 3, 3), local], dim=1)
        shape = torch.stack([sample_phenotype(self.rng, self.child_fraction)
                             for _ in range(count)])
        return rotmats, shape


def build_step(params: dict, body, model_config: ModelConfig, phase_name: str,
               variant: str | None, device: str, weights: str | None = None,
               previous: bool = False) -> Step:
    """A training step of ``model_config`` with the losses of ``train.<phase_name>`` (and
    the scene losses of ``variant``), from fresh weights or those in the file ``weights``;
    with torchvision's RoIAlign kernel, PyTorch's max pooling, torch's RAdam and the
    one-pose-at-a-time prior if ``previous``."""
    network = build_model(model_config, body, 0)
    if previous:
        network = with_torch_pooling(network)
    discriminator = build_discriminator(body.num_joints, body.shape_dim, 1)
    if weights is not None:
        state = read_model(weights)  # trained predictions overlap like real ones do
        network.load_state_dict(state["network"])
        discriminator.load_state_dict(state["discriminator"])
    losses = criterion_config(params, typed(PhaseParams, params, f"train.{phase_name}"), variant)
    prior = OnePoseAtATimePrior(0) if previous else SyntheticPrior(0)
    criterion = SMPLCriterion(body, discriminator.to(device), prior, losses)
    return Step(network.to(device), criterion, previous)


def settings(params: dict, body, device: str) -> dict[str, Callable[[], Step]]:
    """The three rows' steps, each built when called."""
    config = typed(ModelConfig, params, "model")
    previous = dataclasses.replace(config, **PREVIOUS_PROFILE)
    trained = TRAINED if Path(TRAINED).is_file() else None
    return {
        "previous profile (fp32, 256)": lambda: build_step(params, body, previous, "baseline",
                                                           None, device, previous=True),
        "default profile": lambda: build_step(params, body, config, "baseline", None, device,
                                              trained),
        "default + scene losses (full)": lambda: build_step(params, body, config, "finetune",
                                                            "full", device, trained),
    }


def row_memory(label: str, device: str) -> float:
    """Peak extra memory (MB) of the row ``label``, built and run in this process (run it
    in a fresh one: memory an earlier row freed would otherwise hide the peak)."""
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    data_phase = typed(PhaseParams, params, "train.baseline")
    body = load_body_model(params["body_model"]["kind"]).to(device)
    step = settings(params, body, device)[label]()
    return peak_memory_mb(step, batches(common, data_phase, 0), device)


def main() -> None:
    device = parse_device(__doc__.splitlines()[0])
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    data_phase = typed(PhaseParams, params, "train.baseline")  # every row reads its batches
    body = load_body_model(params["body_model"]["kind"]).to(device)
    steps = {label: build() for label, build in settings(params, body, device).items()}
    seconds = {label: float("inf") for label in steps}
    for _ in range(ROUNDS):
        for label, step in steps.items():  # same batches for each
            seconds[label] = min(seconds[label], step_time(step, batches(common, data_phase, 0)))
    del steps
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        memory = {label: pool.apply(row_memory, (label, device)) for label in seconds}
    rows = [(label, data_phase.batch_size / seconds[label], memory[label]) for label in seconds]
    print(f"device: {describe(device)}")
    print(f"{'training step, batch ' + str(data_phase.batch_size):30s} {'images/s':>9s} "
          f"{'peak extra MB':>14s} {'vs previous':>12s}")
    for label, speed, mb in rows:
        print(f"{label:30s} {speed:9.2f} {mb:14.0f} {speed / rows[0][1]:11.2f}x")
    print(f"scene losses: step time x{rows[1][1] / rows[2][1]:.2f} of the default's")


if __name__ == "__main__":
    main()
