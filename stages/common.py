"""What every stage shares: reading ``params.yaml`` once, and building the body model.

Stages read their own sections into frozen dataclasses at the top of ``main()`` and
pass plain values down; nothing below ``stages/`` reads configuration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from model.body import BodyModel, load_body_model

T = TypeVar("T")

__all__ = ["read_params", "from_section", "section", "typed", "BodyModelParams", "write_json",
           "merge_into"]


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole ``params.yaml`` as a dict."""
    with open(path) as handle:
        params = yaml.safe_load(handle)
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of parameter sections")
    return params


def from_section(cls: type[T], params: dict[str, Any], name: str) -> T:
    """Build dataclass ``cls`` from ``params[name]``, requiring exactly its fields, so a
    typo in ``params.yaml`` is an error rather than a silently ignored key."""
    if name not in params:
        raise KeyError(f"params.yaml has no '{name}' section")
    section = params[name]
    expected = {f.name for f in fields(cls)}
    missing, unknown = expected - set(section), set(section) - expected
    if missing or unknown:
        raise ValueError(f"params.yaml section '{name}': missing {sorted(missing)}, "
                         f"unknown {sorted(unknown)}")
    return cls(**section)


def section(params: dict[str, Any], dotted: str) -> dict[str, Any]:
    """The section at a dotted path (``train.common``), with lists as tuples."""
    value = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"params.yaml has no '{dotted}' section")
        value = value[part]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


def typed(cls: type[T], params: dict[str, Any], dotted: str) -> T:
    """Dataclass ``cls`` from the section at ``dotted``, with exactly its fields."""
    return from_section(cls, {dotted: section(params, dotted)}, dotted)


@dataclass(frozen=True)
class BodyModelParams:
    """``body_model`` section: which body model every stage uses."""

    kind: str  # "anny" (default, no files) or "smpl" (licensed file, see README)
    model_path: str | None  # SMPL only: SMPL_NEUTRAL.pkl or its folder
    h36m_regressor: str | None  # SMPL only, optional: J_regressor_h36m.npy

    def build(self) -> BodyModel:
        if self.kind == "smpl":
            return load_body_model("smpl", model_path=self.model_path,
                                   h36m_regressor=self.h36m_regressor)
        if self.model_path or self.h36m_regressor:
            raise ValueError("body_model.model_path / h36m_regressor apply to kind 'smpl' only")
        return load_body_model(self.kind)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Deterministic JSON (sorted keys, no timestamps), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def main() -> None:
    """``python -m stages.common apply PROFILE [--params params.yaml]``: merge a params
    profile (such as ``profiles/paper.yaml``) into params.yaml, keeping its comments."""
    import argparse

    from ruamel.yaml import YAML

    parser = argparse.ArgumentParser(description="Apply a params profile to params.yaml.")
    parser.add_argument("command", choices=["apply"])
    parser.add_argument("profile")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    round_trip = YAML()  # keeps comments, and numbers as written (1.0e-5 stays a float)
    round_trip.width = 100
    profile = round_trip.load(Path(args.profile))
    if not isinstance(profile, dict):
        raise ValueError(f"{args.profile}: expected a mapping of params sections")
    document = round_trip.load(Path(args.params))
    merge_into(document, profile)
    with open(args.params, "w") as handle:
        round_trip.dump(document, handle)
    print(f"applied {args.profile} to {args.params}: {', '.join(sorted(profile))}")


def merge_into(document: dict, overlay: dict) -> None:
    """Merge ``overlay`` into ``document`` in place (so a round-trip document keeps its
    comments): mappings key by key, anything else (a list, a value) replaced."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            merge_into(document[key], value)
        else:
            document[key] = value


if __name__ == "__main__":
    main()
