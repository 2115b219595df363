"""Stage ``refine_model``: the model evaluated as ``full_refine``.

    python -m stages.refine_model --out models/full_refine

Writes a copy of the ``refine.base`` model file that also carries the ``refine``
section (and the base file's SHA-256): evaluation and ``crmh predict`` then run the
network followed by test-time coherence refinement (:mod:`pipelines.refine`). Nothing is
trained here.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import asdict
from pathlib import Path

from model.io import read_model, write_atomically
from pipelines.refine import RefineConfig
from stages.common import read_params, section


def refined_model(base_path: Path, config: RefineConfig) -> dict:
    """The base model file's contents plus the refinement configuration."""
    state = read_model(base_path)
    if state["kind"] != "network":
        raise ValueError(f"{base_path}: a {state['kind']} file; only a network is refined")
    return {**state, "refine": asdict(config),
            "refine_base_sha256": hashlib.sha256(base_path.read_bytes()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the refined model's file.")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    values = section(read_params(), "refine")  # the settings and ``base``, the model refined
    config = RefineConfig.from_section(values)
    base = values.get("base", "full")
    state = refined_model(Path("models") / base / "model.pt", config)
    write_atomically(Path(args.out) / "model.pt", state)
    print(f"{args.out}/model.pt: models/{base} followed by refinement "
          f"(at most {config.order_steps} + {config.separate_steps} + {config.steps} steps)")


if __name__ == "__main__":
    main()
