"""Probe (not part of the pipeline): how wrong is a trained model's heading, and how?

For every annotated person of a test benchmark, the detection (score >= 0.5) whose box
overlaps theirs most (IoU >= 0.5) gives a predicted global rotation. Prints the
distribution of the heading error: the angle about the vertical between the predicted
and the true facing direction (each body's +z axis projected on the camera's x-z
plane), in 45-degree bins, and the share within 45 degrees of the *opposite* facing
(a front/back confusion), beside the error of always answering "faces the camera"
(heading 180) on the same people. Also prints each dataset's share of people facing
away from the camera (true heading within 45 degrees of 0), and with
``--training-share`` that of this workspace's ``synth_train``.

    python docs/probes/pose_oracle/heading.py --model baseline --training-share \
        synth_single synth_groups
"""

from __future__ import annotations

import argparse

import torch
from torchvision.ops import box_iou

from model.io import load_network
from pipelines.shards import SHARDS, read_shards
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params


def facing(rotmats: torch.Tensor) -> torch.Tensor:
    """``[N, 3, 3]`` global rotations (camera frame) -> ``[N]`` heading in degrees."""
    forward = rotmats[:, :, 2]  # the body's +z (front) in camera axes
    return torch.rad2deg(torch.atan2(forward[:, 0], forward[:, 2]))


@torch.no_grad()
def heading_errors(network, benchmark: str,
                   size: tuple[int, int]) -> tuple[list[float], list[float]]:
    """Heading errors (degrees, signed) of the matched people, and their true headings."""
    errors, headings = [], []
    for sample in read_shards(SHARDS / "test" / benchmark):
        inputs = to_network_input(sample, *size)
        detections = network(inputs["image"][None], intrinsics=[inputs["target"]["K"]])[0]
        kept = detections["scores"] >= 0.5
        boxes, rotmats = detections["boxes"][kept], detections["rotmats"][kept, 0]
        truth = inputs["target"]
        if len(boxes) == 0:
            continue
        overlap = box_iou(truth["boxes"], boxes)
        best = overlap.max(dim=1)
        for person in torch.nonzero(best.values >= 0.5).flatten():
            predicted = facing(rotmats[best.indices[person]][None])
            true = facing(truth["rotmats"][person, 0][None])
            errors.append(float((predicted - true + 180.0) % 360.0 - 180.0))
            headings.append(float(true))
    return errors, headings


def facing_away_share(split: str, dataset: str) -> str:
    headings = torch.cat([facing(s["target"]["rotmats"][:, 0])
                          for s in read_shards(SHARDS / split / dataset)])
    away, people = int((headings.abs() < 45).sum()), len(headings)
    return f"{dataset}: {away} of {people} people face away ({100 * away / people:.1f} %)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="baseline")
    parser.add_argument("--training-share", action="store_true")
    parser.add_argument("benchmarks", nargs="+")
    args = parser.parse_args()
    params = read_params()
    body = from_section(BodyModelParams, params, "body_model").build()
    network, _ = load_network(f"models/{args.model}/model.pt", body)
    size = (params["train"]["common"]["input_height"], params["train"]["common"]["input_width"])
    if args.training_share:
        print(facing_away_share("train", "synth_train"))
    for benchmark in args.benchmarks:
        print(facing_away_share("test", benchmark))
        signed, headings = heading_errors(network.eval(), benchmark, size)
        errors = torch.tensor(signed).abs()
        guess = (180.0 - torch.tensor(headings).abs()).mean()  # |180 - h| for h in [-180, 180]
        bins = torch.histc(errors, bins=4, min=0.0, max=180.0)
        shares = ", ".join(f"{45 * i}-{45 * (i + 1)} deg {100 * b / len(errors):.0f} %"
                           for i, b in enumerate(bins.tolist()))
        print(f"{args.model} on {benchmark}: {len(errors)} matched people, median heading "
              f"error {errors.median():.0f} deg; {shares}; mean "
              f"{errors.mean():.0f} (always facing the camera: {guess:.0f}; uniform guessing: 90)")


if __name__ == "__main__":
    main()
