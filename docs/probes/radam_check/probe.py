"""Probe (not part of the pipeline): the fused RAdam against torch's on real gradients.

Three batches of the fine-tune (L_P only, the committed baseline weights) give three
gradients of the detector's weights; two copies of the network then take 12 steps with
these gradients in turn, one with ``torch.optim.RAdam(decoupled_weight_decay=True)``, one
with ``pipelines.radam.RAdam``. Prints, for the weights that differ most, the largest
difference between the two copies over the largest change either made (float32
rounding only, if the two compute the same update), and whether any gradient is laid out
unlike its weight (the fused kernel reads both as flat memory).

    python docs/probes/radam_check/probe.py     # in a workspace after `dvc repro`
"""

from __future__ import annotations

import copy

import torch

from bench.train import TRAINED, build_step
from model.body import load_body_model
from model.rcnn import ModelConfig
from pipelines.radam import RAdam
from pipelines.training import PhaseParams, TrainParams, batches, split_losses
from stages.common import read_params, typed

STEPS = 12


def gradients(step, data, count: int) -> list[dict[str, torch.Tensor]]:
    """The detector's gradients on ``count`` batches (the adversary's losses left out)."""
    network, found = step.network, []
    for _ in range(count):
        images, targets = next(data)[:2]
        losses, branch = network(images, targets)
        losses.update(step.criterion(branch, targets, tuple(images.shape[-2:])))
        network.zero_grad()
        split_losses(losses)[0].backward()
        found.append({name: weight.grad.clone() for name, weight in network.named_parameters()
                      if weight.grad is not None})
        strided = [name for name, weight in network.named_parameters()
                   if weight.grad is not None and weight.grad.stride() != weight.stride()]
        print(f"gradients laid out unlike their weights: {len(strided)} {strided[:3]}")
    return found


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.finetune")
    body = load_body_model(params["body_model"]["kind"])
    step = build_step(params, body, typed(ModelConfig, params, "model"), "finetune",
                      "no_depth", "cpu", TRAINED)
    found = gradients(step, batches(common, phase, 0), 3)
    start = step.network
    theirs, ours = copy.deepcopy(start), copy.deepcopy(start)
    optimizers = [torch.optim.RAdam(theirs.parameters(), lr=1e-4, weight_decay=1e-4,
                                    decoupled_weight_decay=True),
                  RAdam(ours.parameters(), lr=1e-4, weight_decay=1e-4)]
    for index in range(STEPS):
        grads = found[index % len(found)]
        for copy_ in (theirs, ours):
            for name, weight in copy_.named_parameters():
                weight.grad = grads[name].clone() if name in grads else None
        for optimizer in optimizers:
            optimizer.step()
    ranked = []
    for (name, a), b, w in zip(theirs.named_parameters(), ours.parameters(),
                               start.parameters(), strict=True):
        moved = torch.maximum((a - w).abs().max(), (b - w).abs().max()).clamp_min(1e-12)
        ranked.append((((a - b).abs().max() / moved).item(), name))
    ranked.sort(reverse=True)
    print(f"after {STEPS} steps, largest |torch - fused| / largest change, worst five:")
    for ratio, name in ranked[:5]:
        print(f"  {ratio:.2e}  {name}")


if __name__ == "__main__":
    main()
