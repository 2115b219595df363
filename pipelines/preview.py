"""Draw decoded samples for a person to check by eye: masks, boxes and keypoints."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["draw_sample", "preview_grid"]

_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                     [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230],
                     [210, 245, 60], [250, 190, 212]], dtype=float)
# COCO-17 limbs, for drawing the skeleton.
_LIMBS = [(5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (5, 11), (6, 12), (11, 12), (11, 13),
          (13, 15), (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4)]


def draw_sample(sample: dict) -> Image.Image:
    """Image with instance masks tinted, ignore regions darkened, boxes, and COCO
    keypoints (filled = visible, hollow = not visible) per person."""
    image = sample["image"].permute(1, 2, 0).numpy().astype(float)
    target = sample["target"]
    if "ignore" in target:  # regions with unannotated people, darkened
        image[target["ignore"].numpy()] *= 0.35
    if "masks" in target:
        masks = target["masks"].numpy()
        for person in range(1, int(masks.max(initial=0)) + 1):
            tint = _COLOURS[(person - 1) % len(_COLOURS)]
            image[masks == person] = 0.55 * image[masks == person] + 0.45 * tint
    canvas = Image.fromarray(image.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    radius, width = max(2, max(canvas.size) // 250), max(1, max(canvas.size) // 500)
    for person, (box, keypoints) in enumerate(zip(target["boxes"].tolist(),
                                                  target["keypoints"].tolist(), strict=True)):
        colour = tuple(int(c) for c in _COLOURS[person % len(_COLOURS)])
        draw.rectangle(box, outline=colour, width=width)
        for a, b in _LIMBS:
            if keypoints[a][2] > 0 and keypoints[b][2] > 0:
                draw.line([tuple(keypoints[a][:2]), tuple(keypoints[b][:2])], fill=colour,
                          width=width)
        for x, y, visible in keypoints:
            dot = [x - radius, y - radius, x + radius, y + radius]
            draw.ellipse(dot, fill=colour if visible > 0 else None, outline=(255, 255, 255))
    return canvas


def preview_grid(samples: list[dict], columns: int = 4) -> Image.Image:
    """Tile drawn samples in a grid; tiles of other sizes than the first are scaled to
    fit its size (real datasets mix image sizes)."""
    tiles = [draw_sample(s) for s in samples]
    if not tiles:
        raise ValueError("preview: no samples to draw")
    width, height = tiles[0].size
    for i, tile in enumerate(tiles):
        scale = min(width / tile.width, height / tile.height)
        if scale != 1:
            tiles[i] = tile.resize((round(tile.width * scale), round(tile.height * scale)))
    rows = (len(tiles) + columns - 1) // columns
    grid = Image.new("RGB", (width * min(columns, len(tiles)), height * rows))
    for i, tile in enumerate(tiles):
        grid.paste(tile, ((i % columns) * width, (i // columns) * height))
    return grid
