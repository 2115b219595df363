"""RAdam with decoupled weight decay, run on torch's fused AdamW kernel.

``torch.optim.RAdam`` has no fused form: on the CPU it updates the weights one tensor and
one operation at a time, 40-70 ms per step for our 23 million weights (a seventh of a
training step on two cores; README, "Speed"). Its rectified update is Adam's with three
numbers changed, so torch's fused Adam kernel (one multithreaded pass over each tensor)
computes it exactly. At step ``t``, with ``b1 = 1 - beta1^t`` and ``b2 = 1 - beta2^t``:

- RAdam (decoupled decay, rectification ``r_t``, used once ``rho_t > 5``):
  ``p -= lr * wd * p``, then ``p -= lr * r_t * sqrt(b2) / b1 * m / (sqrt(v) + eps)``;
- fused AdamW: ``p -= lr' * wd' * p``, then ``p -= lr' / b1 * m / (sqrt(v) / sqrt(b2) + eps')``.

They agree for ``lr' = lr * r_t``, ``eps' = eps / sqrt(b2)`` and ``wd' = wd / r_t``. The
first few steps (``rho_t <= 5``; five at ``beta2 = 0.999``) are RAdam's unrectified
update, ``p -= lr * m / b1``, written out below. The state (``step``, ``exp_avg``,
``exp_avg_sq``) is ``torch.optim.RAdam``'s, so checkpoints of either load in the other;
``tests/test_radam.py`` compares both on random weights and gradients.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import torch
from torch.optim.adam import adam

__all__ = ["RAdam"]


class RAdam(torch.optim.Optimizer):
    """``torch.optim.RAdam(..., decoupled_weight_decay=True)``, fused (see the module)."""

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"RAdam: invalid lr {lr}, betas {betas}, eps {eps} or "
                             f"weight_decay {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch.optim.Optimizer's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for step, tensors in self._by_step(group).items():
                self._update(group, step + 1, *tensors)
        return loss

    def _by_step(self, group: dict) -> dict[int, tuple[list, ...]]:
        """The group's weights with a gradient, as (weights, grads, exp_avgs, exp_avg_sqs,
        steps) lists, bucketed by their step count (a weight without a gradient in some
        step lags behind the others)."""
        buckets: dict[int, tuple[list, ...]] = defaultdict(lambda: ([], [], [], [], []))
        weights = [p for p in group["params"] if p.grad is not None]
        for weight in weights:
            if weight.grad.is_sparse:
                raise RuntimeError("RAdam does not support sparse gradients")
            state = self.state[weight]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=weight.device)
                state["exp_avg"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(weight,
                                                       memory_format=torch.preserve_format)
            # the fused kernel reads the step on the weight's device (torch's RAdam keeps it
            # on the CPU)
            state["step"] = state["step"].to(device=weight.device, dtype=torch.float32)
        steps = [int(s) for s in torch.stack([self.state[w]["step"].cpu() for w in weights])
                 .tolist()] if weights else []
        for weight, step in zip(weights, steps, strict=True):
            state = self.state[weight]
            for bucket, item in zip(buckets[step], (weight, weight.grad, state["exp_avg"],
                                                    state["exp_avg_sq"], state["step"]),
                                    strict=True):
                bucket.append(item)
        return buckets

    @staticmethod
    def _update(group: dict, step: int, weights: list, grads: list, exp_avgs: list,
                exp_avg_sqs: list, steps: list) -> None:
        """One RAdam update of ``weights``, all at ``step`` (counted from 1)."""
        lr, (beta1, beta2), eps, decay = (group["lr"], group["betas"], group["eps"],
                                          group["weight_decay"])
        rectification = _rectification(step, beta2)
        if rectification is not None:  # the rectified update: fused AdamW, changed numbers
            root_b2 = math.sqrt(1 - beta2**step)
            adam(weights, grads, exp_avgs, exp_avg_sqs, [], steps, fused=True,
                 decoupled_weight_decay=True, amsgrad=False, beta1=beta1, beta2=beta2,
                 lr=lr * rectification, weight_decay=decay / rectification,
                 eps=eps / root_b2, maximize=False)
            return
        # 1. decoupled weight decay; 2. the moments; 3. the unrectified (momentum) step
        for weight, grad, exp_avg, exp_avg_sq, count in zip(
                weights, grads, exp_avgs, exp_avg_sqs, steps, strict=True):
            count += 1
            weight.mul_(1 - lr * decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            weight.add_(exp_avg, alpha=-lr / (1 - beta1**step))


def _rectification(step: int, beta2: float) -> float | None:
    """RAdam's ``r_t`` at ``step``, or None while the variance is not yet tractable
    (``rho_t <= 5``)."""
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * beta2**step / (1 - beta2**step)
    if rho_t <= 5:
        return None
    return math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                     / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
