"""Training-step speed and memory, with and without the scene losses.

Runs the default network (params.yaml ``model``) on batches of the default training
shards (``make repro`` must have prepared them) for the baseline losses, then for the
full fine-tune (interpenetration + depth order), and prints images/s, peak extra
resident memory, and the overhead of the scene losses (issue 5 target: at most +50 %
on a CPU training step).
"""

from __future__ import annotations

import itertools
import time

import torch

from bench.memory import peak_extra_mb
from model.body import load_body_model
from model.rcnn import ModelConfig, build_model
from pipelines.poses import SyntheticPrior
from stages.common import read_params
from stages.train import PhaseParams, loss_config, typed
from stages.trainer import TrainParams, batches, split_losses

STEPS = 6


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
    rows = []
    for label, phase_name, variant in (("baseline losses", "baseline", None),
                                       ("+ scene losses (full)", "finetune", "full")):
        model = build_model(typed(ModelConfig, params, "model"), body, SyntheticPrior(0), 0)
        model.set_losses(loss_config(params, typed(PhaseParams, params, f"train.{phase_name}"),
                                     variant))
        model.train()
        optimizer = torch.optim.RAdam(model.parameters(), lr=1e-4)
        data = batches(common, seed=0)
        seconds = step_time(model, data, optimizer)
        memory = peak_extra_mb(lambda m=model, d=data, o=optimizer: [
            step_time(m, d, o) for _ in itertools.repeat(None, 1)])
        rows.append((label, common.batch_size / seconds, memory))
    print(f"{'training step, batch ' + str(common.batch_size):28s} {'images/s':>9s} "
          f"{'peak extra MB':>14s} {'step time':>10s}")
    for label, speed, memory in rows:
        print(f"{label:28s} {speed:9.2f} {memory:14.0f} {rows[0][1] / speed:9.2f}x")


if __name__ == "__main__":
    main()
