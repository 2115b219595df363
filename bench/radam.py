"""Optimiser step speed: torch's RAdam against ours (pipelines.radam, torch's fused AdamW
kernel), on the default network's weights.

The detector (the default profile of params.yaml ``model``, 21.6 million weights) and
the discriminator (1.7 million), each with its own optimiser as in training, decoupled
weight decay 1e-4, random gradients. Both optimisers first take the same eight steps
(past RAdam's five unrectified ones) and are checked to agree; then each times 20 steps,
three rounds in turn, keeping each one's fastest. Prints ms per step and the speed-up
(target: ours faster). On a GPU the weights move there and the step runs on CUDA.
"""

from __future__ import annotations

import torch

from bench._scenes import describe, parse_device, time_ms
from model.body import load_body_model
from model.discriminator import build_discriminator
from model.rcnn import ModelConfig, build_model
from pipelines.radam import RAdam
from stages.common import read_params, typed

WARM_UP, STEPS, ROUNDS = 8, 20, 3


def weights(device: str) -> list[list[torch.nn.Parameter]]:
    """The detector's and the discriminator's weights, each with a random gradient."""
    params = read_params()
    body = load_body_model(params["body_model"]["kind"])
    network = build_model(typed(ModelConfig, params, "model"), body, 0)
    discriminator = build_discriminator(body.num_joints, body.shape_dim, 1)
    generator = torch.Generator().manual_seed(0)
    groups = []
    for module in (network, discriminator):
        group = [p for p in module.to(device).parameters() if p.requires_grad]
        for weight in group:
            weight.grad = torch.randn(weight.shape, generator=generator).to(device) * 1e-3
        groups.append(group)
    return groups


def copies(groups: list[list[torch.nn.Parameter]]) -> list[list[torch.nn.Parameter]]:
    """Independent copies of the weights and their gradients."""
    copied = []
    for group in groups:
        new = [torch.nn.Parameter(w.detach().clone()) for w in group]
        for weight, original in zip(new, group, strict=True):
            weight.grad = original.grad.clone()
        copied.append(new)
    return copied


def step_all(optimizers: list[torch.optim.Optimizer]) -> None:
    """One step of every optimiser (the detector's, then the discriminator's)."""
    for optimizer in optimizers:
        optimizer.step()


def main() -> None:
    device = parse_device(__doc__.splitlines()[0])
    groups = weights(device)
    theirs_weights, ours_weights = copies(groups), copies(groups)
    theirs = [torch.optim.RAdam(g, lr=1e-4, weight_decay=1e-4, decoupled_weight_decay=True)
              for g in theirs_weights]
    ours = [RAdam(g, lr=1e-4, weight_decay=1e-4) for g in ours_weights]
    for _ in range(WARM_UP):
        step_all(theirs)
        step_all(ours)
    for mine, reference in zip(sum(ours_weights, []), sum(theirs_weights, []), strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-7)
    ms = {"torch": float("inf"), "ours": float("inf")}
    for _ in range(ROUNDS):
        for name, optimizers in (("torch", theirs), ("ours", ours)):
            ms[name] = min(ms[name], time_ms(lambda o=optimizers: step_all(o), STEPS))
    count = sum(w.numel() for w in sum(groups, [])) / 1e6
    print(f"device: {describe(device)}")
    print(f"RAdam step, {count:.1f} million weights: torch {ms['torch']:.1f} ms, "
          f"ours {ms['ours']:.1f} ms, {ms['torch'] / ms['ours']:.1f}x")


if __name__ == "__main__":
    main()
