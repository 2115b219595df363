"""Is the interpenetration loss's gradient, through the network, a descent direction?

    PYTHONPATH=<repo> python descent.py            # every trainable weight moves
    PYTHONPATH=<repo> python descent.py --head     # only the SMPL branch's weights

Run in the workspace of ``run.sh`` (32 crowded training images, the committed baseline).
On the first fine-tune batches with a non-zero L_P (``losses.no_depth``), in training
mode: L_P, then L_P again after a step of length eta (in weight space) along
-grad(L_P), with the same RNG state (the same sampling and dropout draws). With
``--head`` the box head's scores, and so the proposals and the one chosen per person,
cannot change.
"""
import sys

import torch

from model.smpl_criterion import SMPLCriterion
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed
from stages.train import anchors, build_parts

torch.set_num_threads(2)
params = read_params()
common = typed(TrainParams, params, "train.common")
phase = typed(PhaseParams, params, "train.finetune")
parts = build_parts(params, "finetune", "no_depth", torch.device("cpu"))  # the baseline's weights
network = parts.network
criterion = SMPLCriterion(parts.body, parts.discriminator, parts.prior, parts.losses,
                          anchors(network))
network.train()
moving = network.roi_heads.smpl_head if "--head" in sys.argv else network
weights = [p for p in moving.parameters() if p.requires_grad]
starting = [p.detach().clone() for p in weights]


def step_losses(images, targets, seed) -> dict:
    """The fine-tune step's named losses, with the RNG state of batch ``seed``."""
    torch.manual_seed(seed)
    detector, branch = network(images, targets)
    return {**detector, **criterion(branch, targets, tuple(images.shape[-2:]))}


def collision(images, targets, seed):
    return step_losses(images, targets, seed)["loss_collision"]


def gradient_norm(value: torch.Tensor) -> tuple[tuple, float]:
    grads = torch.autograd.grad(value, weights, allow_unused=True, retain_graph=True)
    return grads, float(torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None)))


def shift(grads: tuple, scale: float) -> None:
    """Set the weights to the committed baseline's plus ``scale`` times ``grads``."""
    with torch.no_grad():
        for weight, start, grad in zip(weights, starting, grads, strict=True):
            weight.copy_(start if grad is None else start + scale * grad)


data = batches(common, phase, 0)
found = 0
for count in range(40):
    images, targets, _ = next(data)
    losses = step_losses(images, targets, count)
    value = losses["loss_collision"]
    if float(value.detach()) <= 0:
        continue
    grads, norm = gradient_norm(value)
    # the rest of the detector's loss (the adversarial terms train the discriminator)
    _, others = gradient_norm(sum(v for k, v in losses.items()
                                  if k != "loss_collision" and not k.startswith("adv_")))
    row = [f"batch {count}: L_P {float(value.detach()):.4f}, |grad| {norm:.3g} "
           f"(the other losses' {others:.3g})"]
    for eta in (1e-5, 1e-4, 1e-3, 1e-2):
        shift(grads, -eta / norm)
        with torch.no_grad():
            row.append(f"step {eta:g}: {float(collision(images, targets, count)):.4f}")
        shift(grads, 0.0)
    print("; ".join(row), flush=True)
    found += 1
    if found == 6:
        break
