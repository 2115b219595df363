"""The embedded synthetic multi-person dataset: one sample per call, deterministic.

A sample is a scene of Anny people in the schema of DESIGN §5. It is built as
follows:
1. Draw a camera.
2. Draw the people: activity, pose and phenotype.
3. Stand the people on the ground in the split's layout.
4. Pose them in the camera frame from the very parameters that are stored, so the
   ground truth is consistent by construction.
5. Reject the draw if a pelvis projects outside the image, if two people
   interpenetrate (``collision_volume`` at the evaluation grid), or if someone is
   hardly visible. Every rejection is counted by reason.
6. Render the image, the instance masks and the per-person depth.
7. Derive the boxes, the COCO-17 2D keypoints with visibility and the h36m17 3D
   keypoints.

A 2D keypoint is *not visible* when it projects outside the image, or when another
person's surface lies in front of it at that pixel. Occlusion by the person's own
body does not count.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from model.anny_body import AnnyBody
from model.camera import project
from ops.collision import collision_volume
from ops.raster import instance_map
from pipelines.synthetic.render import face_parts, render_scene
from pipelines.synthetic.scenes import (
    LAYOUTS,
    Camera,
    Person,
    layout_people,
    place_people,
    sample_camera,
)

__all__ = ["SyntheticConfig", "SplitSpec", "SceneGenerator", "split_name"]


@dataclass(frozen=True)
class SyntheticConfig:
    """``synthetic`` section of params.yaml: how scenes look."""

    height: int  # image size in pixels
    width: int
    focal: float  # pixels
    depth_range: tuple[float, float]  # camera-z of each pelvis, metres
    camera_height: tuple[float, float]  # metres above the ground
    pitch_deg: float  # max absolute camera pitch
    roll_deg: float  # max absolute camera roll
    child_fraction: float  # share of children among the people
    closeness: float  # how far footprint discs may overlap (0: never)
    min_visible_pixels: int  # every person shows at least this many pixels
    max_attempts: int  # scene draws before a sample is given up (and counted)
    collision_grid: int  # grid of the interpenetration check (the evaluation's 64)


@dataclass(frozen=True)
class SplitSpec:
    """One synthetic dataset of the ``prepare`` section."""

    size: int  # images
    people: tuple[int, int]  # people per image, inclusive
    layouts: tuple[str, ...]  # cycled through by sample index
    split: str  # split name in sample keys; "layout" names it after the layout

    def __post_init__(self):
        unknown = set(self.layouts) - set(LAYOUTS)
        if unknown or not self.layouts:
            raise ValueError(f"unknown layouts {sorted(unknown)}: expected some of {list(LAYOUTS)}")


def split_name(spec: SplitSpec, index: int) -> str:
    layout = spec.layouts[index % len(spec.layouts)]
    return layout if spec.split == "layout" else spec.split


class SceneGenerator:
    """Makes samples of one synthetic dataset. Holds the Anny model and the face-part
    tables; each sample depends only on ``(seed, dataset, index)``, not on the order
    or the process it is made in."""

    def __init__(self, body: AnnyBody, config: SyntheticConfig, dataset: str, spec: SplitSpec,
                 seed: int) -> None:
        self.body, self.config, self.spec, self.seed = body, config, spec, seed
        self.dataset = dataset
        self.faces = body.faces
        self.part_tables = [face_parts(body, sleeves, shorts)
                            for sleeves in (False, True) for shorts in (False, True)]

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(self.dataset.encode()), index])

    def sample(self, index: int) -> tuple[dict | None, Counter]:
        """The sample at ``index`` and the rejected draws by reason (``None`` and a
        ``failed`` count if every attempt was rejected)."""
        rng, rejected = self.rng(index), Counter()
        layout = self.spec.layouts[index % len(self.spec.layouts)]
        for _ in range(self.config.max_attempts):
            scene = self._draw(layout, rng)
            if isinstance(scene, str):
                rejected[scene] += 1
                continue
            return self._annotate(index, layout, *scene), rejected
        rejected["failed"] += 1
        return None, rejected

    @torch.no_grad()
    def _draw(self, layout: str, rng: np.random.Generator):
        """One attempt: the scene, or the reason it was rejected."""
        c = self.config
        camera = sample_camera(rng, (c.height, c.width), c.focal, c.camera_height,
                               c.pitch_deg, c.roll_deg)
        people = layout_people(layout, self.spec.people, rng, c.child_fraction)
        placed = place_people(self.body, layout, people, camera, c.depth_range, rng, c.closeness)
        if placed is None:
            return "placement"
        output = self.body(torch.stack([p.rotmats for p in placed]),
                           torch.stack([p.shape for p in placed]))
        transl = torch.stack([p.transl for p in placed])
        pelvis_px = project(transl, camera.K)
        if not ((pelvis_px >= 0) & (pelvis_px < torch.tensor([c.width, c.height]))).all():
            return "outside"  # keep every person's centre in the picture
        vertices = output.vertices + transl[:, None]
        if len(placed) > 1 and collision_volume(vertices, self.faces, c.collision_grid).max() > 0:
            return "collision"
        parts = [self.part_tables[int(rng.integers(4))] for _ in placed]
        image, depths = render_scene(vertices, self.faces, parts, camera, rng)
        masks = instance_map(depths)
        visible = torch.stack([(masks == i + 1).sum() for i in range(len(placed))])
        if (visible < c.min_visible_pixels).any():
            return "hidden"
        joints = {name: j + transl[:, None] for name, j in output.joints.items()}
        return camera, placed, image, depths, masks, joints

    def _annotate(self, index: int, layout: str, camera: Camera, people: list[Person],
                  image: np.ndarray, depths: torch.Tensor, masks: torch.Tensor,
                  joints: dict[str, torch.Tensor]) -> dict:
        num_people = len(people)
        split = split_name(self.spec, index)
        kp3d = torch.cat([joints["h36m17"], torch.ones(num_people, 17, 1)], dim=-1)
        return {
            "__key__": f"{self.dataset}-{split}-{index:06d}",
            "image": image,
            "masks": masks.numpy().astype(np.uint8),
            "meta": {
                "dataset": self.dataset, "split": split, "layout": layout,
                "width": camera.size[1], "height": camera.size[0],
                "K": camera.K.tolist(), "num_people": num_people,
                "has_masks": True, "has_kp3d": True, "has_body": True, "body_model": "anny",
                "activities": [p.activity for p in people],
            },
            "boxes": _boxes(depths),
            "kp2d": _keypoints_2d(joints["coco17"], depths, camera),
            "kp3d": kp3d.numpy().astype(np.float32),
            "body": {
                "rotmats": torch.stack([p.rotmats for p in people]).numpy().astype(np.float32),
                "shape": torch.stack([p.shape for p in people]).numpy().astype(np.float32),
                "transl": torch.stack([p.transl for p in people]).numpy().astype(np.float32),
                "has_body": np.ones(num_people, dtype=bool),
            },
        }


def _boxes(depths: torch.Tensor) -> np.ndarray:
    """``[P, 4]`` xyxy pixel boxes around each person's whole rendered silhouette (also
    the parts hidden behind others), so each contains the person's visible mask."""
    boxes = []
    for depth in depths:
        rows, cols = torch.isfinite(depth).nonzero(as_tuple=True)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def _keypoints_2d(points: torch.Tensor, depths: torch.Tensor, camera: Camera) -> np.ndarray:
    """``[P, 17, 3]`` (x, y, visible) from camera-frame joints ``[P, 17, 3]``."""
    xy = project(points, camera.K)
    height, width = camera.size
    col, row = xy[..., 0].floor().long(), xy[..., 1].floor().long()
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    visible = inside.clone()
    for p in range(points.shape[0]):
        for k in range(points.shape[1]):
            if inside[p, k]:
                column = depths[:, row[p, k], col[p, k]].clone()
                column[p] = torch.inf  # self-occlusion does not count
                visible[p, k] = bool(column.min() >= points[p, k, 2])
    return torch.cat([xy, visible[..., None].float()], dim=-1).numpy().astype(np.float32)
