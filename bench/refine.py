"""Cost of test-time coherence refinement: milliseconds per image and per refined person
beside the network's forward pass on the same images (the baseline), measured in the
same process; on CUDA when a GPU is present (``--device cpu`` keeps it on the CPU).

Runs ``models/full/model.pt`` (``make repro`` must have trained it) on every image of
the ``synth_crowd`` benchmark (200), whose people overlap most, with the
``refine`` section of params.yaml, and again without the rigid phase (``separate_steps:
0``), without the root-ranking term (``rank: 0``) and with a ten times finer
``collision_tolerance`` (1e-4, the setting before) to show what each costs or saves.
Target (issue 15): refinement time per image at most the network's forward time.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from tqdm import tqdm

from bench._scenes import describe, parse_device, synchronize
from model.body import load_body_model
from model.io import load_network
from pipelines.refine import RefineConfig
from pipelines.refining_network import refine_detections, with_refinement
from pipelines.shards import SHARDS, read_shards
from pipelines.training import TrainParams
from pipelines.transforms import to_network_input
from stages.common import read_params, section, typed

TRAINED = Path("models/full/model.pt")
BENCHMARK = "synth_crowd"


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
    discriminator = with_refinement(network, state, body, config).discriminator.to(device)
    samples = list(read_shards(SHARDS / "test" / BENCHMARK))
    inputs = [to_network_input(sample, *size) for sample in samples]
    images = [(i["image"][None].to(device), i["target"]["K"].to(device)) for i in inputs]

    # Refinement as configured, and without or with one of its parts changed.
    variants = (("refinement (params.yaml)", config),
                ("  without the rigid phase", dataclasses.replace(config, separate_steps=0)),
                ("  without the ranking term", dataclasses.replace(config, rank=0.0)),
                ("  collision_tolerance 1e-4", dataclasses.replace(config,
                                                                   collision_tolerance=1e-4)))

    def forward(image: torch.Tensor, K: torch.Tensor) -> dict:
        with torch.no_grad():
            return network(image, intrinsics=[K])[0]

    def refine_one(found: dict, K: torch.Tensor, settings: RefineConfig):
        return refine_detections(found, K, size, body, settings, discriminator)[1]

    # 1. Warm-up (first calls pay for allocation and kernel loading), then each image
    #    through the forward pass (the baseline) and every variant in turn, so that a
    #    drift of this machine's speed weighs on all of them alike.
    found = forward(*images[0])
    for _, settings in variants:
        refine_one(found, images[0][1], settings)
    forward_s, refine_s = 0.0, [0.0] * len(variants)
    people, steps = 0, [0] * len(variants)
    for image, K in tqdm(images, desc=f"{BENCHMARK}, forward and {len(variants)} refinements",
                         unit="img"):
        seconds, found = timed(forward, image, K)
        forward_s += seconds
        people += int((found["scores"] >= config.min_score).sum())
        for k, (_, settings) in enumerate(variants):
            seconds, result = timed(refine_one, found, K, settings)
            refine_s[k] += seconds
            steps[k] += result.steps

    # 2. The table.
    print(f"device: {describe(device)}")
    print(f"{BENCHMARK}: {len(samples)} images, {people} people scoring >= {config.min_score}")
    print(f"{'':34s} {'ms/image':>9s} {'ms/person':>10s} {'vs forward':>11s} {'steps':>6s}")
    row = "{:34s} {:9.1f} {:10.1f} {:10.2f}x {:>6}"
    print(row.format("network forward (baseline)", 1000 * forward_s / len(samples),
                     1000 * forward_s / max(people, 1), 1.0, ""))
    for (label, _), seconds, taken in zip(variants, refine_s, steps, strict=True):
        print(row.format(label, 1000 * seconds / len(samples), 1000 * seconds / max(people, 1),
                         seconds / forward_s, taken))


def timed(fn, *args) -> tuple[float, object]:
    """Seconds of ``fn(*args)`` (the device synchronised before and after), and its result."""
    synchronize()
    start = time.perf_counter()
    result = fn(*args)
    synchronize()
    return time.perf_counter() - start, result


if __name__ == "__main__":
    main()
