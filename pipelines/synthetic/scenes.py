"""Synthetic scene layout: a camera over a ground plane and people standing on it.

World frame: metres, y up, ground plane y = 0. The camera stands at height h and looks
along -z. It is pitched and rolled slightly. Its frame is OpenCV's, so
``p_cam = R (p_world - (0, h, 0))`` with ``R = R_tilt diag(1, -1, -1)``. A body with
yaw 0 faces the camera.

Layouts place people on the plane. ``scatter``, ``cluster``, ``queue`` and ``circle``
serve the generic splits. ``haggling``, ``mafia``, ``ultimatum`` and ``pizza`` are
circles of people facing each other, sized and posed like the CMU Panoptic sequences of
the same names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from model.anny_body import AnnyBody
from model.camera import intrinsics_matrix
from pipelines.synthetic.poses import sample_phenotype, sample_pose

__all__ = ["Camera", "Person", "LAYOUTS", "sample_camera", "layout_people", "place_people"]

# layout -> (people range or None for the split's range, activities and their weights)
LAYOUTS = {
    "scatter": (None, {"stand": 3, "walk": 3, "gesture": 2, "sit": 1, "crouch": 1}),
    "cluster": (None, {"stand": 3, "walk": 1, "gesture": 3, "sit": 1, "crouch": 1}),
    "queue": (None, {"stand": 3, "walk": 3, "gesture": 1}),
    "circle": (None, {"stand": 3, "gesture": 3, "sit": 1}),
    "haggling": ((3, 3), {"stand": 2, "gesture": 3}),
    "mafia": ((6, 8), {"stand": 2, "gesture": 2, "sit": 2, "crouch": 1}),
    "ultimatum": ((3, 5), {"stand": 3, "gesture": 2, "walk": 1}),
    "pizza": ((4, 8), {"stand": 3, "gesture": 3}),
}
_CIRCLE_RADIUS = {"circle": (0.7, 1.4), "haggling": (0.7, 1.0), "mafia": (1.4, 2.0),
                  "ultimatum": (0.9, 1.4), "pizza": (0.9, 1.3)}


@dataclass
class Camera:
    """Pinhole camera: intrinsics ``K [3, 3]``, ``rotation [3, 3]`` (world -> camera),
    ``height`` (m) above the ground, image ``size`` (H, W)."""

    K: torch.Tensor
    rotation: torch.Tensor
    height: float
    size: tuple[int, int]

    def to_camera(self, points_world: torch.Tensor) -> torch.Tensor:
        """``[..., 3]`` world points -> camera frame."""
        centre = torch.tensor([0.0, self.height, 0.0])
        return (points_world - centre) @ self.rotation.T

    def half_fov_tan(self) -> float:
        return float(self.size[1] / 2 / self.K[0, 0])


@dataclass
class Person:
    """One synthetic person: Anny rotations ``[J, 3, 3]`` in the camera frame, phenotype
    ``[6]``, camera-frame pelvis ``transl [3]``, and the activity it was posed for."""

    rotmats: torch.Tensor
    shape: torch.Tensor
    transl: torch.Tensor
    activity: str


def _rotation(axis: int, degrees: float) -> torch.Tensor:
    from ops.geometry import axis_angle_to_matrix

    vector = torch.zeros(3)
    vector[axis] = math.radians(degrees)
    return axis_angle_to_matrix(vector)


def sample_camera(rng: np.random.Generator, size: tuple[int, int], focal: float,
                  height_range: tuple[float, float], pitch_deg: float,
                  roll_deg: float) -> Camera:
    """A camera at a random height, with a small random pitch and roll."""
    height, width = size
    K = intrinsics_matrix(focal, width, height)
    tilt = (_rotation(2, rng.uniform(-roll_deg, roll_deg))
            @ _rotation(0, rng.uniform(-pitch_deg, pitch_deg)))
    rotation = tilt @ torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    return Camera(K, rotation, float(rng.uniform(*height_range)), size)


def layout_people(layout: str, people_range: tuple[int, int], rng: np.random.Generator,
                  child_fraction: float) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """How many people a scene has, and each one's (activity, local pose, phenotype)."""
    fixed, activities = LAYOUTS[layout]
    low, high = fixed if fixed is not None else people_range
    low, high = max(low, people_range[0]), min(high, people_range[1])
    if low > high:
        raise ValueError(f"layout {layout!r} needs {fixed} people, the split allows "
                         f"{people_range}")
    names, weights = zip(*activities.items(), strict=True)
    probabilities = np.asarray(weights, dtype=float) / sum(weights)
    people = []
    for _ in range(int(rng.integers(low, high + 1))):
        activity = str(rng.choice(names, p=probabilities))
        people.append((activity, sample_pose(activity, rng), sample_phenotype(rng, child_fraction)))
    return people


