"""``crmh predict`` throughput: images/s of ``Predictor.predict`` at the model's input
size on this machine, beside the network's forward pass alone (the baseline), measured
in the same process on the same images; on CUDA when a GPU is present (``--device cpu``
keeps it on the CPU).

Uses ``models/full/model.pt`` and the ``synth_multi`` benchmark images when ``make
repro`` has made them; otherwise an untrained network of the default ``model`` section
on random pictures (the speed does not depend on the weights, the number of detections
does).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench._scenes import describe, parse_device, synchronize
from crmh.predictor import Predictor
from model.body import load_body_model
from model.discriminator import build_discriminator
from model.io import save_model
from model.rcnn import ModelConfig, build_model
from pipelines.shards import SHARDS, read_shards
from pipelines.training import TrainParams
from pipelines.transforms import to_network_input
from stages.common import read_params, typed

TRAINED = Path("models/full/model.pt")
IMAGES = 6


def pictures(size: tuple[int, int]) -> list[np.ndarray]:
    folder = SHARDS / "test" / "synth_multi"
    if (folder / "index.json").is_file():
        return [s["image"].permute(1, 2, 0).numpy().copy()
                for _, s in zip(range(IMAGES), read_shards(folder), strict=False)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(IMAGES)]


def seconds_per_image(run, images: list[np.ndarray]) -> float:
    run(images[0])  # warm-up
    synchronize()
    start = time.perf_counter()
    for image in images:
        run(image)
    synchronize()
    return (time.perf_counter() - start) / len(images)


def main() -> None:
    device = parse_device(__doc__.splitlines()[0])
    torch.set_num_threads(2)
    params = read_params()
    common = typed(TrainParams, params, "train.common")
    size = (common.input_height, common.input_width)
    with tempfile.TemporaryDirectory() as folder:
        path = TRAINED
        if not path.is_file():
            body = load_body_model(params["body_model"]["kind"])
            config = typed(ModelConfig, params, "model")
            path = Path(folder) / "model.pt"
            save_model(path, build_model(config, body, 0),
                       build_discriminator(body.num_joints, body.shape_dim, 1), config,
                       body.name, size)
        predictor = Predictor(path, device=device)
        images = pictures(size)

        def forward(image: np.ndarray) -> None:
            sample = {"key": "x", "image": torch.from_numpy(image).permute(2, 0, 1),
                      "target": {"boxes": torch.zeros(0, 4), "keypoints": torch.zeros(0, 17, 3),
                                 "K": torch.eye(3)}}
            network_input = to_network_input(sample, *predictor.input_size)
            with torch.no_grad():
                predictor.network(network_input["image"][None].to(device),
                                  intrinsics=[network_input["target"]["K"].to(device)])

        network = seconds_per_image(forward, images)
        full = seconds_per_image(predictor.predict, images)
    print(f"device: {describe(device)}")
    print(f"{'at ' + 'x'.join(map(str, predictor.input_size)) + ', ' + str(path):44s} "
          f"{'images/s':>9s} {'vs network':>11s}")
    print(f"{'network forward (baseline)':44s} {1 / network:9.2f} {1.0:10.2f}x")
    print(f"{'Predictor.predict (+ posing the people)':44s} {1 / full:9.2f} "
          f"{network / full:10.2f}x")


if __name__ == "__main__":
    main()
