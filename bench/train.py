"""Training-step speed and memory, with and without the scene losses.

Runs the default network (params.yaml ``model``, with the trained baseline weights
when they exist) on the same batches of the default training shards (``make repro``
must have prepared them), with the baseline losses and then with the full fine-tune
losses (interpenetration + depth order). Prints images/s, peak extra resident memory,
and the step time relative to the baseline. The issue-5 target is that the scene
losses add at most 50 % to a CPU training step.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.memory import peak_extra_mb
from model.body import load_body_model
from model.discriminator import build_discriminator
from model.io import read_model
from model.rcnn import ModelConfig, build_model
from model.smpl_criterion import SMPLCriterion
from pipelines.synthetic.poses import SyntheticPrior
from pipelines.training import PhaseParams, TrainParams, batches, split_losses
from stages.common import read_params, typed
from stages.train import criterion_config

STEPS = 8
TRAINED = "models/baseline/model.pt"  # used when `make repro` has made it
ROUNDS = 2  # the two settings alternate, and each keeps its fastest round (less noise)


class Step:
    """One training step of a network and its criterion."""

    def __init__(self, network, criterion) -> None:
        self.network, self.criterion = network.train(), criterion
        parameters = [*network.parameters(), *criterion.discriminator.parameters()]
        self.optimizer = torch.optim.RAdam(parameters, lr=1e-4, foreach=True)

    def __call__(self, images, targets) -> None:
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
    return (time.perf_counter() - start) / STEPS


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    data_phase = typed(PhaseParams, params, "train.baseline")  # both settings read its batches
    body = load_body_model(params["body_model"]["kind"])
    settings = {}
    for label, phase_name, variant in (("baseline losses", "baseline", None),
                                       ("+ scene losses (full)", "finetune", "full")):
        network = build_model(typed(ModelConfig, params, "model"), body, 0)
        discriminator = build_discriminator(body.num_joints, body.shape_dim, 1)
        if Path(TRAINED).is_file():  # trained predictions overlap like real ones do
            state = read_model(TRAINED)
            network.load_state_dict(state["network"])
            discriminator.load_state_dict(state["discriminator"])
        config = criterion_config(params, typed(PhaseParams, params, f"train.{phase_name}"),
                                  variant)
        settings[label] = Step(network, SMPLCriterion(body, discriminator, SyntheticPrior(0),
                                                      config))
    seconds = {label: float("inf") for label in settings}
    for _ in range(ROUNDS):
        for label, step in settings.items():  # same batches for both
            seconds[label] = min(seconds[label], step_time(step, batches(common, data_phase, 0)))
    rows = []
    for label, step in settings.items():
        memory = peak_extra_mb(lambda s=step: step_time(s, batches(common, data_phase, 0)))
        rows.append((label, data_phase.batch_size / seconds[label], memory))
    print(f"{'training step, batch ' + str(data_phase.batch_size):28s} {'images/s':>9s} "
          f"{'peak extra MB':>14s} {'step time':>10s}")
    for label, speed, memory in rows:
        print(f"{label:28s} {speed:9.2f} {memory:14.0f} {rows[0][1] / speed:9.2f}x")


if __name__ == "__main__":
    main()
