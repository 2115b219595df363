"""Model files: one ``model.pt`` per trained phase, which carries what it needs.

A model file is a dict: ``format`` ("crmh-model") and ``version``, ``kind``
("network" or "mean_pose"), and for a network its ``config`` (the ``model`` section it
was built with), ``body_model`` (the body model's name), ``input_size`` (the network
input, height and width), the ``network`` weights and the adversarial
``discriminator`` weights (which the next training phase continues from). Evaluation
and inference rebuild the network from the file alone, without ``params.yaml`` or a
prior.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from model.body import BodyModel
from model.rcnn import CoherentRCNN, ModelConfig, build_model

__all__ = ["FORMAT", "VERSION", "save_model", "read_model", "load_network"]

FORMAT, VERSION = "crmh-model", 2  # 2: fpn_channels, head_channels, precision


def save_model(path: str | Path, network: CoherentRCNN, discriminator: torch.nn.Module,
               config: ModelConfig, body_model: str, input_size: tuple[int, int]) -> None:
    """Write a network's model file atomically."""
    state = {"format": FORMAT, "version": VERSION, "kind": "network", "config": asdict(config),
             "body_model": body_model, "input_size": list(input_size),
             "network": network.state_dict(), "discriminator": discriminator.state_dict()}
    write_atomically(path, state)


def write_atomically(path: str | Path, state: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def read_model(path: str | Path) -> dict[str, Any]:
    """A model file's contents, checked to be one this code reads."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model file (train it with dvc repro, or give the "
                                "path of a model.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "not ours"
        raise ValueError(f"{path}: not a crmh model file ({error})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a crmh model file (expected format {FORMAT!r})")
    if state.get("version") != VERSION:
        raise ValueError(f"{path}: model file version {state.get('version')}, this code reads "
                         f"version {VERSION}; retrain the model or use a matching crmh")
    return state


def load_network(path: str | Path, body: BodyModel) -> tuple[CoherentRCNN, dict[str, Any]]:
    """The network of a model file, in evaluation mode, and the file's contents."""
    state = read_model(path)
    if state["kind"] != "network":
        raise ValueError(f"{path}: a {state['kind']} file, not a trained network")
    if state["body_model"] != body.name:
        raise ValueError(f"{path}: trained with body model {state['body_model']!r}, but "
                         f"{body.name!r} was given (body_model.kind in params.yaml)")
    config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in state["config"].items()})
    network = build_model(config, body, seed=0)
    network.load_state_dict(state["network"])
    return network.eval(), state
