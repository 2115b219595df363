"""Render a synthetic scene into an RGB image: a floor, a backdrop and shaded people.

People are drawn with the project's own rasterizer (:mod:`ops.raster`). Each face is
shaded with a Lambert term and an ambient term from its normal. Its colour comes from
its body part: skin, top, bottom, shoes or eyes, read off Anny's skinning weights.
The floor is a tiled plane found by ray casting every pixel onto y = 0. Above the
horizon there is a backdrop: a vertical gradient with a few soft coloured panels.
Everything random comes from the caller's generator, so the same seed gives the same
image.
"""

from __future__ import annotations

import numpy as np
import torch

from model.anny_body import AnnyBody
from ops.raster import front_surface, lambert, raster_depth, rasterize
from pipelines.synthetic.scenes import Camera

__all__ = ["face_parts", "render_scene", "PARTS"]

PARTS = ("skin", "top", "bottom", "shoes", "eyes")
_SKIN_TONES = np.array([[241, 194, 167], [224, 172, 105], [198, 134, 66], [141, 85, 36],
                        [92, 56, 30], [255, 219, 172]], dtype=float)


def _bone_part(bone: str, long_sleeves: bool, shorts: bool) -> int:
    if bone.startswith("eye"):
        return PARTS.index("eyes")
    if bone.startswith(("foot", "toe")):
        return PARTS.index("shoes")
    if bone.startswith(("root", "pelvis", "upperleg")) or (bone.startswith("lowerleg")
                                                            and not shorts):
        return PARTS.index("bottom")
    if bone.startswith(("spine", "clavicle", "shoulder", "upperarm")) or (
            long_sleeves and bone.startswith("lowerarm")):
        return PARTS.index("top")
    return PARTS.index("skin")


def face_parts(body: AnnyBody, long_sleeves: bool, shorts: bool) -> torch.Tensor:
    """``[F]`` part index of every face: the part of the bone that moves its first vertex most."""
    anny = body.anny
    dominant = anny.vertex_bone_indices.gather(1, anny.vertex_bone_weights.argmax(1, keepdim=True))
    labels = list(anny.bone_labels)
    part_of_bone = torch.tensor([_bone_part(b, long_sleeves, shorts) for b in labels])
    return part_of_bone[dominant[:, 0]][body.faces[:, 0]]


def _palette(rng: np.random.Generator) -> np.ndarray:
    """RGB albedo per part ``[5, 3]`` in [0, 1]."""
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.9, 1.05)
    clothes = rng.uniform(20, 235, (3, 3))
    eyes = np.array([40.0, 30.0, 25.0])
    return np.clip(np.vstack([skin, clothes, eyes]), 0, 255) / 255.0


def _background(camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """``[H, W, 3]`` floats: tiled floor below the horizon, a backdrop above it."""
    height, width = camera.size
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    K = camera.K.numpy()
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    rays_world = rays_cam @ camera.rotation.numpy()  # R^T d for row vectors
    top, bottom = rng.uniform(0.2, 0.95, 3), rng.uniform(0.2, 0.95, 3)
    mix = (v / height)[..., None]
    image = top * (1 - mix) + bottom * mix
    for _ in range(int(rng.integers(2, 6))):  # soft panels on the backdrop
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height * 0.7)
        w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.4) * height
        inside = (np.abs(u - x0) < w / 2) & (np.abs(v - y0) < h / 2)
        image[inside] = image[inside] * 0.4 + rng.uniform(0.1, 0.9, 3) * 0.6
    down = rays_world[..., 1] < -1e-6
    t = np.where(down, camera.height / np.maximum(-rays_world[..., 1], 1e-6), 0.0)
    floor_x, floor_z = t * rays_world[..., 0], t * rays_world[..., 2]
    tile = rng.uniform(0.3, 1.0)
    checker = (np.floor(floor_x / tile) + np.floor(floor_z / tile)) % 2
    colours = rng.uniform(0.15, 0.85, (2, 3))
    floor = np.where(checker[..., None] > 0, colours[0], colours[1])
    fog = np.clip(t / 25.0, 0, 1)[..., None]  # far floor fades into the backdrop colour
    floor = floor * (1 - fog) + bottom * fog
    return np.where(down[..., None], floor, image)


def render_scene(vertices_cam: torch.Tensor, faces: torch.Tensor, parts: list[torch.Tensor],
                 camera: Camera, rng: np.random.Generator) -> tuple[np.ndarray, torch.Tensor]:
    """Render people over a random background.

    Args:
        vertices_cam: ``[P, V, 3]`` camera-frame meshes.
        faces: ``[F, 3]``.
        parts: per person, ``[F]`` part index of each face (see :func:`face_parts`).
        camera: the scene camera.
        rng: source of the background, palettes, light and noise.
    Returns:
        the RGB image ``[H, W, 3]`` uint8 and the per-person depth maps ``[P, H, W]``.
    """
    raster = rasterize(vertices_cam, faces, camera.K, camera.size)
    depths = raster_depth(raster, vertices_cam, faces)
    image = _background(camera, rng)
    if len(vertices_cam) == 0:
        return _finish(image, rng), depths
    surface = front_surface(raster, depths, vertices_cam, faces)
    light = torch.nn.functional.normalize(torch.tensor(
        [rng.uniform(-0.6, 0.6), rng.uniform(-1.0, -0.3), -1.0], dtype=torch.float32), dim=0)
    shade = lambert(surface.normal, light)
    palettes = torch.tensor(np.stack([_palette(rng) for _ in range(len(vertices_cam))]),
                            dtype=torch.float32)  # [P, 5, 3]
    part = torch.stack(parts)[surface.person, surface.face]
    colour = palettes[surface.person, part] * shade[:, None]
    image[surface.rows.numpy(), surface.cols.numpy()] = colour.numpy()
    return _finish(image, rng), depths


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0, 0.01, image.shape)
    return (np.clip(image + noise, 0, 1) * 255 + 0.5).astype(np.uint8)
