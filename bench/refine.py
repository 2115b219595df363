"""Cost of test-time coherence refinement: milliseconds per image and per refined person
beside the network's forward pass on the same images (the baseline), measured in the
same process; on CUDA when a GPU is present (``--device cpu`` keeps it on the CPU).

Runs ``models/full/model.pt`` (``make repro`` must have trained it) on the first
``IMAGES`` images of the ``synth_crowd`` benchmark, whose people overlap most, with the
``refine`` section of params.yaml. Target (issue 15): refinement time per image at most
the network's forward time.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from bench._scenes import describe, parse_device, synchronize
from model.body import load_body_model
from model.io import load_network
from pipelines.refine import RefineConfig, refine_detections, with_refinement
from pipelines.shards import SHARDS, read_shards
from pipelines.training import TrainParams
from pipelines.transforms import to_network_input
from stages.common import read_params, section, typed

TRAINED = Path("models/full/model.pt")
BENCHMARK = "synth_crowd"
IMAGES = 24


def main() -> None:
    device = parse_device(__doc__.splitlines()[0])
    torch.set_num_threads(2)
    params = read_params()
    if not TRAINED.is_file() or not (SHARDS / "test" / BENCHMARK).is_dir():
        raise SystemExit(f"bench/refine.py needs {TRAINED} and the {BENCHMARK} shards: run "
                         "`make repro` first")
    config = RefineConfig.from_section(section(params, "refine"))
    common = typed(TrainParams, params, "train.common")
    size = (common.input_height, common.input_width)
    body = load_body_model(params["body_model"]["kind"]).to(device)
    network, state = load_network(TRAINED, body)
    network.to(device)
    prior = with_refinement(network, state, body, config).discriminator  # the trained prior
    discriminator = prior.to(device)
    samples = [s for _, s in zip(range(IMAGES), read_shards(SHARDS / "test" / BENCHMARK),
                                 strict=False)]

    def timed(sample: dict):
        """(forward seconds, refinement seconds, detections, refinement result)."""
        network_input = to_network_input(sample, *size)
        K = network_input["target"]["K"].to(device)
        synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            detections = network(network_input["image"][None].to(device), intrinsics=[K])[0]
        synchronize()
        middle = time.perf_counter()
        _, result = refine_detections(detections, K, size, body, config, discriminator)
        synchronize()
        return middle - start, time.perf_counter() - middle, detections, result

    timed(samples[0])  # warm-up: first calls pay for allocation and kernel loading
    forward_s = refine_s = 0.0
    people = refined_people = steps = 0
    for sample in samples:
        forward, refinement, detections, result = timed(sample)
        forward_s += forward
        refine_s += refinement
        confident = int((detections["scores"] >= config.min_score).sum())
        people += confident
        refined_people += confident if result.steps else 0
        steps += result.steps
    count = len(samples)
    print(f"device: {describe(device)}")
    print(f"{BENCHMARK}: {count} images, {people} people scoring >= {config.min_score}")
    print(f"{'':34s} {'ms/image':>9s} {'ms/person':>10s}")
    print(f"{'network forward (baseline)':34s} {1000 * forward_s / count:9.1f} "
          f"{1000 * forward_s / max(people, 1):10.1f}")
    print(f"{'refinement (all images)':34s} {1000 * refine_s / count:9.1f} "
          f"{1000 * refine_s / max(people, 1):10.1f}")
    print(f"refinement / forward: {refine_s / forward_s:.2f}x; {steps} steps in all, "
          f"{refined_people} people in images that took a step")


if __name__ == "__main__":
    main()
