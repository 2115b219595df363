"""Plausible random poses and body shapes for the synthetic people (Anny).

A pose is chosen from a few activities (standing, walking, gesturing, sitting on the
ground, crouching). Each activity fixes typical angles per joint; on top of those,
Gaussian variation is added, and every angle is clamped to anatomical limits. Angles
are in degrees about the body-frame axes of the rest pose, the convention of
:mod:`model.body`:
- x: flexion. A negative angle swings the thigh or the upper arm forward. A positive
  angle bends the knee, and bends the spine, neck or head forward. A negative angle
  bends the elbow.
- y: twist about the vertical axis.
- z: sideways. For the left side a positive angle raises the arm or leg outwards. For
  the right side the sign is mirrored, and this module mirrors it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from model.anny_body import ARTICULATED_BONES
from ops.geometry import axis_angle_to_matrix

__all__ = ["ACTIVITIES", "sample_pose", "sample_phenotype", "JOINT_LIMITS", "SyntheticPrior"]

ACTIVITIES = ("stand", "walk", "gesture", "sit", "crouch")

# (x, y, z) limits in degrees for the left side and the midline; right side mirrors y/z.
JOINT_LIMITS = {
    "spine05": ((-15, 45), (-20, 20), (-15, 15)),
    "spine03": ((-15, 30), (-20, 20), (-15, 15)),
    "spine01": ((-15, 30), (-20, 20), (-15, 15)),
    "neck01": ((-20, 30), (-40, 40), (-20, 20)),
    "head": ((-30, 35), (-45, 45), (-20, 20)),
    "upperleg01": ((-120, 30), (-30, 30), (-15, 40)),
    "lowerleg01": ((0, 140), (-10, 10), (-5, 5)),
    "foot": ((-35, 30), (-15, 15), (-15, 15)),
    "clavicle": ((-15, 15), (-10, 10), (-10, 25)),
    "upperarm01": ((-150, 45), (-60, 60), (-60, 100)),
    "lowerarm01": ((-140, 0), (-40, 40), (-10, 10)),
    "wrist": ((-50, 50), (-30, 30), (-30, 30)),
}

# Typical angles per activity (left side; omitted joints are 0). Arms hang from the rest
# A-pose when the upper arm's z is about -35.
_ARMS_DOWN = {"upperarm01": (0, 0, -35), "lowerarm01": (-10, 0, 0)}
_BASE = {
    "stand": {**_ARMS_DOWN},
    "walk": {**_ARMS_DOWN},  # legs and arms swing with a random phase, see _walk
    "gesture": {"upperarm01": (-60, 0, 10), "lowerarm01": (-70, 0, 0)},
    "sit": {"upperleg01": (-88, 0, 8), "lowerleg01": (15, 0, 0), "spine05": (10, 0, 0),
            "upperarm01": (-20, 0, -25), "lowerarm01": (-30, 0, 0)},
    "crouch": {"upperleg01": (-110, 0, 12), "lowerleg01": (125, 0, 0), "foot": (-20, 0, 0),
               "spine05": (30, 0, 0), "upperarm01": (-40, 0, -20), "lowerarm01": (-60, 0, 0)},
}
_SPREAD = {"stand": 6.0, "walk": 6.0, "gesture": 15.0, "sit": 8.0, "crouch": 6.0}


def _side_and_joint(bone: str) -> tuple[str, str]:
    if bone.endswith((".L", ".R")):
        return bone[-1], bone[:-2]
    return "", bone


def _walk(rng: np.random.Generator) -> dict[str, tuple[float, float, float]]:
    """Left/right angles of a walking phase: legs and arms swing in opposition."""
    swing = math.sin(rng.uniform(0, 2 * math.pi)) * rng.uniform(15, 30)
    angles = {}
    for side, sign in (("L", 1.0), ("R", -1.0)):
        leg = -sign * swing  # one thigh forward, the other back
        angles[f"upperleg01.{side}"] = (leg, 0, 3)
        angles[f"lowerleg01.{side}"] = (max(0.0, -leg) * 1.2 + 5, 0, 0)
        angles[f"upperarm01.{side}"] = (sign * swing * 0.8, 0, -35)
        angles[f"lowerarm01.{side}"] = (-15, 0, 0)
    return angles


def sample_angles(activity: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Degrees ``(x, y, z)`` per articulated bone (body-frame convention, right side
    already mirrored), within :data:`JOINT_LIMITS`."""
    if activity not in ACTIVITIES:
        raise ValueError(f"unknown activity {activity!r}: expected one of {ACTIVITIES}")
    special = _walk(rng) if activity == "walk" else {}
    one_arm = activity == "gesture" and rng.random() < 0.5
    angles = {}
    for bone in ARTICULATED_BONES:
        side, joint = _side_and_joint(bone)
        base = special.get(bone, _BASE[activity].get(joint, (0.0, 0.0, 0.0)))
        if one_arm and side == "R" and joint in _ARMS_DOWN:
            base = _ARMS_DOWN[joint]  # gesture with the left arm only
        value = np.asarray(base, dtype=float) + rng.normal(0.0, _SPREAD[activity], 3)
        limits = np.asarray(JOINT_LIMITS[joint], dtype=float)
        value = np.clip(value, limits[:, 0], limits[:, 1])
        if side == "R":
            value = value * np.array([1.0, -1.0, -1.0])  # mirror twist and sideways
        angles[bone] = value
    return angles


