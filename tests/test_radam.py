"""The fused RAdam against torch's own (the slow, obviously correct reference)."""

from __future__ import annotations

import copy

import pytest
import torch

from pipelines.radam import RAdam

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _weights(seed: int, device: str = "cpu") -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(64, 3, 3, 3), (64,), (300, 17), (1,), (5, 7, 2)]
    return [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=torch.float64)
                               .to(device)) for s in shapes]


def _run(optimizer: torch.optim.Optimizer, weights: list, steps: range, seed: int,
         skip: int | None = None) -> None:
    """``steps`` updates with random gradients (drawn from ``seed`` and the step); weight
    ``skip`` gets none on odd steps; the learning rate changes mid-way (as the warm-up)."""
    for step in steps:
        generator = torch.Generator().manual_seed(1000 * seed + step)
        for index, weight in enumerate(weights):
            grad = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
            weight.grad = None if (index == skip and step % 2) else grad.to(weight.device)
        for group in optimizer.param_groups:
            group["lr"] = 3e-3 if step < 12 else 1e-3
        optimizer.step()


def _pair(device: str = "cpu", weight_decay: float = 0.1):
    ours, theirs = _weights(0, device), _weights(0, device)
    kwargs = {"lr": 1e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": weight_decay}
    return (ours, RAdam(ours, **kwargs),
            theirs, torch.optim.RAdam(theirs, decoupled_weight_decay=True, **kwargs))


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_matches_torch_radam_through_the_unrectified_and_rectified_steps(weight_decay):
    ours, fused, theirs, reference = _pair(weight_decay=weight_decay)
    # beta2 = 0.99: rho_t <= 5 for the first 5 steps, then the rectified update
    _run(fused, ours, range(40), seed=1, skip=2)
    _run(reference, theirs, range(40), seed=1, skip=2)
    for mine, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine.detach(), expected.detach(), rtol=1e-12, atol=1e-12)
    for mine, expected in zip(ours, theirs, strict=True):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(fused.state[mine][key].to(torch.float64),
                                       reference.state[expected][key].to(torch.float64))
    # and the weights really moved (not a no-op agreeing with a no-op)
    assert (ours[0] - _weights(0)[0]).abs().max() > 1e-3


def _resumed(optimizer_class, weights: list, state: dict, **kwargs):
    """Fresh weights equal to ``weights`` and a fresh optimiser loaded from a copy of
    ``state`` (as a checkpoint file gives: a state dict shares the optimiser's tensors)."""
    copies = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    optimizer = optimizer_class(copies, **kwargs)
    optimizer.load_state_dict(copy.deepcopy(state))
    return copies, optimizer


@pytest.mark.parametrize("direction", ["torch to ours", "ours to torch"])
def test_checkpoints_load_either_way(direction):
    """Resuming in the other optimiser continues the run as if never interrupted (a
    load that lost the moments or the step count would restart the warm-up)."""
    ours, fused, theirs, reference = _pair()
    _run(fused, ours, range(20), seed=2)  # uninterrupted
    _run(reference, theirs, range(8), seed=2)
    if direction == "torch to ours":
        resumed, optimizer = _resumed(RAdam, theirs, reference.state_dict())
    else:
        theirs, reference = _resumed(RAdam, theirs, reference.state_dict())
        _run(reference, theirs, range(8, 10), seed=2)
        resumed, optimizer = _resumed(torch.optim.RAdam, theirs, reference.state_dict(),
                                      decoupled_weight_decay=True)
    _run(optimizer, resumed, range(8 if direction == "torch to ours" else 10, 20), seed=2)
    for mine, expected in zip(ours, resumed, strict=True):
        torch.testing.assert_close(mine.detach(), expected.detach(), rtol=1e-12, atol=1e-12)


def test_float32_weights_follow_the_reference():
    ours, theirs = [_weights(4)[2].float()], [_weights(4)[2].float()]
    ours, theirs = [torch.nn.Parameter(ours[0])], [torch.nn.Parameter(theirs[0])]
    fused = RAdam(ours, lr=1e-3, weight_decay=1e-4)
    reference = torch.optim.RAdam(theirs, lr=1e-3, weight_decay=1e-4,
                                  decoupled_weight_decay=True)
    _run(fused, ours, range(30), seed=5)
    _run(reference, theirs, range(30), seed=5)
    torch.testing.assert_close(ours[0].detach(), theirs[0].detach(), rtol=1e-5, atol=1e-6)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="invalid lr"):
        RAdam(_weights(0), lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        RAdam(_weights(0), betas=(0.9, 1.0))


@CUDA
def test_cuda_matches_the_cpu():
    ours, fused, _, _ = _pair("cuda")
    cpu, on_cpu, _, _ = _pair("cpu")
    _run(fused, ours, range(20), seed=6, skip=1)
    _run(on_cpu, cpu, range(20), seed=6, skip=1)
    for mine, expected in zip(ours, cpu, strict=True):
        torch.testing.assert_close(mine.detach().cpu(), expected.detach(), rtol=1e-10,
                                   atol=1e-10)
