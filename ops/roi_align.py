"""RoIAlign on the CPU as one sparse matrix product, forward and backward.

torchvision's CPU RoIAlign backward adds each sampling point's gradient into the feature
map one at a time, on one thread: a fifth of a crop-pretraining step on two cores
(README, "Speed"). But RoIAlign is linear in the features: every output bin is a fixed
weighted sum of feature pixels, the bilinear corners of its sampling points. So the
pooling of all RoIs over all pyramid levels is one sparse matrix ``M`` (rows: RoI bins,
columns: the levels' pixels, channels last); the forward pass is ``M @ features`` and
the backward pass ``M^T @ grad``, two multithreaded sparse products whose rows are each
summed by one thread (deterministic).

The sampling is torchvision's ``roi_align`` with ``aligned=False`` and a fixed
``sampling_ratio`` (as :class:`torchvision.ops.MultiScaleRoIAlign` calls it); the tests
compare both, forward and backward, on random boxes. On CUDA, torchvision's kernel runs.
"""

from __future__ import annotations

import warnings

import torch
import torchvision
from torch import Tensor
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

__all__ = ["roi_align", "MultiScaleRoIAlign", "interpolation_matrix"]


def _axis_corners(coords: Tensor, size: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """torchvision's bilinear rule along one axis: (inside, low, high, low weight, high
    weight) for sample coordinates ``[R, K]`` in a feature map ``size [R, 1]`` long."""
    inside = (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(min=0.0)
    low = coords.floor().long()
    at_edge = low >= size - 1  # the last pixel: both corners on it
    low = torch.where(at_edge, size - 1, low)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(coords), coords - low)
    return inside, low, high, 1.0 - frac, frac


def interpolation_matrix(rois: Tensor, level: Tensor, shapes: list[tuple[int, int, int]],
                         scales: list[float], output_size: tuple[int, int],
                         sampling_ratio: int, dtype: torch.dtype) -> Tensor:
    """``[R * PH * PW, T]`` sparse CSR: RoIAlign of every RoI on its level, as weights on
    the ``T`` pixels of all levels laid end to end (level, image, row, column).

    Args:
        rois: ``[R, 5]`` (image index, x1, y1, x2, y2) in input pixels.
        level: ``[R]`` each RoI's pyramid level (an index into ``shapes``/``scales``).
        shapes: per level ``(images, height, width)``; ``scales``: per level feature/input.
    """
    # 1. Each RoI's level geometry: scale, size, and where its pixels start.
    sizes = torch.tensor([[h, w] for _, h, w in shapes], device=rois.device)
    starts = torch.tensor([0] + [n * h * w for n, h, w in shapes]).cumsum(0)[:-1]
    scale = torch.tensor(scales, dtype=rois.dtype, device=rois.device)[level]
    height, width = sizes[level, 0][:, None], sizes[level, 1][:, None]
    start = starts.to(rois.device)[level]
    # 2. Sampling points: ``sampling_ratio`` per bin and axis, at sub-bin centres.
    (bins_y, bins_x), ratio = output_size, sampling_ratio
    x1, y1, x2, y2 = (rois[:, k] * scale for k in range(1, 5))
    roi_h, roi_w = (y2 - y1).clamp(min=1.0), (x2 - x1).clamp(min=1.0)
    steps_y = (torch.arange(bins_y * ratio, device=rois.device, dtype=rois.dtype) + 0.5) / ratio
    steps_x = (torch.arange(bins_x * ratio, device=rois.device, dtype=rois.dtype) + 0.5) / ratio
    ys = y1[:, None] + steps_y[None] * (roi_h / bins_y)[:, None]  # [R, PH * S]
    xs = x1[:, None] + steps_x[None] * (roi_w / bins_x)[:, None]  # [R, PW * S]
    # 3. Four bilinear corners per point, grouped by the bin they fall in:
    #    [R, PH, PW, S, S, 4] pixel columns and weights (row-major bins: the CSR rows).
    in_y, y_low, y_high, wy_low, wy_high = _axis_corners(ys, height)
    in_x, x_low, x_high, wx_low, wx_high = _axis_corners(xs, width)
    count = len(rois)

    def along_y(values: list[Tensor]) -> Tensor:  # [R, PH * S] -> [R, PH, 1, S, 1, len]
        return torch.stack(values, -1).view(count, bins_y, 1, ratio, 1, len(values))

    def along_x(values: list[Tensor]) -> Tensor:  # [R, PW * S] -> [R, 1, PW, 1, S, len]
        return torch.stack(values, -1).view(count, 1, bins_x, 1, ratio, len(values))

    corner_y = along_y([y_low, y_low, y_high, y_high])
    corner_x = along_x([x_low, x_high, x_low, x_high])
    weights = (along_y([wy_low, wy_low, wy_high, wy_high])
               * along_x([wx_low, wx_high, wx_low, wx_high])
               * (along_y([in_y]) & along_x([in_x])) / (ratio * ratio))  # a bin's mean
    image = rois[:, 0].long().view(count, 1, 1, 1, 1, 1)
    start, height, width = (v.view(count, 1, 1, 1, 1, 1) for v in (start, height, width))
    columns = start + (image * height + corner_y) * width + corner_x
    # 4. One CSR row per RoI bin, its points' corners summed per pixel.
    total = sum(n * h * w for n, h, w in shapes)
    per_bin = ratio * ratio * 4
    return _summed_rows(columns.expand_as(weights).reshape(-1, per_bin),
                        weights.reshape(-1, per_bin).to(dtype), total)


def _summed_rows(columns: Tensor, weights: Tensor, width: int) -> Tensor:
    """``[rows, width]`` sparse CSR whose row ``i`` holds ``weights[i]`` at
    ``columns[i]`` (``[rows, K]`` each), entries sharing a column summed. Sorting each
    row's K entries is what ``coalesce`` would do over all of them at once, at a quarter
    of its time here."""
    columns, order = columns.sort(dim=1, stable=True)
    weights = weights.gather(1, order)
    first = torch.ones_like(columns, dtype=torch.bool)  # the first entry of each column
    first[:, 1:] = columns[:, 1:] != columns[:, :-1]
    slot = first.view(-1).cumsum(0) - 1
    values = weights.new_zeros(int(first.sum()))  # one per distinct column of each row
    values.index_add_(0, slot, weights.view(-1))  # in order: deterministic
    crow = torch.zeros(len(columns) + 1, dtype=torch.long, device=columns.device)
    crow[1:] = first.sum(dim=1).cumsum(0)
    with warnings.catch_warnings():  # torch calls its CSR tensors "beta" at every use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, columns.view(-1)[first.view(-1)], values,
                                       (len(columns), width))


