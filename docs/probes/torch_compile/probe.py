"""Probe (not part of the pipeline): does ``torch.compile`` (inductor, CPU) speed up the
default training step?

Builds two default-profile baseline steps with ``bench.train.build_step`` (this run's
trained baseline weights, the same batches), compiles the backbone (ResNet-18 + FPN) of
one of them, and times both alternately for two rounds (``bench.train.step_time``).

    python docs/probes/torch_compile/probe.py   # in the committed run's workspace
"""

from __future__ import annotations

import time

import torch

from bench.train import TRAINED, build_step, step_time
from model.body import load_body_model
from model.rcnn import ModelConfig
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.baseline")
    body = load_body_model(params["body_model"]["kind"])
    config = typed(ModelConfig, params, "model")
    steps = {label: build_step(params, body, config, "baseline", None, "cpu", TRAINED)
             for label in ("eager", "backbone compiled")}
    compiled = steps["backbone compiled"]
    compiled.network.backbone = torch.compile(compiled.network.backbone)
    start = time.perf_counter()
    compiled(*next(batches(common, phase, 0))[:2])
    print(f"compilation and first step: {time.perf_counter() - start:.0f} s")
    for round_ in range(2):
        for label, step in steps.items():
            seconds = step_time(step, batches(common, phase, 0))
            print(f"round {round_}: {label:18s} {phase.batch_size / seconds:.2f} images/s")


if __name__ == "__main__":
    main()
