"""Probe (not part of the pipeline): where one default training step's time goes.

The baseline phase's step (batch 2 of the default training shards, the trained baseline
weights, as ``bench/train.py``'s default row), timed around its four parts over ten steps
after two of warm-up, then six steps under ``torch.profiler`` (the operators taking the
most time, children included). Also counts the weights per module (the RAdam update
touches every one).

    python docs/probes/step_profile/profile.py     # in a workspace after `dvc repro`
"""

from __future__ import annotations

import time
from collections import Counter

from torch.profiler import ProfilerActivity, profile

from bench.train import TRAINED, build_step
from model.body import load_body_model
from model.rcnn import ModelConfig
from pipelines.training import PhaseParams, TrainParams, batches, split_losses
from stages.common import read_params, typed


def main() -> None:
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    phase = typed(PhaseParams, params, "train.baseline")
    body = load_body_model(params["body_model"]["kind"])
    step = build_step(params, body, typed(ModelConfig, params, "model"), "baseline", None,
                      "cpu", TRAINED)
    network, criterion = step.network, step.criterion
    weights = Counter()
    for name, weight in network.named_parameters():
        weights[".".join(name.split(".")[:2])] += weight.numel()
    weights["discriminator"] = sum(w.numel() for w in criterion.discriminator.parameters())
    print("weights (millions):", {k: round(v / 1e6, 2) for k, v in weights.most_common()})
    data = batches(common, phase, 0)
    seconds: Counter = Counter()
    for count in range(12):
        images, targets = next(data)[:2]
        marks = [time.perf_counter()]
        losses, branch = network(images, targets)
        marks.append(time.perf_counter())
        losses.update(criterion(branch, targets, tuple(images.shape[-2:])))
        marks.append(time.perf_counter())
        detector, adversary = split_losses(losses)
        for optimizer in step.optimizers:
            optimizer.zero_grad()
        (detector + adversary).backward()
        marks.append(time.perf_counter())
        for optimizer in step.optimizers:
            optimizer.step()
        marks.append(time.perf_counter())
        if count >= 2:
            for part, start, end in zip(("network forward", "criterion forward", "backward",
                                         "RAdam update"), marks, marks[1:], strict=False):
                seconds[part] += end - start
    print("ms per step:", {part: round(total / 10 * 1000, 1) for part, total in seconds.items()})
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(6):
            step(*next(data)[:2])
    print(profiler.key_averages().table(sort_by="cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
