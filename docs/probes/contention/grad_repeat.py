"""Probe (not part of the pipeline): is a `full` fine-tune step's gradient bitwise
repeatable? Run it in a workspace, with another CPU-heavy process beside it to see the
divergence the README describes ("another day's machine"):

    PYTHONPATH=. python docs/probes/contention/grad_repeat.py 60 [deterministic]

For each of the first N fine-tune batches, the same step (trained baseline weights, the
`full` losses, dropout and sampling re-seeded) runs twice; it prints how many of the
network's weight gradients differ between the two, and which of the SMPL branch's
outputs (rotation matrices, shape, camera) received different gradients from the
criterion. With ``deterministic``, each step runs under
``pipelines.determinism.deterministic_cpu_kernels``, as training does since the fix.
"""

from __future__ import annotations

import contextlib
import sys

import torch

from bench.train import TRAINED, build_step
from model.body import load_body_model
from model.rcnn import ModelConfig
from pipelines.determinism import deterministic_cpu_kernels
from pipelines.training import PhaseParams, TrainParams, batches, split_losses
from stages.common import read_params, typed


def gradients(step, images, targets) -> dict[str, torch.Tensor]:
    """Weight gradients of the detector's losses, and those reaching the branch outputs."""
    torch.manual_seed(0)
    step.network.zero_grad(set_to_none=True)
    losses, branch = step.network(images, targets)
    outputs = {"rotmats": branch.rotmats, "shape": branch.shape, "cam": branch.cam}
    for tensor in outputs.values():
        tensor.retain_grad()
    losses.update(step.criterion(branch, targets, tuple(images.shape[-2:])))
    split_losses(losses)[0].backward()
    named = {n: p.grad.clone() for n, p in step.network.named_parameters() if p.grad is not None}
    return {**named, **{f"output {k}": t.grad.clone() for k, t in outputs.items()
                        if t.grad is not None}}


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.finetune")
    body = load_body_model(params["body_model"]["kind"])
    config = typed(ModelConfig, params, "model")
    step = build_step(params, body, config, "finetune", "full", "cpu", TRAINED)
    data = batches(common, phase, 0)
    deterministic = sys.argv[2:] == ["deterministic"]
    for index in range(int(sys.argv[1])):
        images, targets = next(data)[:2]
        with deterministic_cpu_kernels("cpu") if deterministic else contextlib.nullcontext():
            first, second = gradients(step, images, targets), gradients(step, images, targets)
        differ = [name for name in first if not torch.equal(first[name], second[name])]
        print(f"batch {index}: {len(differ)} gradients differ", differ[:4], flush=True)


if __name__ == "__main__":
    main()
