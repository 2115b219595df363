"""Training-step time with fewer SMPL-branch RoIs and a smaller input (probe).

Needs ``probe.patch`` applied (``model.smpl_rois_per_image``) with
``smpl_rois_per_image: 0`` and ``box_batch_size_per_image: 64`` in params.yaml, and a
workspace with the default training shards and a trained baseline:

    PYTHONPATH=. python docs/probes/box_sampling_dev/step_speed.py models/baseline/model.pt

Every setting runs on the same batches in one process, twice, after 3 warm-up steps.
"""

import dataclasses
import sys
import time

import torch

from bench.train import Step
from model.body import load_body_model
from model.discriminator import build_discriminator
from model.io import read_model
from model.rcnn import ModelConfig, build_model
from model.smpl_criterion import SMPLCriterion
from pipelines.synthetic.poses import SyntheticPrior
from pipelines.training import PhaseParams, TrainParams, batches
from stages.common import read_params, typed
from stages.train import criterion_config


def seconds_per_step(params: dict, state: dict, cap: int, size: tuple[int, int],
                     steps: int = 12) -> float:
    common = dataclasses.replace(typed(TrainParams, params, "train.common"),
                                 input_height=size[0], input_width=size[1])
    phase = typed(PhaseParams, params, "train.baseline")
    config = dataclasses.replace(typed(ModelConfig, params, "model"), smpl_rois_per_image=cap)
    body = load_body_model("anny")
    network = build_model(config, body, 0)
    discriminator = build_discriminator(body.num_joints, body.shape_dim, 1)
    network.load_state_dict(state["network"])
    discriminator.load_state_dict(state["discriminator"])
    criterion = SMPLCriterion(body, discriminator, SyntheticPrior(0),
                              criterion_config(params, phase, None))
    step, data = Step(network, criterion), batches(common, phase, 0)
    for _ in range(3):
        step(*next(data)[:2])
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(data)[:2])
    return (time.perf_counter() - start) / steps


def main() -> None:
    torch.set_num_threads(2)
    params, state = read_params(), read_model(sys.argv[1])
    settings = {"default": (0, (256, 416)), "SMPL branch capped at 8 RoIs": (8, (256, 416)),
                "input 192x320": (0, (192, 320)), "both": (8, (192, 320))}
    for _ in range(2):
        for label, (cap, size) in settings.items():
            seconds = seconds_per_step(params, state, cap, size)
            print(f"{label}: {seconds:.3f} s/step, {2 / seconds:.2f} images/s", flush=True)


if __name__ == "__main__":
    main()
