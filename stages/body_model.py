"""Stage ``body_model``: build the configured body model once, check it and describe it.

Writes ``data/body_model/summary.json``: sizes, rotation and joint names, and checks
of the mean body in its rest pose (height, watertight surface, positive volume). Every
later stage depends on this output, so switching ``body_model.kind`` re-runs the
pipeline, and a broken model file fails here with a clear message. It also warms
Anny's user cache (its first construction parses assets for about two minutes).

    python -m stages.body_model --out data/body_model
"""

from __future__ import annotations

import argparse

import torch
import trimesh

from model.body import BodyModel
from stages.common import BodyModelParams, from_section, read_params, write_json


def describe(body: BodyModel) -> dict:
    """Sizes, names and rest-pose checks of a body model (floats rounded to 0.1 mm)."""
    rest = torch.eye(3).expand(1, body.num_joints, 3, 3)
    with torch.no_grad():
        output = body(rest, body.mean_shape()[None])
    vertices = output.vertices[0].double().numpy()
    mesh = trimesh.Trimesh(vertices, body.faces.numpy(), process=False)
    height = float(vertices[:, 1].max() - vertices[:, 1].min())
    return {
        "kind": body.name,
        "num_vertices": int(vertices.shape[0]),
        "num_faces": int(body.faces.shape[0]),
        "num_rotations": body.num_joints,
        "shape_dim": body.shape_dim,
        "rotation_names": list(body.rotation_names),
        "joint_sets": {k: list(v) for k, v in body.joint_sets.items()},
        "rest_height_m": round(height, 4),
        "watertight": bool(mesh.is_watertight),
        "volume_m3": round(float(mesh.volume), 4),
    }


def check(summary: dict) -> None:
    """Fail on a body model that later stages cannot use."""
    if not summary["watertight"] or summary["volume_m3"] <= 0:
        raise ValueError(f"{summary['kind']}: the rest mesh must be closed with outward "
                         f"faces for the SDF and collision ops (got {summary})")
    if not 0.5 < summary["rest_height_m"] < 2.5:
        raise ValueError(f"{summary['kind']}: rest height {summary['rest_height_m']} m "
                         "is not a human size in metres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/body_model")
    args = parser.parse_args()
    config = from_section(BodyModelParams, read_params(), "body_model")
    summary = describe(config.build())
    check(summary)
    write_json(f"{args.out}/summary.json", summary)
    print(f"{summary['kind']}: {summary['num_vertices']} vertices, "
          f"{summary['num_rotations']} rotations, rest height {summary['rest_height_m']} m")


if __name__ == "__main__":
    main()
