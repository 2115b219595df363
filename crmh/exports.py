"""Files written for each image by ``crmh predict``, each one optional.

- ``<name>.npz``: every person's parameters, translation, joints (each joint set), box
  and score, the intrinsics, the body model's name and the model file's SHA-256.
- ``<name>.glb``: one mesh per person (node ``person_<i>``, a distinct colour) in the
  camera frame turned to glTF's axes (y up, looking along -z), for any glTF viewer;
  ``<name>_person<i>.obj`` per person on request, in the same axes.
- ``<name>_overlay.png``: the people drawn over the image.
- ``<name>_views.png``: the input, top and side views (the paper's Figure 6), with
  vertices inside another person in red and the total intersection volume printed.
- one line per image in ``predictions.jsonl`` (:func:`summary_line`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import ImageDraw

from crmh.predictor import Prediction
from ops.collision import collision_volume
from pipelines.figures import PALETTE, colliding_vertices, draw_people, scene_figure

__all__ = ["FORMATS", "write_npz", "write_glb", "write_obj", "write_overlay", "write_views",
           "summary_line", "GLTF_FROM_CAMERA"]

FORMATS = ("npz", "glb", "obj", "overlay", "views")
# OpenCV camera axes (x right, y down, z forward) -> glTF (x right, y up, z backward).
GLTF_FROM_CAMERA = np.diag([1.0, -1.0, -1.0])


def write_npz(path: Path, prediction: Prediction, body_model: str, model_sha256: str) -> None:
    people = prediction.people
    arrays = {"K": prediction.K, "image_size": np.array(prediction.size),
              "body_model": np.array(body_model), "model_sha256": np.array(model_sha256),
              "boxes": _stack([p.box for p in people], (0, 4)),
              "scores": np.array([p.score for p in people], dtype=np.float32),
              "rotmats": _stack([p.rotmats for p in people], (0, 0, 3, 3)),
              "shape": _stack([p.shape for p in people], (0, 0)),
              "transl": _stack([p.transl for p in people], (0, 3))}
    for name in (people[0].joints if people else ()):
        arrays[f"joints_{name}"] = _stack([p.joints[name] for p in people], (0, 0, 3))
    np.savez(path, **arrays)


def _stack(arrays: list[np.ndarray], empty_shape: tuple[int, ...]) -> np.ndarray:
    return np.stack(arrays).astype(np.float32) if arrays else np.zeros(empty_shape, np.float32)


def _meshes(prediction: Prediction, faces: np.ndarray) -> list[trimesh.Trimesh]:
    meshes = []
    for index, person in enumerate(prediction.people):
        colour = np.append(PALETTE[index % len(PALETTE)].numpy() * 255, 255).astype(np.uint8)
        meshes.append(trimesh.Trimesh(person.vertices @ GLTF_FROM_CAMERA.T, faces,
                                      vertex_colors=np.tile(colour, (len(person.vertices), 1)),
                                      process=False))
    return meshes


def write_glb(path: Path, prediction: Prediction, faces: np.ndarray) -> None:
    scene = trimesh.Scene()
    for index, mesh in enumerate(_meshes(prediction, faces)):
        scene.add_geometry(mesh, node_name=f"person_{index}", geom_name=f"person_{index}")
    path.write_bytes(scene.export(file_type="glb"))


def write_obj(folder: Path, name: str, prediction: Prediction, faces: np.ndarray) -> None:
    for index, mesh in enumerate(_meshes(prediction, faces)):
        mesh.export(folder / f"{name}_person{index}.obj")


def _vertices(prediction: Prediction, faces: np.ndarray) -> torch.Tensor:
    if not prediction.people:
        return torch.zeros(0, int(faces.max()) + 1, 3)
    return torch.from_numpy(np.stack([p.vertices for p in prediction.people])).float()


def write_overlay(path: Path, image: np.ndarray, prediction: Prediction,
                  faces: np.ndarray) -> None:
    from PIL import Image

    vertices, faces_t = _vertices(prediction, faces), torch.from_numpy(faces).long()
    colliding = colliding_vertices(vertices, faces_t)
    picture = draw_people(vertices, faces_t, torch.from_numpy(prediction.K).float(),
                          prediction.size, colliding, image)
    Image.fromarray(picture).save(path)


def write_views(path: Path, image: np.ndarray, prediction: Prediction,
                faces: np.ndarray) -> float:
    """The views figure; returns the total pairwise intersection volume (m³)."""
    vertices, faces_t = _vertices(prediction, faces), torch.from_numpy(faces).long()
    volume = float(collision_volume(vertices, faces_t, grid_size=64).sum() / 2)
    figure = scene_figure(image, torch.from_numpy(prediction.K).float(),
                          [("prediction", vertices)], faces_t)
    ImageDraw.Draw(figure).text((4, 16), f"intersection volume {volume * 1e6:.0f} cm3",
                                fill=(0, 0, 0))
    figure.save(path)
    return volume


def summary_line(image: str, prediction: Prediction | None, error: str | None = None) -> str:
    """One JSON line: the image and its people (score, box, pelvis), or its error."""
    if prediction is None:
        return json.dumps({"image": image, "error": error})
    people = [{"score": round(p.score, 4), "box": [round(float(v), 1) for v in p.box],
               "transl": [round(float(v), 4) for v in p.transl]} for p in prediction.people]
    return json.dumps({"image": image, "people": len(people), "detections": people,
                       "refine_steps": prediction.refine_steps})
