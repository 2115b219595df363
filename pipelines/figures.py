"""Figures for the report, like the paper's Figures 5 and 6 (drawn by the tables stage).

For a few benchmark images, one PNG per image has a row for the ground truth, then one
per model (the baseline and the full model). Each row shows three panels:
- the input with the row's meshes overlaid;
- a top view of the scene;
- a side view of the scene.
Every row's top and side views share one camera, framed on all rows' people, so a
predicted person stands where the ground truth's would if it were placed right. Each
predicted person takes the colour of the annotated person its box matches (grey: no
match), so a pose is compared with its own ground truth across rows. Vertices of one
person that lie inside another are drawn in red, so interpenetration stands out.
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
from ops.detection import matched_people
from ops.geometry import axis_angle_to_matrix
from ops.raster import front_surface, lambert, raster_depth, rasterize
from ops.sdf import penetration_depth
from pipelines.transforms import to_network_input

__all__ = ["scene_figure", "colliding_vertices", "comparison_figures", "draw_people",
           "person_colours", "PALETTE", "UNMATCHED"]

PALETTE = torch.tensor([[0.35, 0.6, 0.95], [0.95, 0.75, 0.3], [0.5, 0.85, 0.45],
                         [0.85, 0.5, 0.85], [0.4, 0.85, 0.85], [0.95, 0.55, 0.45]])
UNMATCHED = torch.tensor([0.7, 0.7, 0.7])  # a prediction that matches no annotated person
_RED = torch.tensor([0.9, 0.05, 0.05])
_DIVIDER = (60, 60, 60)
_VIEW_DISTANCE = 10.0  # metres from the top and side cameras to the people's centre
_HEADLIGHT = torch.tensor([0.0, 0.0, 1.0])  # a light at the camera, shining along +z


def colliding_vertices(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``[P, V]`` bool: the vertex lies inside another person's mesh."""
    inside = torch.zeros(vertices.shape[:2], dtype=torch.bool)
    for i in range(vertices.shape[0]):
        for j in range(vertices.shape[0]):
            if i != j:
                inside[j] |= penetration_depth(vertices[i], faces, vertices[j]) > 0
    return inside


def person_colours(people: int) -> torch.Tensor:
    """``[P, 3]``: the palette's colours in order, repeating."""
    return PALETTE[torch.arange(people) % len(PALETTE)]


def draw_people(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
                size: tuple[int, int], colliding: torch.Tensor,
                background: np.ndarray, colours: torch.Tensor | None = None) -> np.ndarray:
    """Shaded people seen through ``K`` (``colours [P, 3]``, by default
    :func:`person_colours`; faces touching a ``colliding [P, V]`` vertex red) over
    ``background [H, W, 3]`` uint8; returns the picture."""
    image = background.astype(np.float32) / 255.0
    if vertices.shape[0] == 0:
        return (image * 255).astype(np.uint8)
    raster = rasterize(vertices, faces, K, size)
    surface = front_surface(raster, raster_depth(raster, vertices, faces), vertices, faces)
    shade = lambert(surface.normal, _HEADLIGHT)
    colours = person_colours(vertices.shape[0]) if colours is None else colours
    colour = colours[surface.person]
    hit = colliding[surface.person[:, None], faces[surface.face]].any(dim=1)
    colour = torch.where(hit[:, None], _RED, colour) * shade[:, None]
    rows, cols = surface.rows.numpy(), surface.cols.numpy()
    image[rows, cols] = 0.25 * image[rows, cols] + 0.75 * colour.numpy()
    return (image.clip(0, 1) * 255).astype(np.uint8)


def _view_rotation(axis: str) -> torch.Tensor:
    """Turns the camera frame so that a camera looking along +z sees it from above
    (``"top"``) or from the side."""
    return axis_angle_to_matrix(torch.tensor([math.pi / 2, 0.0, 0.0]) if axis == "top"
                                else torch.tensor([0.0, -math.pi / 2, 0.0]))


