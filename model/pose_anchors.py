"""Anchor poses for the SMPL branch (not in the paper; ``model.pose_anchors``).

The paper's regressor starts every person at the mean pose and regresses the whole
articulation. With anchors, the branch also classifies each RoI among K typical poses
(cross-entropy to the person's nearest anchor) and starts the regressor from the
softmax-weighted mixture of the anchors, which it then refines. A plain network trained
from scratch learns to tell poses apart far sooner than it learns to regress them; in
this pipeline that gain did not carry over, so the option is off (README, "Pose
anchors, measured").

The anchors are K-means centres of the body rotations (every rotation but the global
one, which stays at the mean pose's) of poses drawn from the training prior, with the
chordal metric: the Euclidean distance between the stacked rotation matrices. scipy's
``kmeans2`` clusters; each centre is projected back onto the rotations (roma's special
Procrustes).
"""

from __future__ import annotations

import numpy as np
import roma
import torch
from scipy.cluster.vq import kmeans2

__all__ = ["fit_pose_anchors", "nearest_anchor"]


def fit_pose_anchors(rotmats: torch.Tensor, count: int, seed: int,
                     iterations: int = 50) -> torch.Tensor:
    """K-means anchors of a sample of poses.

    Args:
        rotmats: ``[N, J, 3, 3]`` poses (rotation 0, the global one, is ignored).
        count: K anchors, at most N.
        seed: the K-means++ start.
        iterations: Lloyd iterations.
    Returns:
        ``[K, J - 1, 3, 3]`` rotations, the centres of the clusters.
    """
    if rotmats.ndim != 4 or rotmats.shape[-2:] != (3, 3) or rotmats.shape[1] < 2:
        raise ValueError(f"pose anchors: expected poses [N, J >= 2, 3, 3], got "
                         f"{list(rotmats.shape)}")
    if not 0 < count <= len(rotmats):
        raise ValueError(f"pose anchors: cannot fit {count} anchors to {len(rotmats)} poses")
    points = rotmats[:, 1:].reshape(len(rotmats), -1).double().numpy()
    centres, _ = kmeans2(points, count, iter=iterations, minit="++", missing="raise",
                         rng=np.random.default_rng(seed))
    centres = torch.from_numpy(centres).float().view(count, -1, 3, 3)
    return roma.special_procrustes(centres)


def nearest_anchor(rotmats: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """``[N]`` index of the anchor nearest to each pose (chordal metric, as the fit).

    Args:
        rotmats: ``[N, J, 3, 3]`` poses (rotation 0 ignored).
        anchors: ``[K, J - 1, 3, 3]``.
    """
    flat = rotmats[:, 1:].reshape(len(rotmats), -1)
    return torch.cdist(flat, anchors.reshape(len(anchors), -1).to(flat)).argmin(dim=1)
