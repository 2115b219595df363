"""Training-step speed and memory, with and without the scene losses.

Runs the default network (params.yaml ``model``, with the trained baseline weights
when they exist) on the same batches of the default training shards (``make repro``
must have prepared them), with the baseline losses and then with the full fine-tune
losses (interpenetration + depth order). Prints images/s, peak extra resident memory,
and the step time relative to the baseline. The issue-5 target is that the scene
losses add at most 50 % to a CPU training step.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import torch

from bench.memory import peak_extra_mb
from model.body import load_body_model
from model.rcnn import ModelConfig, build_model
from pipelines.poses import SyntheticPrior
from stages.common import read_params
from stages.train import PhaseParams, loss_config, typed
from stages.trainer import TrainParams, batches, split_losses

STEPS = 8
TRAINED = "models/baseline/model.pt"  # used when `make repro` has made it
ROUNDS = 2  # the two settings alternate, and each keeps its fastest round (less noise)


def step_time(model, data, optimizer) -> float:
    """Mean seconds per training step over ``STEPS`` steps after one warm-up step."""
    def one():
        images, targets, _ = next(data)
        detector, adversary = split_losses(model(images, targets))
        optimizer.zero_grad()
        (detector + adversary).backward()
        optimizer.step()

    one()
    start = time.perf_counter()
    for _ in range(STEPS):
        one()
    return (time.perf_counter() - start) / STEPS


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    body = load_body_model(params["body_model"]["kind"])
    settings = {}
    for label, phase_name, variant in (("baseline losses", "baseline", None),
                                       ("+ scene losses (full)", "finetune", "full")):
        model = build_model(typed(ModelConfig, params, "model"), body, SyntheticPrior(0), 0)
        if Path(TRAINED).is_file():  # trained predictions overlap like real ones do
            model.load_state_dict(torch.load(TRAINED, map_location="cpu"))
        model.set_losses(loss_config(params, typed(PhaseParams, params, f"train.{phase_name}"),
                                     variant))
        model.train()
        settings[label] = (model, torch.optim.RAdam(model.parameters(), lr=1e-4))
    seconds = {label: float("inf") for label in settings}
    for _ in range(ROUNDS):
        for label, (model, optimizer) in settings.items():  # same batches for both
            seconds[label] = min(seconds[label], step_time(model, batches(common, 0), optimizer))
    rows = []
    for label, (model, optimizer) in settings.items():
        memory = peak_extra_mb(lambda m=model, o=optimizer: [
            step_time(m, batches(common, 0), o) for _ in itertools.repeat(None, 1)])
        rows.append((label, common.batch_size / seconds[label], memory))
    print(f"{'training step, batch ' + str(common.batch_size):28s} {'images/s':>9s} "
          f"{'peak extra MB':>14s} {'step time':>10s}")
    for label, speed, memory in rows:
        print(f"{label:28s} {speed:9.2f} {memory:14.0f} {rows[0][1] / speed:9.2f}x")


if __name__ == "__main__":
    main()
