"""Figures for the report, like the paper's Figures 5 and 6 (drawn by the tables stage).

For a few benchmark images, one PNG per image has two rows: the baseline and the full
model. Each row shows three panels:
- the input with the predicted meshes overlaid;
- a top view of the reconstructed scene;
- a side view of the reconstructed scene.
Vertices of one person that lie inside another are drawn in red, so interpenetration
stands out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from model.body import BodyModel, posed_in_camera
from model.camera import intrinsics_matrix
from ops.geometry import axis_angle_to_matrix
from ops.raster import front_surface, lambert, raster_depth, rasterize
from ops.sdf import penetration_depth
from pipelines.transforms import to_network_input

__all__ = ["scene_figure", "colliding_vertices", "comparison_figures", "draw_people",
           "PALETTE"]

PALETTE = torch.tensor([[0.35, 0.6, 0.95], [0.95, 0.75, 0.3], [0.5, 0.85, 0.45],
                         [0.85, 0.5, 0.85], [0.4, 0.85, 0.85], [0.95, 0.55, 0.45]])
_RED = torch.tensor([0.9, 0.05, 0.05])
_HEADLIGHT = torch.tensor([0.0, 0.0, 1.0])  # a light at the camera, shining along +z


def colliding_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``[P, V]`` bool: the vertex lies inside another person's mesh."""
    inside = torch.zeros(vertices.shape[:2], dtype=torch.bool)
    for i in range(vertices.shape[0]):
        for j in range(vertices.shape[0]):
            if i != j:
                inside[j] |= penetration_depth(vertices[i], faces, vertices[j]) > 0
    return inside


def draw_people(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
                size: tuple[int, int], colliding: torch.Tensor,
                background: np.ndarray) -> np.ndarray:
    """Shaded people seen through ``K`` (person colours, faces touching a ``colliding
    [P, V]`` vertex red) over ``background [H, W, 3]`` uint8; returns the picture."""
    image = background.astype(np.float32) / 255.0
    if vertices.shape[0] == 0:
        return (image * 255).astype(np.uint8)
    raster = rasterize(vertices, faces, K, size)
    surface = front_surface(raster, raster_depth(raster, vertices, faces), vertices, faces)
    shade = lambert(surface.normal, _HEADLIGHT)
    colour = PALETTE[surface.person % len(PALETTE)]
    hit = colliding[surface.person[:, None], faces[surface.face]].any(dim=1)
    colour = torch.where(hit[:, None], _RED, colour) * shade[:, None]
    rows, cols = surface.rows.numpy(), surface.cols.numpy()
    image[rows, cols] = 0.25 * image[rows, cols] + 0.75 * colour.numpy()
    return (image.clip(0, 1) * 255).astype(np.uint8)


def _orbit(vertices: torch.Tensor, axis: str, size: tuple[int, int]):
    """Vertices seen from above (``axis="top"``) or from the side, and a camera that
    frames them."""
    if vertices.shape[0] == 0:
        return vertices, torch.eye(3)
    centre = vertices.reshape(-1, 3).mean(0)
    rotation = axis_angle_to_matrix(torch.tensor([math.pi / 2, 0.0, 0.0]) if axis == "top"
                                    else torch.tensor([0.0, -math.pi / 2, 0.0]))
    turned = (vertices - centre) @ rotation.T
    extent = float(turned.reshape(-1, 3)[:, :2].abs().max()) + 0.3
    distance = 10.0
    focal = 0.45 * min(size) * distance / extent
    K = intrinsics_matrix(focal, size[1], size[0])
    return turned + torch.tensor([0.0, 0.0, distance]), K


def scene_figure(image: np.ndarray, K: torch.Tensor, rows: list[tuple[str, torch.Tensor]],
                 faces: torch.Tensor) -> Image.Image:
    """One row per model: (label, camera-frame vertices ``[P, V, 3]``)."""
    height, width = image.shape[:2]
    grey = np.full_like(image, 235)
    panels = []
    for label, vertices in rows:
        colliding = colliding_vertices(vertices, faces)
        row = [draw_people(vertices, faces, K, (height, width), colliding, image)]
        for axis in ("top", "side"):
            turned, view = _orbit(vertices, axis, (height, width))
            row.append(draw_people(turned, faces, view, (height, width), colliding, grey))
        strip = Image.fromarray(np.concatenate(row, axis=1))
        ImageDraw.Draw(strip).text((4, 4), f"{label}: input | top | side "
                                           f"({int(colliding.any(1).sum())} colliding people)",
                                   fill=(0, 0, 0))
        panels.append(np.asarray(strip))
    return Image.fromarray(np.concatenate(panels, axis=0))


@torch.no_grad()
def comparison_figures(samples: Iterable[dict], networks: dict[str, torch.nn.Module],
                       body: BodyModel, score_threshold: float, size: tuple[int, int], folder: Path,
                       count: int) -> list[str]:
    """One figure per multi-person sample (the first ``count``), one row per network;
    returns the file names written in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = torch.zeros(0, int(body.faces.max()) + 1, 3)
    written = []
    for sample in samples:
        if len(written) == count:
            break
        if sample["meta"]["num_people"] < 2:
            continue
        network_input = to_network_input(sample, *size)
        K = network_input["target"]["K"]
        rows = []
        for name, network in networks.items():
            det = network(network_input["image"][None], intrinsics=[K])[0]
            keep = det["scores"] >= score_threshold  # nothing confident: an empty scene
            rows.append((name, posed_in_camera(body, det["rotmats"][keep], det["shape"][keep],
                                               det["transl"][keep]).vertices
                         if keep.any() else empty))
        picture = (network_input["image"].permute(1, 2, 0).numpy() * 255).astype("uint8")
        scene_figure(picture, K, rows, body.faces).save(folder / f"{sample['key']}.png")
        written.append(f"{sample['key']}.png")
    return written
