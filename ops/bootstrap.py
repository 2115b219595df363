"""Bootstrap confidence intervals over images, for every reported number.

Every metric of a benchmark is a ratio of sums over its images: the sum of a per-image
numerator (errors, correct pairs, colliding frames) over the sum of a per-image
denominator (people, pairs, frames). A bootstrap replicate draws the images with
replacement, ``replicates x images`` index draws from a seeded generator, so the same
seed and the same number of images give the same draws: reruns are identical, and two
models evaluated on the same images are resampled *together* (a paired interval for
their difference).

A replicate is a weight vector (how often each image was drawn), so a ratio over a
replicate is ``(w @ numerator) / (w @ denominator)``. Frames of one video are not
independent draws: given each image's *block* (a stretch of one video), whole blocks are
drawn instead, and every image weighs what its block does (a block bootstrap).
Intervals are percentile intervals. A metric averaged over groups (Table 2's mean over
sequences) is the mean of the per-group ratios within each replicate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "replicate_weights", "ratio", "group_mean", "interval", "paired"]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def scaled(self, factor: float) -> Interval:
        return Interval(self.value * factor, self.low * factor, self.high * factor)


def replicate_weights(images: int, replicates: int, seed: int,
                      blocks: np.ndarray | None = None) -> np.ndarray:
    """``[replicates, images]``: how often each image is drawn in each replicate.

    Args:
        blocks: optional ``[images]`` label of each image's block (integers or strings,
            e.g. a video and a stretch of its frames). Then the blocks are drawn with
            replacement (as many draws as there are blocks) and each image weighs what
            its block does: images sharing a label move together.
    """
    if blocks is None:
        return _draw_counts(images, replicates, seed)
    blocks = np.asarray(blocks)
    if blocks.shape != (images,):
        raise ValueError(f"blocks must label each of the {images} images, got shape "
                         f"{list(blocks.shape)}")
    labels, block_of_image = np.unique(blocks, return_inverse=True)
    return _draw_counts(len(labels), replicates, seed)[:, block_of_image]


def _draw_counts(units: int, replicates: int, seed: int) -> np.ndarray:
    """``[replicates, units]``: ``units`` draws with replacement per replicate, counted."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, units, size=(replicates, units))
    weights = np.zeros((replicates, units))
    np.add.at(weights, (np.arange(replicates)[:, None], draws), 1.0)
    return weights


def ratio(weights: np.ndarray, numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``[R]`` the ratio of weighted sums per replicate (NaN where nothing is counted)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ numerator) / (weights @ denominator)


def group_mean(weights: np.ndarray, numerator: np.ndarray, denominator: np.ndarray,
               groups: np.ndarray) -> np.ndarray:
    """``[R]`` the mean over groups of each group's ratio (a group absent from a
    replicate is left out of that replicate's mean)."""
    per_group = [ratio(weights[:, groups == g], numerator[groups == g],
                       denominator[groups == g]) for g in np.unique(groups)]
    if not per_group:
        return np.full(len(weights), np.nan)
    with warnings.catch_warnings():  # a replicate with no group at all stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(per_group), axis=0)


def interval(point: float, replicates: np.ndarray, level: float = 0.95) -> Interval:
    """The point estimate with the percentile interval of its replicates."""
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(point) or finite.size == 0:
        return Interval(float(point), float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high))


def paired(point_a: float, point_b: float, replicates_a: np.ndarray, replicates_b: np.ndarray,
           level: float = 0.95) -> Interval:
    """Interval of ``a - b`` from replicates drawn on the same images."""
    return interval(point_a - point_b, replicates_a - replicates_b, level)
