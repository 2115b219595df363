"""Probe (not part of the pipeline): do the large float32 accumulating ``index_put``s of
a `full` fine-tune step (the backward of its gathers; PyTorch's CPU kernel adds them with
parallel atomics above 32,768 values) repeat bit for bit where they run? Run it in a
workspace with a trained baseline, alone or next to ``competitor.py``:

    python docs/probes/contention/competitor.py &
    PYTHONPATH=. python docs/probes/contention/atomic_sums.py 30

Each such operation of the first N fine-tune batches' steps is run four more times on
its own inputs, once with PyTorch's default kernels and once with the deterministic
ones; it prints per batch how many of those operations gave more than one result.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.train import TRAINED, build_step
from model.body import load_body_model
from model.rcnn import ModelConfig
from pipelines.determinism import deterministic_cpu_kernels
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed

sys.path.insert(0, str(Path(__file__).parent))
from grad_repeat import gradients  # noqa: E402  (this folder's other probe)

GRAIN = 32768  # PyTorch's internal::GRAIN_SIZE: the parallel atomic path starts here


class RepeatLargeSums(TorchDispatchMode):
    """Runs every large float32 accumulating index_put five times in all; counts those
    whose results were not all equal."""

    def __init__(self):
        super().__init__()
        self.large = self.varied = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        accumulate = len(args) > 3 and args[3] is True
        if (func is torch.ops.aten.index_put.default and accumulate
                and args[2].dtype == torch.float32 and args[2].numel() >= GRAIN):
            self.large += 1
            again = [func(*args) for _ in range(4)]
            self.varied += any(not torch.equal(out, other) for other in again)
        return out


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.finetune")
    body = load_body_model(params["body_model"]["kind"])
    step = build_step(params, body, typed(ModelConfig, params, "model"), "finetune", "full",
                      "cpu", TRAINED)
    data = batches(common, phase, 0)
    for index in range(int(sys.argv[1])):
        images, targets = next(data)[:2]
        counts = []
        for deterministic in (False, True):
            kernels = (deterministic_cpu_kernels("cpu") if deterministic
                       else contextlib.nullcontext())
            with kernels, RepeatLargeSums() as mode:
                gradients(step, images, targets)
            counts.append(f"{mode.varied} of {mode.large}")
        print(f"batch {index}: large sums that varied: default kernels {counts[0]}, "
              f"deterministic {counts[1]}", flush=True)


if __name__ == "__main__":
    main()
