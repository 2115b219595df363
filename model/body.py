"""Body models behind one interface: Anny (the default, no files needed) and SMPL.

Every body model is an ``nn.Module`` with the same contract (DESIGN §4):

- ``forward(rotmats [B, J, 3, 3], shape [B, S]) -> BodyOutput`` in the *body frame*:
  metres, y up, the body facing +z (SMPL's convention), the **body origin at the
  pelvis** (the ``h36m17`` pelvis joint, index 0). ``rotmats[:, 0]`` is the global
  orientation, applied about the pelvis; ``rotmats[:, 1:]`` are local joint rotations
  named by ``rotation_names``, expressed in body-frame axes of the rest pose.
- ``faces [F, 3]`` long, ``num_joints`` J, ``shape_dim`` S.
- ``joint_sets``: ``coco17`` (2D supervision, COCO order), ``h36m17`` (3D evaluation,
  pelvis first) and ``lsp14`` (Procrustes error), each a list of joint names; the
  forward returns one ``[B, K, 3]`` tensor per set.

A person in the camera frame is ``vertices + transl[:, None]``, where ``transl`` is the
camera-frame position of the pelvis. (smplx's ``transl`` is a different point: our
``transl = transl_smplx + pelvis`` of the smplx output without translation.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "BodyOutput",
    "BodyModel",
    "load_body_model",
    "COCO17_NAMES",
    "H36M17_NAMES",
    "LSP14_NAMES",
    "place_in_body_frame",
    "gather_joint_sets",
    "posed_in_camera",
]

COCO17_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
H36M17_NAMES = [
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "spine", "thorax", "nose", "head_top", "left_shoulder",
    "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
]  # fmt: skip
LSP14_NAMES = [
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist", "neck", "head_top",
]  # fmt: skip
JOINT_SETS = {"coco17": COCO17_NAMES, "h36m17": H36M17_NAMES, "lsp14": LSP14_NAMES}


@dataclass
class BodyOutput:
    """Posed bodies in the body frame (metres, y up, pelvis at the origin).

    Attributes:
        vertices: ``[B, V, 3]``.
        joints: joint-set name -> ``[B, K, 3]``.
    """

    vertices: torch.Tensor
    joints: dict[str, torch.Tensor]


class BodyModel(nn.Module):
    """Base class of the body-model adapters. Subclasses set ``name``, ``num_joints``,
    ``shape_dim``, ``rotation_names``, register the ``faces`` buffer and implement
    ``_pose(rotmats, shape) -> (vertices, joint_sets)`` in the body frame with the
    global rotation left out (identity); this class validates inputs, moves the pelvis
    to the origin and applies the global orientation."""

    name: str
    num_joints: int
    shape_dim: int
    rotation_names: list[str]
    faces: torch.Tensor
    joint_sets: dict[str, list[str]] = JOINT_SETS
    h36m_joint_source: str  # where the h36m17 joints come from (reported with Table 1)

    def mean_shape(self) -> torch.Tensor:
        """``[S]``: the shape parameters of the average body."""
        raise NotImplementedError

    def _pose(
        self, rotmats: torch.Tensor, shape: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, rotmats: torch.Tensor, shape: torch.Tensor) -> BodyOutput:
        """Pose bodies.

        Args:
            rotmats: ``[B, J, 3, 3]`` global orientation then local joint rotations.
            shape: ``[B, S]`` shape parameters.
        Returns:
            :class:`BodyOutput` in the body frame.
        """
        batch = rotmats.shape[0]
        if rotmats.shape[1:] != (self.num_joints, 3, 3):
            raise ValueError(f"{self.name}: rotmats must be [B, {self.num_joints}, 3, 3], "
                             f"got {list(rotmats.shape)}")
        if shape.shape != (batch, self.shape_dim):
            raise ValueError(f"{self.name}: shape must be [{batch}, {self.shape_dim}], "
                             f"got {list(shape.shape)}")
        if batch == 0:  # no one to pose (an image without detections)
            empty = rotmats.new_zeros
            return BodyOutput(empty(0, int(self.faces.max()) + 1, 3),
                              {name: empty(0, len(names), 3)
                               for name, names in self.joint_sets.items()})
        vertices, joints = self._pose(rotmats, shape)
        return place_in_body_frame(vertices, joints, rotmats[:, 0], joints["h36m17"][:, 0])


def gather_joint_sets(points: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Named points ``{name: [B, 3]}`` -> ``{set name: [B, K, 3]}`` for every joint set."""
    return {
        set_name: torch.stack([points[name] for name in names], dim=1)
        for set_name, names in JOINT_SETS.items()
    }


def place_in_body_frame(
    vertices: torch.Tensor,
    joints: dict[str, torch.Tensor],
    global_rotation: torch.Tensor,
    pelvis: torch.Tensor,
) -> BodyOutput:
    """Move ``pelvis [B, 3]`` to the origin, then rotate by ``global_rotation [B, 3, 3]``.

    Rotating about any centre and then re-centring on the pelvis gives the same result,
    so adapters may pose with the global rotation at identity and call this."""

    def place(points: torch.Tensor) -> torch.Tensor:  # [B, N, 3]
        return torch.einsum("bij,bnj->bni", global_rotation, points - pelvis[:, None])

    return BodyOutput(place(vertices), {k: place(v) for k, v in joints.items()})


def posed_in_camera(body: BodyModel, rotmats: torch.Tensor, shape: torch.Tensor,
                    transl: torch.Tensor) -> BodyOutput:
    """People in the camera frame: ``rotmats [P, J, 3, 3]``, ``shape [P, S]`` and the
    pelvis translations ``transl [P, 3]`` (detections, predictions or annotations)
    -> vertices ``[P, V, 3]`` and every joint set ``[P, K, 3]``, camera frame, metres."""
    output = body(rotmats, shape)
    return BodyOutput(output.vertices + transl[:, None],
                      {name: joints + transl[:, None] for name, joints in output.joints.items()})


def load_body_model(kind: str = "anny", **options) -> BodyModel:
    """Build a body model.

    Args:
        kind: ``"anny"`` (default; ships with its assets, no files needed) or ``"smpl"``
            (the paper's model through smplx; needs the licensed model file).
        options: for ``anny``: none required (see :class:`model.anny_body.AnnyBody`);
            for ``smpl``: ``model_path`` (a ``SMPL_NEUTRAL.pkl``/``.npz`` file or a
            folder holding one) and optionally ``h36m_regressor`` (``J_regressor_h36m.npy``).
    """
    if kind == "anny":
        from model.anny_body import AnnyBody

        return AnnyBody(**options)
    if kind == "smpl":
        from model.smpl_body import SMPLBody

        return SMPLBody(**options)
    raise ValueError(f"unknown body model kind {kind!r}: expected 'anny' or 'smpl'")
