"""A weighted mixture of training datasets, drawn sample by sample (the official recipe).

The official training concatenates its datasets and samples images with a
``WeightedRandomSampler`` whose per-image density is ``weight / len(dataset)``, so a
dataset's share of the images is its weight over the sum of the weights (H36M 0.6,
COCO 0.3, PoseTrack 0.3, MPII 0.3, MPI-INF-3DHP 0.1: 37.5 %, 18.75 % ... 6.25 %),
whatever its size. Here each draw picks a dataset with probability proportional to
its weight and takes the next sample of that dataset's stream; each stream is endless
(epoch ``e`` reshuffles with seed ``seed + e``).

Deterministic: the same seed gives the same draws. Under DDP each rank reads its own
shards of every dataset (``read_shards`` splits them by rank) and picks datasets with
its own seed, so the ranks see disjoint samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.shards import read_shards

__all__ = ["mixture", "dataset_stream"]


def dataset_stream(root: Path, seed: int) -> Iterator[dict]:
    """One dataset's samples, shuffled, forever (epoch ``e`` uses ``seed + e``)."""
    epoch = 0
    while True:
        empty = True
        for sample in read_shards(root, shuffle=True, seed=seed + epoch):
            empty = False
            yield sample
        if empty:
            raise ValueError(f"{root}: no samples for this process (fewer shards than DDP "
                             "ranks, or an empty dataset)")
        epoch += 1


def mixture(weights: dict[str, float], seed: int, rank: int = 0,
            root: Path = Path("data/shards")) -> Iterator[dict]:
    """Endless samples of the datasets named in ``weights`` (name -> weight), each drawn
    with probability ``weight / sum(weights)``.

    Args:
        seed: the run's seed; the dataset choices of DDP rank ``rank`` use
            ``[seed, rank]``, its streams ``seed``-based shuffles of its own shards.
    """
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"train.common.datasets: expected positive weights, got {weights}")
    names = sorted(name for name, weight in weights.items() if weight > 0)  # 0: switched off
    probabilities = np.array([weights[n] for n in names], dtype=np.float64)
    probabilities /= probabilities.sum()
    streams = {name: dataset_stream(root / name, seed) for name in names}
    rng = np.random.default_rng([seed, rank])
    while True:
        yield next(streams[names[rng.choice(len(names), p=probabilities)]])
