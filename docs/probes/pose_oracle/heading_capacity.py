"""Probe (not part of the pipeline): do the pretraining crops show which way a person
faces, to a network trained from scratch within a CPU budget?

The plain ResNet-18 of ``docs/probes/pose_capacity`` (GroupNorm, from scratch, 64x64
official crops, batch 8, RAdam at 1e-3) classifies the cropped person's heading into
three classes: facing the camera (within 45 degrees), facing away (within 45 degrees),
or sideways. The training scenes show few people from behind, so the cross-entropy is
weighted by inverse class frequency (measured on the held crops) and the score is the
recall per class and their mean (balanced accuracy; chance 1/3).

    python docs/probes/pose_oracle/heading_capacity.py --steps 1500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parents[1] / "pose_capacity"))
from activity import crops_and_labels, held_guesses, train_classifier  # noqa: E402
from heading import facing  # noqa: E402 - this folder's heading probe
from probe import official_crops, resnet18_from_scratch  # noqa: E402

from pipelines.training import PhaseParams, TrainParams  # noqa: E402

CLASSES = ("camera", "side", "away")


def heading_class(rotmats: torch.Tensor) -> int:
    """0: faces the camera (heading within 45 deg of 180), 2: faces away (within 45 of 0),
    1: sideways."""
    heading = abs(float(facing(rotmats[None])[0]))
    return 0 if heading > 135 else 2 if heading < 45 else 1


def crops_and_headings(common: TrainParams, phase: PhaseParams, seed: int):
    """Endless batches of crops [B, 3, SIZE, SIZE] and their person's heading class [B]
    (with the official crops the cropped person is target 0)."""
    return crops_and_labels(common, phase, seed,
                            lambda sample: heading_class(sample["target"]["rotmats"][0, 0]))


def recalls(network: nn.Module, test: list) -> list[float]:
    guess, truth = held_guesses(network, test)
    return [float((guess[truth == k] == k).float().mean()) for k in range(len(CLASSES))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    torch.manual_seed(0)
    common, phase = official_crops()
    held = crops_and_headings(common, phase, 12345)
    test = [next(held) for _ in range(50)]
    counts = torch.bincount(torch.cat([labels for _, labels in test]), minlength=len(CLASSES))
    print(f"held crops per heading {dict(zip(CLASSES, counts.tolist(), strict=True))}",
          flush=True)
    weights = counts.sum() / (len(CLASSES) * counts.clamp(min=1).float())
    network = resnet18_from_scratch(len(CLASSES))

    def report(step: int, loss: float, seconds: float) -> None:
        recall = recalls(network, test)
        shown = ", ".join(f"{c} {r:.2f}" for c, r in zip(CLASSES, recall, strict=True))
        print(f"step {step} ({seconds:.0f} s): loss {loss:.3f}, held "
              f"recall {shown}; balanced accuracy {sum(recall) / 3:.3f}", flush=True)

    train_classifier(network, crops_and_headings(common, phase, 0), args.steps, report, weights)


if __name__ == "__main__":
    main()