def _orbit_camera(points: torch.Tensor, axis: str, size: tuple[int, int]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A camera that frames ``points [N, 3]`` seen from ``axis``: (centre, rotation, K).
    A scene point ``x`` is seen at ``(x - centre) @ rotation.T`` moved
    :data:`_VIEW_DISTANCE` along +z."""
    rotation = _view_rotation(axis)
    if points.shape[0] == 0:
        return torch.zeros(3), rotation, intrinsics_matrix(1.0, size[1], size[0])
    centre = points.mean(0)
    extent = float(((points - centre) @ rotation.T)[:, :2].abs().max()) + 0.3
    focal = 0.45 * min(size) * _VIEW_DISTANCE / extent
    return centre, rotation, intrinsics_matrix(focal, size[1], size[0])


def _divided(panels: list[np.ndarray], axis: int) -> np.ndarray:
    """Panels joined along ``axis`` (1: side by side, 0: stacked), each seam a dark
    2-pixel line."""
    joined = np.concatenate(panels, axis=axis)
    offsets = np.cumsum([panel.shape[axis] for panel in panels])[:-1]
    for offset in offsets:
        seam = slice(max(0, offset - 1), offset + 1)
        if axis == 1:
            joined[:, seam] = _DIVIDER
        else:
            joined[seam] = _DIVIDER
    return joined


def scene_figure(image: np.ndarray, K: torch.Tensor, rows: list[tuple[str, torch.Tensor]],
                 faces: torch.Tensor, colours: list[torch.Tensor | None] | None = None
                 ) -> Image.Image:
    """One row per entry of ``rows`` (label, camera-frame vertices ``[P, V, 3]``), each
    row's people in its ``colours [P, 3]`` (default :func:`person_colours`). The top and
    side views of every row share one camera, framed on all rows' vertices."""
    height, width = image.shape[:2]
    colours = colours if colours is not None else [None] * len(rows)
    grey = np.full_like(image, 235)
    everyone = torch.cat([vertices.reshape(-1, 3) for _, vertices in rows])
    cameras = {axis: _orbit_camera(everyone, axis, (height, width)) for axis in ("top", "side")}
    strips = []
    for (label, vertices), colour in zip(rows, colours, strict=True):
        colliding = colliding_vertices(vertices, faces)
        row = [draw_people(vertices, faces, K, (height, width), colliding, image, colour)]
        for centre, rotation, view in cameras.values():
            turned = (vertices - centre) @ rotation.T + torch.tensor([0.0, 0.0, _VIEW_DISTANCE])
            row.append(draw_people(turned, faces, view, (height, width), colliding, grey,
                                   colour))
        strip = Image.fromarray(_divided(row, axis=1))
        ImageDraw.Draw(strip).text((4, 4), f"{label}: input | top | side "
                                           f"({int(colliding.any(1).sum())} colliding people)",
                                   fill=(0, 0, 0))
        strips.append(np.asarray(strip))
    return Image.fromarray(_divided(strips, axis=0))


def _ground_truth(body: BodyModel, target: dict[str, torch.Tensor]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The annotated people with a body: camera-frame vertices ``[P, V, 3]`` and their
    colours (an annotated person's colour is its index's palette colour)."""
    known = target["has_body"].bool()
    posed = posed_in_camera(body, target["rotmats"][known], target["shape"][known],
                            target["transl"][known])
    return posed.vertices, person_colours(len(known))[known]


def _matched_colours(boxes: torch.Tensor, scores: torch.Tensor,
                     gt_boxes: torch.Tensor) -> torch.Tensor:
    """``[D, 3]``: each detection in the colour of the annotated person its box matches
    (the evaluation's greedy IoU-0.5 rule), :data:`UNMATCHED` grey otherwise."""
    person = torch.from_numpy(matched_people(boxes, scores, gt_boxes))
    palette = person_colours(len(gt_boxes))
    return torch.where((person >= 0)[:, None], palette[person.clamp(min=0)], UNMATCHED)


@torch.no_grad()
def comparison_figures(samples: Iterable[dict], networks: dict[str, torch.nn.Module],
                       body: BodyModel, score_threshold: float, size: tuple[int, int], folder: Path,
                       count: int) -> list[str]:
    """One figure per multi-person sample (the first ``count``): the ground truth, then
    one row per network; returns the file names written in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in samples:
        if len(written) == count:
            break
        if sample["meta"]["num_people"] < 2:
            continue
        network_input = to_network_input(sample, *size)
        target = network_input["target"]
        truth, truth_colours = _ground_truth(body, target)
        rows, colours = [("ground truth", truth)], [truth_colours]
        for name, network in networks.items():
            det = network(network_input["image"][None], intrinsics=[target["K"]])[0]
            keep = det["scores"] >= score_threshold
            posed = posed_in_camera(body, det["rotmats"][keep], det["shape"][keep],
                                    det["transl"][keep])  # none kept: an empty scene
            rows.append((name, posed.vertices))
            colours.append(_matched_colours(det["boxes"][keep], det["scores"][keep],
                                            target["boxes"]))
        picture = (network_input["image"].permute(1, 2, 0).numpy() * 255).astype("uint8")
        scene_figure(picture, target["K"], rows, body.faces, colours).save(
            folder / f"{sample['key']}.png")
        written.append(f"{sample['key']}.png")
    return written
