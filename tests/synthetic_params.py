"""A tiny synthetic profile for tests: the real params.yaml with small images and sizes."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def tiny_params(size: int = 6, seed: int = 0, workers: int = 1) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = copy.deepcopy(params)
    params["seed"] = seed
    params["synthetic"].update(height=80, width=128, focal=160.0, min_visible_pixels=12)
    params["shard"].update(max_count=4, workers=workers)
    for name, spec in params["prepare"].items():
        if spec["kind"] != "synthetic":
            continue
        spec["size"] = size
        if name == "synth_crowd":
            spec["people"] = [5, 6]
    return params
