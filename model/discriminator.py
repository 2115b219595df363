"""HMR's adversarial pose and shape prior (as in the official code).

Rotations (the global orientation is dropped) go through shared per-joint 1x1 convs
9 -> 32 -> 32. Then there are:
- one linear head per joint;
- a full-pose MLP, (J-1)·32 -> 1024 -> 1024 -> 1;
- a shape MLP, S -> 5 -> 1.

That gives J + 1 outputs. The LSGAN losses are in :mod:`model.losses`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Discriminator", "build_discriminator"]


class Discriminator(nn.Module):
    def __init__(self, num_joints: int, shape_dim: int) -> None:
        super().__init__()
        joints = num_joints - 1
        self.joint_features = nn.Sequential(nn.Conv2d(9, 32, 1), nn.ReLU(inplace=True),
                                            nn.Conv2d(32, 32, 1), nn.ReLU(inplace=True))
        self.joint_heads = nn.Conv1d(joints * 32, joints, 1, groups=joints)  # one head per joint
        self.pose = nn.Sequential(nn.Linear(joints * 32, 1024), nn.ReLU(inplace=True),
                                  nn.Linear(1024, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 1))
        self.shape = nn.Sequential(nn.Linear(shape_dim, 5), nn.ReLU(inplace=True), nn.Linear(5, 1))

    def forward(self, rotmats: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """``rotmats [N, J, 3, 3]``, ``shape [N, S]`` -> realism scores ``[N, J + 1]``."""
        n = rotmats.shape[0]
        joints = rotmats[:, 1:].reshape(n, -1, 9).transpose(1, 2)[..., None]  # [N, 9, J-1, 1]
        features = self.joint_features(joints)  # [N, 32, J-1, 1]
        per_joint = features[..., 0].transpose(1, 2).reshape(n, -1, 1)  # [N, (J-1)*32, 1]
        scores = [self.joint_heads(per_joint)[..., 0], self.pose(per_joint[..., 0]),
                  self.shape(shape)]
        return torch.cat(scores, dim=1)


def build_discriminator(num_joints: int, shape_dim: int, seed: int) -> Discriminator:
    """A discriminator initialised from its own ``seed`` (the global RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Discriminator(num_joints, shape_dim)