def _circle(layout: str, radii: np.ndarray, closeness: float, camera: Camera,
            depth_range: tuple[float, float], rng: np.random.Generator):
    """People on a circle, facing its centre; the circle grows to fit them all."""
    count = len(radii)
    needed = (1 - closeness) * 2 * radii.sum() / (2 * np.pi) * 1.05
    radius = max(rng.uniform(*_CIRCLE_RADIUS[layout]), needed)
    near, far = depth_range
    depth = rng.uniform(near + radius + 0.5, max(near + radius + 0.6, min(far - radius, 7.0)))
    centre = np.array([rng.uniform(-0.3, 0.3) * camera.half_fov_tan() * depth, -depth])
    angles = rng.uniform(0, 2 * np.pi) + np.arange(count) * 2 * np.pi / count
    offsets = radius * np.stack([np.sin(angles), np.cos(angles)], 1)
    yaws = np.degrees(np.arctan2(-offsets[:, 0], -offsets[:, 1])) + rng.normal(0, 10, count)
    return centre + offsets, yaws


def _one_by_one(layout: str, radii: np.ndarray, closeness: float, camera: Camera,
                depth_range: tuple[float, float], rng: np.random.Generator, tries: int = 30):
    """Scatter, cluster or queue: each person takes the first of ``tries`` candidate
    spots whose footprint keeps clear of the people already placed."""
    count = len(radii)
    near, far = depth_range
    spread = camera.half_fov_tan() * 0.8
    depth = rng.uniform(near + 1.0, min(far - 1.0, near + 5.0))
    centre = np.array([rng.uniform(-0.5, 0.5) * spread * depth, -depth])
    positions, yaws = np.zeros((count, 2)), np.zeros(count)
    for i in range(count):
        for _ in range(tries):
            if layout == "scatter":
                d = rng.uniform(near + 0.5, far)
                spot, yaw = np.array([rng.uniform(-1, 1) * spread * d, -d]), rng.uniform(-120, 120)
            elif layout == "queue":  # one behind the other: heavy overlap in the image
                spot = centre + [rng.normal(0, 0.3), -rng.uniform(0, 0.9) * (i + 1)]
                yaw = rng.uniform(-30, 30)
            else:  # cluster: a loose group that widens with its size
                spot = centre + rng.normal(0, 0.35 * np.sqrt(count), 2) * [1.0, 1.5]
                yaw = rng.uniform(-90, 90)
            gaps = np.linalg.norm(positions[:i] - spot, axis=1)
            if (gaps >= (1 - closeness) * (radii[:i] + radii[i])).all():
                positions[i], yaws[i] = spot, yaw
                break
        else:
            return None
    return positions, yaws


@torch.no_grad()
def place_people(body: AnnyBody, layout: str,
                 people: list[tuple[str, torch.Tensor, torch.Tensor]], camera: Camera,
                 depth_range: tuple[float, float], rng: np.random.Generator,
                 closeness: float) -> list[Person] | None:
    """Stand posed people on the ground plane in ``layout``.

    Each person's footprint is a disc around the pelvis that covers its posed mesh (its
    radius does not depend on the yaw). Two discs may overlap by at most the fraction
    ``closeness`` of the sum of their radii, so people come close without being placed
    inside each other; the caller still checks the meshes for collisions.

    Returns:
        the people, or ``None`` when this draw has no valid placement (the caller draws
        a new scene).
    """
    count = len(people)
    rotmats = torch.eye(3).repeat(count, body.num_joints, 1, 1)
    rotmats[:, 1:] = torch.stack([pose for _, pose, _ in people])
    shapes = torch.stack([shape for _, _, shape in people])
    vertices = body(rotmats, shapes).vertices  # yaw 0, pelvis at the origin
    radii = vertices[..., [0, 2]].norm(dim=-1).amax(dim=1).numpy()
    place = _circle if layout in _CIRCLE_RADIUS else _one_by_one
    placement = place(layout, radii, closeness, camera, depth_range, rng)
    if placement is None:
        return None
    positions, yaws = placement
    yaw_rotations = torch.stack([_rotation(1, float(yaw)) for yaw in yaws])
    pelvis_height = -(vertices @ yaw_rotations.transpose(1, 2))[..., 1].amin(dim=1)
    pelvis_world = torch.stack([torch.tensor(positions[:, 0], dtype=torch.float32), pelvis_height,
                                torch.tensor(positions[:, 1], dtype=torch.float32)], 1)
    transl = camera.to_camera(pelvis_world)  # [P, 3]
    if not ((transl[:, 2] >= depth_range[0]) & (transl[:, 2] <= depth_range[1])).all():
        return None
    rotmats[:, 0] = camera.rotation @ yaw_rotations  # global orientation in the camera frame
    return [Person(rotmats[i], shapes[i], transl[i], people[i][0]) for i in range(count)]