def euler_to_matrix(degrees: np.ndarray) -> torch.Tensor:
    """``R = R_z R_y R_x`` for angles ``[..., 3]`` in degrees (x applied first)."""
    radians = torch.as_tensor(np.radians(degrees), dtype=torch.float32)
    eye = torch.eye(3)
    rx, ry, rz = (axis_angle_to_matrix(eye[k] * radians[..., k:k + 1]) for k in range(3))
    return rz @ ry @ rx


def sample_pose(activity: str, rng: np.random.Generator) -> torch.Tensor:
    """Local rotations ``[J - 1, 3, 3]`` of the articulated bones (no global rotation)."""
    angles = sample_angles(activity, rng)
    return euler_to_matrix(np.stack([angles[bone] for bone in ARTICULATED_BONES]))


def sample_phenotype(rng: np.random.Generator, child_fraction: float) -> torch.Tensor:
    """Anny phenotypes ``[6]`` (gender, age, muscle, weight, height, proportions):
    adults (about 1.5-1.9 m) or, with probability ``child_fraction``, children
    (about 1.0-1.45 m)."""
    age = rng.uniform(0.15, 0.38) if rng.random() < child_fraction else rng.uniform(0.5, 0.9)
    values = [rng.uniform(0, 1), age, rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.75),
              rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.6)]
    return torch.tensor(values, dtype=torch.float32)


class SyntheticPrior:
    """"Real" samples for the adversarial prior, drawn from the same pose and shape
    distribution as the synthetic people: ``prior(n) -> (rotmats [n, J, 3, 3], shape [n, 6])``
    (the global rotation is identity; the discriminator ignores it)."""

    def __init__(self, seed: int, child_fraction: float = 0.2) -> None:
        self.rng = np.random.default_rng(seed)
        self.child_fraction = child_fraction

    def __call__(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        activities = self.rng.choice(ACTIVITIES, size=count)
        # the angles drawn as sample_pose draws them, turned into matrices in one batch
        # (one call per pose was a twentieth of a CPU training step)
        angles = [sample_angles(str(a), self.rng) for a in activities]
        local = euler_to_matrix(np.stack([[a[bone] for bone in ARTICULATED_BONES]
                                          for a in angles]))
        rotmats = torch.cat([torch.eye(3).expand(count, 1, 3, 3), local], dim=1)
        shape = torch.stack([sample_phenotype(self.rng, self.child_fraction) for _ in range(count)])
        return rotmats, shape