def _transposed(matrix: Tensor) -> Tensor:
    """The CSR ``matrix`` transposed, in CSR form: its CSC layout read as rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        by_column = matrix.to_sparse_csc()
        return torch.sparse_csr_tensor(by_column.ccol_indices(), by_column.row_indices(),
                                       by_column.values(), (matrix.shape[1], matrix.shape[0]))


class _SparsePooling(torch.autograd.Function):
    """``matrix @ pixels`` with the gradient ``matrix^T @ grad`` (no gradient for the
    matrix: the boxes are not trained through RoIAlign, as in torchvision)."""

    @staticmethod
    def forward(ctx, pixels: Tensor, matrix: Tensor) -> Tensor:
        ctx.matrix = matrix
        return matrix @ pixels

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return _transposed(ctx.matrix) @ grad.contiguous(), None


def _pool(features: list[Tensor], rois: Tensor, level: Tensor, scales: list[float],
          output_size: tuple[int, int], sampling_ratio: int) -> Tensor:
    """``[R, C, PH, PW]``: the sparse RoIAlign of ``rois`` over the levels ``features``."""
    dtype = torch.float64 if features[0].dtype == torch.float64 else torch.float32
    shapes = [(f.shape[0], f.shape[2], f.shape[3]) for f in features]
    # channels last, levels end to end: [T, C] (autocast's bfloat16 features are pooled
    # in float32, as torchvision's roi_align does under autocast)
    pixels = torch.cat([f.to(dtype).permute(0, 2, 3, 1).reshape(-1, f.shape[1])
                        for f in features])
    # the sampling geometry in float64 whatever the features' precision (boxes of
    # hundreds of pixels: float32 coordinates would move the weights by ~1e-5)
    matrix = interpolation_matrix(rois.double(), level, shapes, scales, output_size,
                                  sampling_ratio, dtype)
    pooled = _SparsePooling.apply(pixels, matrix)
    pooled = pooled.view(len(rois), *output_size, pixels.shape[1]).permute(0, 3, 1, 2)
    return pooled.contiguous().to(features[0].dtype)


def _check(features: Tensor, rois: Tensor, sampling_ratio: int) -> None:
    if features.dim() != 4:
        raise ValueError(f"roi_align: features must be [N, C, H, W], got {tuple(features.shape)}")
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"roi_align: rois must be [R, 5] (image, x1, y1, x2, y2), got "
                         f"{tuple(rois.shape)}")
    if sampling_ratio <= 0:
        raise ValueError("roi_align: the sparse form needs a fixed sampling_ratio > 0, got "
                         f"{sampling_ratio}")


def roi_align(features: Tensor, rois: Tensor, output_size: tuple[int, int],
              spatial_scale: float, sampling_ratio: int) -> Tensor:
    """torchvision's ``roi_align(features, rois, output_size, spatial_scale,
    sampling_ratio, aligned=False)``: ``[R, C, PH, PW]``. CPU: the sparse form; CUDA:
    torchvision's kernel.

    Args:
        features: ``[N, C, H, W]``; ``rois``: ``[R, 5]`` (image index, x1, y1, x2, y2) in
            input pixels; ``spatial_scale``: feature pixels per input pixel.
    """
    _check(features, rois, sampling_ratio)
    if features.is_cuda:
        return torchvision.ops.roi_align(features, rois, output_size, spatial_scale,
                                         sampling_ratio)
    level = torch.zeros(len(rois), dtype=torch.long, device=rois.device)
    return _pool([features], rois, level, [spatial_scale], tuple(output_size), sampling_ratio)


class MultiScaleRoIAlign(torchvision.ops.MultiScaleRoIAlign):
    """torchvision's FPN pooler (same level assignment, same sampling) with all levels
    pooled by one sparse product on the CPU; on CUDA, torchvision's own forward."""

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor],
                image_shapes: list[tuple[int, int]]) -> Tensor:
        features = _filter_input(x, self.featmap_names)
        if features[0].is_cuda:
            return super().forward(x, boxes, image_shapes)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level)
        rois = _convert_to_roi_format(boxes)
        _check(features[0], rois, self.sampling_ratio)
        level = self.map_levels(boxes) if len(features) > 1 else torch.zeros(
            len(rois), dtype=torch.long, device=rois.device)
        return _pool(features, rois, level, self.scales, self.output_size, self.sampling_ratio)
