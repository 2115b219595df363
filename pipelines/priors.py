"""Where the adversarial prior's "real" poses come from (``train.common.prior``).

- ``synthetic`` (the default): the pose and shape distribution of the synthetic people
  (:class:`pipelines.synthetic.poses.SyntheticPrior`).
- a path to an ``.npz`` of real poses, such as the H36M MoSh fits the official code
  used (``h36m_single_train_openpose.npz``, not public). It must hold ``shape [M, S]``
  and either ``rotmats [M, J, 3, 3]`` or ``pose [M, 3 J]`` (axis-angle, SMPL order),
  with J and S matching the body model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ops.geometry import axis_angle_to_matrix
from pipelines.synthetic.poses import SyntheticPrior

__all__ = ["NpzPrior", "build_prior"]


class NpzPrior:
    """Samples rows of an ``.npz`` of real poses: ``prior(n) -> (rotmats, shape)``."""

    def __init__(self, path: str | Path, num_joints: int, shape_dim: int, seed: int) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"prior file {path} does not exist (train.common.prior)")
        with np.load(path, allow_pickle=False) as data:
            arrays = dict(data)
        if "shape" not in arrays or not {"rotmats", "pose"} & set(arrays):
            raise ValueError(f"{path}: expected 'shape' and 'rotmats' or 'pose', found "
                             f"{sorted(arrays)}")
        if "rotmats" in arrays:
            rotmats = torch.as_tensor(arrays["rotmats"], dtype=torch.float32)
        else:
            pose = torch.as_tensor(arrays["pose"], dtype=torch.float32)
            rotmats = axis_angle_to_matrix(pose.reshape(len(pose), -1, 3))
        shape = torch.as_tensor(arrays["shape"], dtype=torch.float32)[:, :shape_dim]
        fits = (rotmats.shape[1:] == (num_joints, 3, 3) and shape.shape[1] == shape_dim
                and len(shape) == len(rotmats) > 0)
        if not fits:
            raise ValueError(f"{path}: poses {list(rotmats.shape)} and shapes "
                             f"{list(shape.shape)} do not fit a body model with {num_joints} "
                             f"rotations and {shape_dim} shape values")
        self.rotmats, self.shape = rotmats, shape
        self.rng = np.random.default_rng(seed)

    def __call__(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.as_tensor(self.rng.integers(0, len(self.shape), count))
        return self.rotmats[rows], self.shape[rows]


def build_prior(source: str, seed: int, num_joints: int, shape_dim: int,
                child_fraction: float) -> SyntheticPrior | NpzPrior:
    """The prior named by ``train.common.prior`` (``child_fraction``: the synthetic
    people's share of children, ``synthetic.child_fraction``)."""
    if source == "synthetic":
        return SyntheticPrior(seed, child_fraction)
    return NpzPrior(source, num_joints, shape_dim, seed)
