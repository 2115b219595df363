"""SPIN-style ``.npz`` annotation files: one person per frame (Human3.6M, MPI-INF-3DHP).

Arrays (``imgname`` the image path, ``part [N, J, 3]`` 2D pixels + confidence,
``S [N, J, 4]`` 3D camera-frame metres + confidence, optional ``pose [N, 72]`` and
``shape [N, 10]`` SMPL parameters with ``has_smpl [N]``; ``center``/``scale`` are not
needed). ``J`` is 24 (SPIN's joints) or, for MPI-INF-3DHP files converted by mmpose, 17
(the MPI order). The file is opened with ``allow_pickle=False``: a file that needs
unpickling is refused with a message.

Intrinsics come from a cameras JSON (``intrinsics`` option: ``{<camera>: {f, c}}``, the
format of the fixtures' converted camera files) or, without one, are solved per camera
from the file's own 2D-3D pairs (every frame of that camera) and the fit's error is
recorded. The 2D points and principal points are pixel indices: 0.5 is added to both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ops.geometry import axis_angle_to_matrix
from pipelines.readers.base import (
    MIN_BOX_POINTS,
    Reader,
    ReaderOptions,
    Record,
    SourceError,
    Tally,
    load_json,
)
from pipelines.readers.calibration import solve_intrinsics
from pipelines.readers.joints import convert

__all__ = ["SpinNpzOptions", "SpinNpzReader"]


@dataclass(frozen=True)
class SpinNpzOptions(ReaderOptions):
    annotations: str = ""  # the .npz file, relative to the root (required)
    intrinsics: str | None = None  # a cameras JSON relative to the root; None: solve
    # A protocol's frames (Human3.6M protocol 2: S9 and S11, camera 60457274, every 5th
    # frame); None / 1 keeps every frame of the file.
    subjects: tuple[str, ...] | None = None
    cameras: tuple[str, ...] | None = None  # camera ids ("60457274"; MPI-INF-3DHP: "0")
    frame_step: int = 1  # keep frames whose 1-based number n has (n - 1) % step == 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.annotations:
            raise ValueError("needs 'annotations': the .npz file, relative to the root")


class SpinNpzReader(Reader):
    """Base of the H36M and MPI-INF-3DHP readers; subclasses say which joint lists their
    files may use and how an image name names its camera."""

    options_type = SpinNpzOptions
    pixel_offset = 0.5
    layouts: dict[int, str] = {24: "spin24"}  # joints per person -> joint list

    def camera(self, imgname: str) -> dict[str, str]:
        """``{"camera": key, ...}`` meta fields parsed from an image name; the key
        matches the cameras JSON."""
        raise NotImplementedError

    def __init__(self, root: Path, dataset: str, options: ReaderOptions, body_kind: str) -> None:
        super().__init__(root, dataset, options, body_kind)
        self.annotation_file = self.require(root / options.annotations, "the annotation .npz")
        arrays = _load_npz(self.annotation_file)
        self.names = [str(name) for name in arrays["imgname"]]
        self.part, self.S = arrays["part"], arrays["S"]
        self.layout = self.layouts.get(self.part.shape[1])
        if self.layout is None or self.S.shape[1] != self.part.shape[1]:
            raise SourceError(f"{self.annotation_file}: part/S have {self.part.shape[1]} and "
                              f"{self.S.shape[1]} joints; expected the same, one of "
                              f"{sorted(self.layouts)}")
        self.cameras = [self.camera(name) for name in self.names]
        self.selected = [i for i in range(len(self.names)) if self._in_protocol(i)]
        self.K = self._intrinsics()
        self.body = self._body(arrays) if body_kind == "smpl" else None

    def _in_protocol(self, index: int) -> bool:
        """Whether frame ``index`` is one of the configured subjects, cameras and steps."""
        fields, options = self.cameras[index], self.options
        if options.subjects is not None and fields.get("subject") not in options.subjects:
            return False
        if options.cameras is not None and fields.get("camera_id") not in options.cameras:
            return False
        return (fields.get("frame", 1) - 1) % options.frame_step == 0

    def __len__(self) -> int:
        return self.limited(len(self.selected))

    def input_files(self) -> list[Path]:
        files = [self.annotation_file]
        return files + [self.root / self.options.intrinsics] if self.options.intrinsics else files

    def _intrinsics(self) -> dict[str, tuple[np.ndarray, str]]:
        """Camera key -> (K with our pixel convention, where it comes from)."""
        keys = sorted({c["camera"] for c in self.cameras})
        if self.options.intrinsics:
            path = self.require(self.root / self.options.intrinsics, "the cameras JSON")
            cameras = load_json(path, "a cameras JSON {camera: {f, c}}")
            missing = [key for key in keys if key not in cameras]
            if missing:
                raise SourceError(f"{path}: no entry for cameras {missing[:5]} named by the "
                                  f"images of {self.annotation_file.name}")
            return {key: (_matrix(cameras[key], self.pixel_offset), "calibrated") for key in keys}
        return {key: self._solve(key) for key in keys}

    def _solve(self, key: str) -> tuple[np.ndarray, str]:
        frames = [i for i, c in enumerate(self.cameras) if c["camera"] == key]
        known = (self.part[frames, :, 2] > 0) & (self.S[frames, :, 3] > 0)
        points3d, points2d = self.S[frames, :, :3][known], self.part[frames, :, :2][known]
        K, rms = solve_intrinsics(points3d, points2d + self.pixel_offset)
        return K, f"solved from {len(points3d)} 2D-3D pairs, rms {rms:.2f} px"

    def _body(self, arrays) -> dict | None:
        if "pose" not in arrays or "shape" not in arrays:
            return None
        has_body = arrays["has_smpl"] if "has_smpl" in arrays else np.ones(len(self.names))
        rotmats = axis_angle_to_matrix(torch.from_numpy(arrays["pose"].reshape(-1, 24, 3)))
        return {"rotmats": rotmats.numpy(), "shape": arrays["shape"], "has_body": has_body}

    def records(self, tally: Tally) -> Iterator[Record]:
        source = str(self.annotation_file.relative_to(self.root))
        tally.add("filtered", "not_in_protocol", source, len(self.names) - len(self.selected))
        for index in self.selected[:len(self)]:
            labelled = self.part[index, :, 2] > 0
            if labelled.sum() < MIN_BOX_POINTS:
                tally.add("skipped_people", "too_few_keypoints", f"{source}#{index}")
                tally.add("skipped_samples", "no_usable_person", f"{source}#{index}")
                continue
            part = self.part[index].copy()
            part[:, :2] = np.where(labelled[:, None], part[:, :2] + self.pixel_offset, 0)
            part[:, 2] = labelled
            kp3d = self.S[index].copy()
            kp3d[:, 3] = kp3d[:, 3] > 0
            kp3d = convert(kp3d[None], self.layout, "h36m17").astype(np.float32)
            K, origin = self.K[self.cameras[index]["camera"]]
            image = "images/" + self.names[index].removeprefix("images/")
            yield Record(key=self.key(index), root=self.root, image=image,
                         meta=self.meta(f"{source}#{index}", image, **self.cameras[index]),
                         kp2d=convert(part[None], self.layout, "coco17"),
                         box_points=[part[labelled, :2]], K=K, intrinsics=origin, kp3d=kp3d,
                         body=self._person_body(index, kp3d))

    def _person_body(self, index: int, kp3d: np.ndarray) -> dict | None:
        """SMPL targets of frame ``index``; the translation is the annotated pelvis (our
        body origin)."""
        if self.body is None:
            return None
        return {"model": "smpl", "rotmats": self.body["rotmats"][index:index + 1],
                "shape": self.body["shape"][index:index + 1],
                "transl": kp3d[:, 0, :3], "has_body": self.body["has_body"][index:index + 1]
                * kp3d[:, 0, 3]}


def _load_npz(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as error:  # object arrays need pickle
        raise SourceError(f"{path}: holds pickled objects, which crmh never loads; re-save "
                          f"its arrays as plain numeric/string arrays ({error})") from error
    except Exception as error:  # noqa: BLE001 - zip and format errors
        raise SourceError(f"{path}: not a readable .npz file ({error})") from error
    missing = [key for key in ("imgname", "part", "S") if key not in arrays]
    if missing:
        raise SourceError(f"{path}: expected SPIN-style arrays imgname, part, S; missing "
                          f"{missing}, found {sorted(arrays)}")
    count = len(arrays["imgname"])
    for key, width in (("part", 3), ("S", 4)):
        shape = arrays[key].shape
        if len(shape) != 3 or shape[0] != count or shape[2] != width:
            raise SourceError(f"{path}: '{key}' has shape {list(shape)}, expected "
                              f"[{count}, joints, {width}]")
    return arrays


def _matrix(camera: dict, offset: float) -> np.ndarray:
    (fx, fy), (cx, cy) = np.ravel(camera["f"]), np.ravel(camera["c"])
    return np.array([[fx, 0, cx + offset], [0, fy, cy + offset], [0, 0, 1.0]])


def parse_name(pattern: str, imgname: str, what: str) -> re.Match:
    """``re.search`` that names the image and the expected form when it fails."""
    match = re.search(pattern, imgname)
    if match is None:
        raise SourceError(f"image name {imgname!r} does not name its camera ({what})")
    return match

