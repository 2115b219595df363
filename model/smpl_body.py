"""SMPL adapter: the paper's body model through ``smplx.SMPLLayer``.

The SMPL model file is licensed (register at https://smpl.is.tue.mpg.de and download
"SMPL for Python"; the neutral model from SMPLify, renamed ``SMPL_NEUTRAL.pkl``) and is
never shipped or downloaded by crmh: the user points ``body_model.model_path`` at it.

Joints:
- ``coco17``: smplx's 45 joints (24 skeleton joints + vertex-picked nose, eyes, ears).
  SMPL's hip joints sit deeper than COCO's annotated hips; the official code used the
  same kind of mix (``J_regressor_extra``), which is not public.
- ``h36m17``: with ``h36m_regressor`` (SPIN's ``J_regressor_h36m.npy``, 17 x 6890), the
  official evaluation joints. That file's rows put the *left* leg at 1-3 and the right
  leg at 4-6 (SPIN's ``H36M_TO_J17`` and the official ``h36m_to_MPI`` both read them
  so), while ``h36m17`` names 1-3 the right leg: the rows are reordered by
  :data:`SPIN_H36M_ROWS`. Without the file, an approximation from skeleton joints
  (pelvis, hips, knees, ankles, spine2 as spine, neck as thorax, shoulders, elbows,
  wrists), the nose vertex, and vertex 411 as the top of the head.
- ``lsp14``: skeleton limb joints, neck joint 12 as neck, vertex 411 as head top.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from model.body import BodyModel, gather_joint_sets

__all__ = ["SMPLBody", "SMPL_JOINT_NAMES", "SPIN_H36M_ROWS", "load_smpl_arrays"]

SMPL_JOINT_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
]  # fmt: skip
# smplx appends vertex-picked joints after the 24 skeleton joints, in this order.
_SMPLX_EXTRA_NAMES = ["nose", "right_eye", "left_eye", "right_ear", "left_ear"]
HEAD_TOP_VERTEX = 411
# Row of SPIN's J_regressor_h36m.npy for each h36m17 joint (its legs are swapped).
SPIN_H36M_ROWS = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
SMPL_NUM_VERTICES = 6890
_REQUIRED = {
    "v_template": (SMPL_NUM_VERTICES, 3),
    "shapedirs": (SMPL_NUM_VERTICES, 3, None),
    "posedirs": (SMPL_NUM_VERTICES, 3, 207),
    "J_regressor": (24, SMPL_NUM_VERTICES),
    "weights": (SMPL_NUM_VERTICES, 24),
    "kintree_table": (2, 24),
    "f": (None, 3),
}
_WHERE = ("Expected the SMPL model file (e.g. SMPL_NEUTRAL.pkl, from SMPLify's "
          "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, https://smpl.is.tue.mpg.de, "
          "registration required)")


def _read_model_file(path: Path) -> dict:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return dict(data)
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except ModuleNotFoundError as error:
        raise RuntimeError(
            f"{path}: this SMPL file embeds objects of the '{error.name}' package. Install "
            "the smpl extra (pip install -e '.[smpl]') or convert the file once with "
            "smplx's tools/clean_ch.py."
        ) from error
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(
            f"{path} is not a readable SMPL model file ({error}). {_WHERE}."
        ) from error


def _dense(array) -> np.ndarray:
    if hasattr(array, "toarray"):  # scipy.sparse J_regressor in the original files
        array = array.toarray()
    return np.asarray(array)


def load_smpl_arrays(model_path: str | Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Find, read and validate an SMPL model file.

    Args:
        model_path: a ``.pkl``/``.npz`` file, or a folder holding ``SMPL_NEUTRAL.pkl``
            (directly or under ``smpl/``).
    Returns:
        the file's path and its arrays (dense numpy).
    Raises:
        FileNotFoundError / ValueError naming the expected file.
    """
    path = Path(model_path).expanduser()
    if path.is_dir():
        candidates = [path / "SMPL_NEUTRAL.pkl", path / "smpl" / "SMPL_NEUTRAL.pkl"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise FileNotFoundError(f"no SMPL_NEUTRAL.pkl in {path} or {path / 'smpl'}. {_WHERE}.")
        path = found[0]
    elif not path.is_file():
        raise FileNotFoundError(f"SMPL model file {path} does not exist. {_WHERE}.")
    raw = _read_model_file(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a {type(raw).__name__}, not an SMPL model dict. {_WHERE}.")
    arrays = {}
    for key, expected in _REQUIRED.items():
        if key not in raw:
            raise ValueError(f"{path} has no '{key}' entry, so it is not an SMPL model "
                             f"(keys: {sorted(raw)[:12]}). {_WHERE}.")
        array = _dense(raw[key])
        if array.ndim != len(expected) or any(
            e is not None and e != a for e, a in zip(expected, array.shape, strict=False)
        ):
            raise ValueError(f"{path}: '{key}' has shape {list(array.shape)}, expected "
                             f"{[e if e is not None else '*' for e in expected]}. {_WHERE}.")
        arrays[key] = array
    return path, arrays


class SMPLBody(BodyModel):
    """SMPL with 24 rotations (global + 23 body joints) and ``num_betas`` shape values.

    Args:
        model_path: the SMPL model file or a folder holding ``SMPL_NEUTRAL.pkl``.
        h36m_regressor: optional ``J_regressor_h36m.npy`` (17 x 6890) for the
            official H36M evaluation joints.
        num_betas: shape coefficients used (the paper: 10).
    """

    name = "smpl"

    def __init__(self, model_path: str | Path | None = None,
                 h36m_regressor: str | Path | None = None, num_betas: int = 10) -> None:
        super().__init__()
        if model_path is None:
            raise FileNotFoundError(f"body_model.model_path is not set. {_WHERE}; set "
                                    "body_model.model_path in params.yaml to its location.")
        import smplx
        from smplx.utils import Struct

        path, arrays = load_smpl_arrays(model_path)
        self.smpl = smplx.SMPLLayer(model_path=str(path), data_struct=Struct(**arrays),
                                    num_betas=num_betas)
        self.rotation_names = ["global", *SMPL_JOINT_NAMES[1:]]
        self.num_joints = len(self.rotation_names)
        self.shape_dim = num_betas
        self.register_buffer("faces", torch.as_tensor(arrays["f"].astype(np.int64)),
                             persistent=False)
        regressor = None
        if h36m_regressor is not None:
            regressor = torch.as_tensor(np.load(h36m_regressor), dtype=torch.float32)
            if regressor.shape != (17, SMPL_NUM_VERTICES):
                raise ValueError(f"{h36m_regressor}: expected a 17 x {SMPL_NUM_VERTICES} "
                                 f"H36M joint regressor, got {list(regressor.shape)}")
            regressor = regressor[SPIN_H36M_ROWS]
        self.register_buffer("h36m_regressor", regressor, persistent=False)
        self.h36m_joint_source = ("J_regressor_h36m" if regressor is not None
                                  else "SMPL skeleton joints (no J_regressor_h36m given)")

    def mean_shape(self) -> torch.Tensor:
        """Zero betas: SMPL's mean shape."""
        return torch.zeros(self.shape_dim, dtype=self.smpl.v_template.dtype,
                           device=self.smpl.v_template.device)

    def _pose(
        self, rotmats: torch.Tensor, shape: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        identity = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
        output = self.smpl(betas=shape, global_orient=identity.expand(len(rotmats), 1, 3, 3),
                           body_pose=rotmats[:, 1:], pose2rot=False)
        vertices, joints = output.vertices, output.joints  # [B, 6890, 3], [B, 45, 3]
        names = SMPL_JOINT_NAMES + _SMPLX_EXTRA_NAMES
        points = {name: joints[:, i] for i, name in enumerate(names)}
        points["spine"] = points["spine2"]
        points["thorax"] = points["neck"]
        points["head_top"] = vertices[:, HEAD_TOP_VERTEX]
        joints = gather_joint_sets(points)
        if self.h36m_regressor is not None:
            joints["h36m17"] = torch.einsum("kv,bvc->bkc", self.h36m_regressor, vertices)
        return vertices, joints
