"""Probe (not part of the pipeline): eb7670e's three speed changes, on the same batches in
one process.

Rows: ``bench/train.py``'s previous profile (the issue-13 day's step); the default step
as it was before eb7670e (the RPN on P2 too, PyTorch's stem max pooling, the prior's
poses converted one at a time); and the default step now. The two default rows start
from the trained baseline weights (the RPN head is shared by all levels, so the same
weights serve both). Three rounds of ``bench.train.step_time``; each row keeps its
fastest.

    PYTHONPATH=. python docs/probes/rpn_levels/step_speed.py     # in a workspace after `dvc repro`
"""

from __future__ import annotations

import dataclasses

import torch

from bench.train import PREVIOUS_PROFILE, TRAINED, OnePoseAtATimePrior, build_step, step_time
from model.body import load_body_model
from model.rcnn import ModelConfig
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed

ROUNDS = 3


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.baseline")
    body = load_body_model("anny")
    config = typed(ModelConfig, params, "model")
    every_level = dataclasses.replace(config, anchor_sizes=(16, 32, 64, 128, 256))
    before = build_step(params, body, every_level, "baseline", None, "cpu", TRAINED)
    before.criterion.prior = OnePoseAtATimePrior(0)
    before.network.backbone.body.maxpool = torch.nn.MaxPool2d(3, 2, 1)
    previous = dataclasses.replace(config, **PREVIOUS_PROFILE)
    steps = {"previous profile": build_step(params, body, previous, "baseline", None, "cpu",
                                            previous=True),
             "default before eb7670e": before,
             "default now": build_step(params, body, config, "baseline", None, "cpu", TRAINED)}
    seconds = {label: float("inf") for label in steps}
    for _ in range(ROUNDS):
        for label, step in steps.items():  # the same batches for each
            seconds[label] = min(seconds[label], step_time(step, batches(common, phase, 0)))
    for label, value in seconds.items():
        print(f"{label}: {value * 1000:.0f} ms per step, {phase.batch_size / value:.2f} "
              f"images/s, {seconds['previous profile'] / value:.2f}x the previous profile, "
              f"{seconds['default before eb7670e'] / value:.3f}x the default before")


if __name__ == "__main__":
    main()
