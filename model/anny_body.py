"""Anny adapter: the default body model (PyPI ``anny``, Apache-2.0 code, CC0 assets).

Anny's native frame is z up with the body facing -y; pose is one 4x4 transform per bone
of a 104-bone rig ("local-ref": local rotations in world-aligned axes); shape is six
phenotype values in [0, 1] (gender, age, muscle, weight, height, proportions).

This adapter:
1. articulates the 19 body bones of :data:`ARTICULATED_BONES` (fingers, toes, eyes,
   twist bones and the remaining spine/neck bones stay at rest), taking their local
   rotations in body-frame axes and converting them to Anny's axes;
2. clamps the phenotypes to [0, 1] (Anny's valid range; the network bounds its output
   with a sigmoid, so the clamp only guards hand-written inputs);
3. converts the output to the body frame (y up, facing +z) and names the points the
   joint sets need: the 17 COCO points from Anny's shipped COCO vertex regressor, the
   pelvis as the mid-point of the hips, posed bone heads for spine (``spine02``) and
   thorax/neck (``neck01``), and the top-of-head vertex of the template.
"""

from __future__ import annotations

import torch

from model.body import COCO17_NAMES, BodyModel, gather_joint_sets

__all__ = ["AnnyBody", "ARTICULATED_BONES", "ANNY_TO_BODY"]

# Rotations 1..19 (rotation 0 is the global orientation), SMPL-like in spirit.
ARTICULATED_BONES = [
    "spine05", "spine03", "spine01", "neck01", "head",
    "upperleg01.L", "lowerleg01.L", "foot.L",
    "upperleg01.R", "lowerleg01.R", "foot.R",
    "clavicle.L", "upperarm01.L", "lowerarm01.L", "wrist.L",
    "clavicle.R", "upperarm01.R", "lowerarm01.R", "wrist.R",
]  # fmt: skip

# Body-frame coordinates of Anny's axes: x stays, Anny z (up) -> y, Anny -y (front) -> z.
ANNY_TO_BODY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

_SPINE_BONE = "spine02"  # its head sits half-way between hips and neck base, like H36M's spine
_THORAX_BONE = "neck01"  # base of the neck: H36M thorax and LSP neck


def _quiet_warp() -> None:
    """Anny initialises NVIDIA Warp, which prints a banner; keep the logs readable."""
    try:
        import warp

        warp.config.quiet = True
        warp.config.log_level = warp.LOG_WARNING
    except ImportError:  # pragma: no cover - warp is a dependency of anny
        pass


class AnnyBody(BodyModel):
    """Anny with 20 rotations (global + 19 bones) and 6 phenotype shape values.

    Args:
        dtype: floating point type of the model (Anny defaults to float64; we use float32).
    """

    name = "anny"
    h36m_joint_source = "Anny's own joints (COCO regressor, bone heads, head-top vertex)"

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        _quiet_warp()
        import anny

        self.anny = anny.Anny().to(dtype=dtype)
        self.keypoints = anny.KeypointsRegressor.coco(self.anny, labels=COCO17_NAMES)
        self.phenotype_names = list(self.anny.phenotype_labels)
        self.rotation_names = ["global", *ARTICULATED_BONES]
        self.num_joints = len(self.rotation_names)
        self.shape_dim = len(self.phenotype_names)
        labels = list(self.anny.bone_labels)
        self.register_buffer("faces", self.anny.faces.long().clone(), persistent=False)
        self.register_buffer(
            "bone_index", torch.tensor([labels.index(b) for b in ARTICULATED_BONES]),
            persistent=False,
        )
        self._spine, self._thorax = labels.index(_SPINE_BONE), labels.index(_THORAX_BONE)
        self.register_buffer("axes", ANNY_TO_BODY.to(dtype), persistent=False)
        self.head_top_vertex = int(self.anny.template_vertices[:, 2].argmax())

    def mean_shape(self) -> torch.Tensor:
        """All phenotypes at 0.5: Anny's average adult."""
        return torch.full((self.shape_dim,), 0.5, dtype=self.axes.dtype, device=self.axes.device)

    def _anny_pose(self, rotmats: torch.Tensor) -> torch.Tensor:
        """``[B, J, 3, 3]`` body-frame local rotations -> Anny ``[B, 104, 4, 4]`` deltas
        (root and unlisted bones at identity)."""
        batch = rotmats.shape[0]
        local = self.axes.T @ rotmats[:, 1:] @ self.axes  # body axes -> Anny axes
        local = torch.nn.functional.pad(local, (0, 1, 0, 1))  # [B, J-1, 4, 4]
        local[..., 3, 3] = 1.0
        identity = torch.eye(4, dtype=rotmats.dtype, device=rotmats.device)
        pose = identity.repeat(batch, self.anny.bone_count, 1, 1)
        return pose.index_copy(1, self.bone_index, local)

    def _pose(
        self, rotmats: torch.Tensor, shape: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        output = self.anny(
            pose_parameters=self._anny_pose(rotmats),
            phenotype_kwargs=shape.clamp(0.0, 1.0),
        )
        coco = self.keypoints(output)  # [B, 17, 3], Anny frame
        heads = output["bone_poses"][:, :, :3, 3]  # [B, 104, 3], posed bone heads
        vertices = output["vertices"]
        points = {name: coco[:, i] for i, name in enumerate(COCO17_NAMES)}
        points["pelvis"] = (points["left_hip"] + points["right_hip"]) / 2
        points["spine"] = heads[:, self._spine]
        points["thorax"] = points["neck"] = heads[:, self._thorax]
        points["head_top"] = vertices[:, self.head_top_vertex]
        to_body = self.axes.T  # row vectors: p_body = p_anny @ A^T
        return vertices @ to_body, gather_joint_sets({k: v @ to_body for k, v in points.items()})

