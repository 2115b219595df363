"""Depth-ordering-aware loss (paper Eq. 4).

With per-person depth maps ``D_p`` (each person rendered on its own, :mod:`ops.raster`)
and the annotated instance map ``y`` (0 background, i + 1 for person i):

- the rendered front person is ``y_hat(p) = argmin_i D_i(p) + 1`` (0 if nobody covers p);
- ``S = {p : y(p) > 0, y_hat(p) > 0, y(p) != y_hat(p)}``, and p must also be covered by
  the annotated person's own rendering (otherwise it has no depth there to compare --
  the official code likewise needed both renderings);
- ``L = sum_{p in S} log(1 + exp(D_y(p) - D_y_hat(p)))``, which pulls the annotated
  person forward and pushes the wrongly visible one back: gradients reach both.

Normalisation (our choice, documented in the README): the sum is divided by the
number of image pixels H * W, so the loss is a per-pixel mean that does not change
with the training resolution. (Eq. 4 is a plain sum; the official code averaged a
related per-person term over P * H * W.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["depth_order_loss", "ordering_mistakes"]


def ordering_mistakes(depths: torch.Tensor, gt_instances: torch.Tensor) -> torch.Tensor:
    """The set S as a ``[H, W]`` bool mask (no gradient)."""
    nearest, index = depths.detach().min(dim=0)
    rendered = torch.where(torch.isfinite(nearest), index + 1, 0)  # y_hat
    annotated = gt_instances.long()
    own = depths.detach().gather(0, (annotated - 1).clamp(min=0)[None])[0]  # D_y
    return (annotated > 0) & (rendered > 0) & (annotated != rendered) & torch.isfinite(own)


def depth_order_loss(depths: torch.Tensor, gt_instances: torch.Tensor) -> torch.Tensor:
    """Eq. 4 for one image.

    Args:
        depths: ``[P, H, W]`` per-person depth maps (``inf`` where a person is absent),
            person i in the same order as the annotation's id i + 1.
        gt_instances: ``[H, W]`` integer instance map (0 background, i + 1 person i).
    Returns:
        scalar: sum over S of softplus(D_y - D_y_hat), divided by H * W; 0 when S is
        empty (including no people). Differentiable with respect to ``depths``.
    """
    if depths.dim() != 3 or gt_instances.shape != depths.shape[1:]:
        raise ValueError(f"depth_order_loss: depths must be [P, H, W] and gt_instances "
                         f"[H, W]; got {list(depths.shape)} and {list(gt_instances.shape)}")
    if gt_instances.numel() and int(gt_instances.max()) > depths.shape[0]:
        raise ValueError(f"depth_order_loss: gt_instances names person "
                         f"{int(gt_instances.max())} but only {depths.shape[0]} depth maps")
    if depths.shape[0] == 0:
        return depths.sum() * 0.0
    mistakes = ordering_mistakes(depths, gt_instances)
    rows, cols = mistakes.nonzero(as_tuple=True)
    annotated = gt_instances[rows, cols].long() - 1
    rendered = depths.detach()[:, rows, cols].argmin(dim=0)
    difference = depths[annotated, rows, cols] - depths[rendered, rows, cols]
    return F.softplus(difference).sum() / gt_instances.numel()
