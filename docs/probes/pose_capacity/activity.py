"""Probe (not part of the pipeline): can the plain network of ``probe.py`` tell what the
cropped person is doing, the five activities of the synthetic people, within a CPU budget?

The same ResNet-18 from scratch (GroupNorm, or ``--norm bn`` for BatchNorm), the same
official crops (only the cropped person annotated) resized to 64x64, batch 8, RAdam at
1e-3, classifying the person's activity (cross-entropy). Every 250 steps it prints the
accuracy on 200 crops drawn with another seed, beside always answering their most
common activity.

    python docs/probes/pose_capacity/activity.py --steps 1500 --norm gn

Run it in a workspace where `dvc repro` has written the training shards.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import numpy as np
import torch
from probe import official_crops, resnet18_from_scratch  # this folder's joint-regression probe
from torch import nn

from pipelines.mixture import mixture
from pipelines.shards import SHARDS
from pipelines.synthetic.poses import ACTIVITIES
from pipelines.training import PhaseParams, TrainParams, _augment
from pipelines.transforms import to_network_input

SIZE = 64


def crops_and_labels(common: TrainParams, phase: PhaseParams, seed: int,
                     label: Callable[[dict], int]):
    """Endless batches of crops [B, 3, SIZE, SIZE] and ``label(sample)`` of each [B]; the
    crops as the pretraining makes them (``pipelines.training.batches``), keeping the
    sample's meta, which names each person's activity and the cropped person."""
    stream = mixture(phase.datasets, seed, 0, SHARDS / "train")
    for count in itertools.count():
        rng = np.random.default_rng([seed, count])
        images, labels = [], []
        for _ in range(phase.batch_size):
            sample = _augment(next(stream), common, phase, rng, None)
            labels.append(label(sample))
            images.append(to_network_input(sample, phase.crop_size, phase.crop_size,
                                           common.colour_noise, rng)["image"])
        yield (nn.functional.interpolate(torch.stack(images), size=(SIZE, SIZE),
                                         mode="bilinear", antialias=True),
               torch.tensor(labels))


def activity(sample: dict) -> int:
    """The cropped person's activity, as an index into ``ACTIVITIES``."""
    meta = sample["meta"]
    return ACTIVITIES.index(meta["activities"][meta["crop_of"]])


def crops_and_activities(common: TrainParams, phase: PhaseParams, seed: int):
    """Endless batches of crops and their person's activity [B]."""
    return crops_and_labels(common, phase, seed, activity)


def held_guesses(network: nn.Module, test: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's class for every held crop, and the true classes."""
    network.eval()
    with torch.no_grad():
        guess = torch.cat([network(crops).argmax(dim=1) for crops, _ in test])
    network.train()
    return guess, torch.cat([labels for _, labels in test])


def train_classifier(network: nn.Module, stream, steps: int,
                     report: Callable[[int, float, float], None],
                     weight: torch.Tensor | None = None) -> None:
    """Cross-entropy (class ``weight`` optional), RAdam at 1e-3; every 250 steps
    ``report(step, loss, seconds)``."""
    optimizer = torch.optim.RAdam(network.parameters(), lr=1e-3, weight_decay=1e-4)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        images, labels = next(stream)
        loss = nn.functional.cross_entropy(network(images), labels, weight=weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 250 == 0:
            report(step, loss.item(), time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--norm", choices=["gn", "bn"], default="gn")
    args = parser.parse_args()
    torch.manual_seed(0)
    common, phase = official_crops()
    held = crops_and_activities(common, phase, 12345)
    test = [next(held) for _ in range(25)]
    counts = torch.bincount(torch.cat([labels for _, labels in test]), minlength=len(ACTIVITIES))
    print(f"held crops per activity {dict(zip(ACTIVITIES, counts.tolist(), strict=True))}; "
          f"always the most common: accuracy {counts.max() / counts.sum():.3f}", flush=True)
    network = resnet18_from_scratch(len(ACTIVITIES), args.norm)

    def report(step: int, loss: float, seconds: float) -> None:
        guess, truth = held_guesses(network, test)
        print(f"step {step} ({seconds:.0f} s): loss {loss:.3f}, held "
              f"accuracy {(guess == truth).float().mean():.3f}", flush=True)

    train_classifier(network, crops_and_activities(common, phase, 0), args.steps, report)


if __name__ == "__main__":
    main()
