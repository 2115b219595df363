"""Figures for the report, like the paper's Figures 5 and 6.

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

import numpy as np
import torch
from PIL import Image, ImageDraw

from ops.geometry import axis_angle_to_matrix
from ops.raster import raster_depth, rasterize
from ops.sdf import penetration_depth

__all__ = ["scene_figure", "colliding_vertices"]

_PALETTE = torch.tensor([[0.35, 0.6, 0.95], [0.95, 0.75, 0.3], [0.5, 0.85, 0.45],
                         [0.85, 0.5, 0.85], [0.4, 0.85, 0.85], [0.95, 0.55, 0.45]])
_RED = torch.tensor([0.9, 0.05, 0.05])


def colliding_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``[P, V]`` bool: the vertex lies inside another person's mesh."""
    inside = torch.zeros(vertices.shape[:2], dtype=torch.bool)
    for i in range(vertices.shape[0]):
        for j in range(vertices.shape[0]):
            if i != j:
                inside[j] |= penetration_depth(vertices[i], faces, vertices[j]) > 0
    return inside


def _draw(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size: tuple[int, int],
          colliding: torch.Tensor, background: np.ndarray) -> np.ndarray:
    """Shaded people (person colours, colliding faces red) over ``background [H, W, 3]``."""
    image = background.astype(np.float32) / 255.0
    if vertices.shape[0] == 0:
        return (image * 255).astype(np.uint8)
    raster = rasterize(vertices, faces, K, size)
    nearest, who = raster_depth(raster, vertices, faces).min(dim=0)
    rows, cols = torch.isfinite(nearest).nonzero(as_tuple=True)
    person = who[rows, cols]
    face = raster.face_id[person, rows, cols]
    corners = vertices[person[:, None], faces[face]]
    normal = torch.nn.functional.normalize(
        torch.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0], dim=-1), dim=-1)
    shade = 0.35 + 0.65 * normal[:, 2].abs()  # light from the camera
    colour = _PALETTE[person % len(_PALETTE)]
    hit = colliding[person[:, None], faces[face]].any(dim=1)
    colour = torch.where(hit[:, None], _RED, colour) * shade[:, None]
    image[rows.numpy(), cols.numpy()] = (0.25 * image[rows.numpy(), cols.numpy()]
                                         + 0.75 * colour.numpy())
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
    K = torch.tensor([[focal, 0.0, size[1] / 2], [0.0, focal, size[0] / 2], [0.0, 0.0, 1.0]])
    return turned + torch.tensor([0.0, 0.0, distance]), K


def scene_figure(image: np.ndarray, K: torch.Tensor, rows: list[tuple[str, torch.Tensor]],
                 faces: torch.Tensor) -> Image.Image:
    """One row per model: (label, camera-frame vertices ``[P, V, 3]``)."""
    height, width = image.shape[:2]
    grey = np.full_like(image, 235)
    panels = []
    for label, vertices in rows:
        colliding = colliding_vertices(vertices, faces)
        row = [_draw(vertices, faces, K, (height, width), colliding, image)]
        for axis in ("top", "side"):
            turned, view = _orbit(vertices, axis, (height, width))
            row.append(_draw(turned, faces, view, (height, width), colliding, grey))
        strip = Image.fromarray(np.concatenate(row, axis=1))
        ImageDraw.Draw(strip).text((4, 4), f"{label}: input | top | side "
                                           f"({int(colliding.any(1).sum())} colliding people)",
                                   fill=(0, 0, 0))
        panels.append(np.asarray(strip))
    return Image.fromarray(np.concatenate(panels, axis=0))
