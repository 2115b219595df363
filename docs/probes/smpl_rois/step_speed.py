"""Probe (not part of the pipeline): the default training step with some ``model``
settings changed, each on the same batches in one process.

Each argument is ``label:key=value,key=value`` (integer ``model`` settings), built from
the trained baseline weights of the workspace (as ``bench/train.py``'s default row), or
``previous``: ``bench/train.py``'s previous-profile row (fresh weights). The first is the
reference. The settings take turns for three rounds of ``bench.train.step_time`` and
each keeps its fastest round.

    python docs/probes/smpl_rois/step_speed.py "all:smpl_rois_per_image=0" \\
        "8:smpl_rois_per_image=8" "6:smpl_rois_per_image=6"    # in a workspace
    python docs/probes/smpl_rois/step_speed.py previous "8:smpl_rois_per_image=8" \\
        "6:smpl_rois_per_image=6"
"""

from __future__ import annotations

import dataclasses
import sys

from bench.train import PREVIOUS_PROFILE, TRAINED, build_step, step_time
from model.body import load_body_model
from model.rcnn import ModelConfig
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed

ROUNDS = 3


def settings(arguments: list[str]) -> dict[str, dict[str, int]]:
    """``label:key=value,...`` arguments -> {label: {key: value}}."""
    parsed = {}
    for argument in arguments:
        label, _, pairs = argument.partition(":")
        parsed[label] = {key: int(value) for key, value in
                         (pair.split("=") for pair in pairs.split(",") if pair)}
    return parsed


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.baseline")
    body = load_body_model(params["body_model"]["kind"])
    config = typed(ModelConfig, params, "model")
    steps = {}
    for label, changes in settings(sys.argv[1:]).items():
        if label == "previous":
            previous = dataclasses.replace(config, **PREVIOUS_PROFILE)
            steps[label] = build_step(params, body, previous, "baseline", None, "cpu",
                                      previous=True)
        else:
            steps[label] = build_step(params, body, dataclasses.replace(config, **changes),
                                      "baseline", None, "cpu", TRAINED)
    seconds = {label: float("inf") for label in steps}
    for _ in range(ROUNDS):
        for label, step in steps.items():  # the same batches for each
            seconds[label] = min(seconds[label], step_time(step, batches(common, phase, 0)))
    reference = seconds[next(iter(steps))]
    for label, value in seconds.items():
        print(f"{label}: {value * 1000:.0f} ms per step, {phase.batch_size / value:.2f} "
              f"images/s, {reference / value:.2f}x the first")


if __name__ == "__main__":
    main()
