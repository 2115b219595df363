"""Probe (not part of the pipeline): can a plain network learn pose from the pretraining
crops within a CPU budget, with no detector and no body model in the way?

A torchvision ResNet-18 (GroupNorm, from scratch, as the default backbone) regresses the
17 root-relative 3D joints of each crop's person directly (L1), batch 8, RAdam, on the
`pretrain` phase's own crop stream (params.yaml), with the official crops (only the
cropped person annotated, ``crop_others: null``): with ``crop_others`` the crop's
people keep their scene order, and target 0 is often somebody else, which an earlier
version of this probe regressed by mistake. Every 500 steps it prints PA-MPJPE (the
Table 1 joints) on 200 crops drawn with another seed, beside the mean pose of those crops.

    python docs/probes/pose_capacity/probe.py --steps 3000 --size 64 --frame camera

``--frame body`` rotates the targets into each person's body frame (the ground-truth
global rotation removed), so the network only has to see the articulation. ``--ema 0.99
0.998`` also evaluates exponential moving averages of the weights with those decays
(``torch.optim.swa_utils.AveragedModel``) beside the last step's weights.
Run it in a workspace where `dvc repro` has written the training shards.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torchvision
from torch import nn

from ops.metrics import H36M_EVAL_JOINTS, pa_mpjpe
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed


def official_crops() -> tuple[TrainParams, PhaseParams]:
    """The pretraining phase's crop stream settings with the official crops: only the
    cropped person annotated (``crop_others`` keeps a crop's people in scene order, so
    target 0 would often be somebody else)."""
    params = read_params()
    common = dataclasses.replace(typed(TrainParams, params, "train.common"), crop_others=None)
    return common, typed(PhaseParams, params, "train.pretrain")


def resnet18_from_scratch(outputs: int, norm: str = "gn") -> nn.Module:
    """A torchvision ResNet-18 with fresh weights, GroupNorm (as the default backbone) or
    BatchNorm (``norm="bn"``)."""
    layer = (lambda width: nn.GroupNorm(32, width)) if norm == "gn" else nn.BatchNorm2d
    return torchvision.models.resnet18(num_classes=outputs, norm_layer=layer)


def crops_and_joints(stream, size: int, frame: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of crops (resized to ``size``) and their person's joints [B, 17, 3]."""
    images, targets, _ = next(stream)
    if any(len(t["kp3d"]) != 1 for t in targets):
        raise ValueError("expected the official crops, one annotated person each")
    joints = torch.stack([t["kp3d"][0, :, :3] for t in targets])
    joints = joints - joints[:, :1]
    if frame == "body":  # row vectors: x R is R^T x
        joints = joints @ torch.stack([t["rotmats"][0, 0] for t in targets])
    if size != images.shape[-1]:
        images = nn.functional.interpolate(images, size=(size, size), mode="bilinear",
                                           antialias=True)
    return images, joints


def error(predicted: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
    return pa_mpjpe(predicted[:, H36M_EVAL_JOINTS], joints[:, H36M_EVAL_JOINTS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frame", choices=["camera", "body"], default="camera")
    parser.add_argument("--ema", type=float, nargs="*", default=[])
    args = parser.parse_args()
    torch.manual_seed(0)
    common, phase = official_crops()
    held = batches(common, phase, 12345)
    test = [crops_and_joints(held, args.size, args.frame) for _ in range(25)]
    mean = torch.cat([joints for _, joints in test]).mean(dim=0)
    mean_error = torch.cat([error(mean.expand_as(j), j) for _, j in test]).mean()
    print(f"mean pose of the held crops: PA-MPJPE {mean_error:.1f} mm", flush=True)
    network = resnet18_from_scratch(51)
    optimizer = torch.optim.RAdam(network.parameters(), lr=args.lr, weight_decay=1e-4)
    averages = {decay: torch.optim.swa_utils.AveragedModel(
        network, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay))
        for decay in args.ema}
    stream, start = batches(common, phase, 0), time.perf_counter()
    for step in range(1, args.steps + 1):
        images, joints = crops_and_joints(stream, args.size, args.frame)
        loss = (network(images).view(-1, 17, 3) - joints).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for average in averages.values():
            average.update_parameters(network)
        if step % 500 == 0:
            network.eval()
            with torch.no_grad():
                held_error = torch.cat([error(network(i).view(-1, 17, 3), j)
                                        for i, j in test]).mean()
                averaged = {decay: torch.cat([error(a(i).view(-1, 17, 3), j)
                                              for i, j in test]).mean()
                            for decay, a in averages.items()}
            network.train()
            ema = ", ".join(f"EMA {d}: {e:.1f}" for d, e in averaged.items())
            print(f"step {step} ({time.perf_counter() - start:.0f} s): train L1 {loss:.4f}, "
                  f"held PA-MPJPE {held_error:.1f} mm; {ema}", flush=True)


if __name__ == "__main__":
    main()
