"""Probe (not part of the pipeline): bench/train.py's previous-profile row against the
default step with 8 (default) and 6 SMPL-branch RoIs per image, in one process.

    python docs/probes/smpl_rois/bench_cap6.py     # in a workspace after `dvc repro`
"""

from __future__ import annotations

import dataclasses

from bench.train import PREVIOUS_PROFILE, TRAINED, build_step, step_time
from model.body import load_body_model
from model.rcnn import ModelConfig
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.baseline")
    body = load_body_model(params["body_model"]["kind"])
    config = typed(ModelConfig, params, "model")
    previous = dataclasses.replace(config, **PREVIOUS_PROFILE)
    steps = {
        "previous profile": build_step(params, body, previous, "baseline", None, "cpu",
                                       previous=True),
        "8 RoIs (default)": build_step(params, body, config, "baseline", None, "cpu", TRAINED),
        "6 RoIs": build_step(params, body, dataclasses.replace(config, smpl_rois_per_image=6),
                             "baseline", None, "cpu", TRAINED),
    }
    seconds = {label: float("inf") for label in steps}
    for _ in range(2):  # as bench/train.py: rounds alternate, each row keeps its fastest
        for label, step in steps.items():
            seconds[label] = min(seconds[label], step_time(step, batches(common, phase, 0)))
    for label, value in seconds.items():
        print(f"{label}: {phase.batch_size / value:.2f} images/s, "
              f"{seconds['previous profile'] / value:.2f}x the previous profile")


if __name__ == "__main__":
    main()
