"""CMU Panoptic Studio, from its official per-sequence files.

Layout under the root::

    <seq>/calibration_<seq>.json                     cameras: K, distCoef, R, t (cm)
    <seq>/hdPose3d_stage1_coco19/body3DScene_%08d.json   bodies: joints19, world, cm
    <seq>/hdImgs/<cam>/<cam>_%08d.jpg
    <seq>/<frame_list>                               optional: one HD frame number a line

A sample is one (frame, HD camera) pair, for the configured ``cameras`` (default 00_16
and 00_30, the paper's) of each sequence (``sequences``; default: every folder with a
calibration file), frames in number order, from the frame list when one is named
(``frame_list``: a file name looked up in each sequence folder) or else every
``body3DScene`` file. The joints are moved into the camera frame (``R X + t``) and to
metres; a joint is known when its confidence exceeds 0.1 (as the official
preprocessing). The 2D keypoints are the 3D joints projected with the camera's lens
distortion. Panoptic has no spine and no head top: those h36m17 joints are marked
invalid, not invented (the official code filled them from an SMPL fit). A person with
fewer than two known joints in a camera's view is not in that sample (a filter, not a
failure). Pixels: OpenCV calibration, so 0.5 is added to the principal point.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.readers.base import (
    MIN_BOX_POINTS,
    Reader,
    ReaderOptions,
    Record,
    SourceError,
    Tally,
    load_json,
    require_keys,
)
from pipelines.readers.calibration import project_distorted
from pipelines.readers.joints import convert

__all__ = ["PanopticReader", "PanopticOptions", "MIN_CONFIDENCE"]

MIN_CONFIDENCE = 0.1  # a joint with lower confidence (or -1: not reconstructed) is unknown


@dataclass(frozen=True)
class PanopticOptions(ReaderOptions):
    sequences: tuple[str, ...] | None = None  # None: every folder with a calibration file
    cameras: tuple[str, ...] = ("00_16", "00_30")  # HD cameras
    frame_list: str | None = None  # file name in each sequence folder; None: every frame


@dataclass(frozen=True)
class Camera:
    name: str
    K: np.ndarray  # [3, 3], our pixel convention
    distortion: np.ndarray  # [5] k1, k2, p1, p2, k3
    R: np.ndarray  # [3, 3] world -> camera
    t: np.ndarray  # [3] centimetres
    size: tuple[int, int]  # (height, width)


class PanopticReader(Reader):
    kind = "panoptic"
    options_type = PanopticOptions
    pixel_offset = 0.5

    def __init__(self, root: Path, dataset: str, options: ReaderOptions, body_kind: str) -> None:
        super().__init__(root, dataset, options, body_kind)
        names = options.sequences or sorted(
            p.parent.name for p in root.glob("*/calibration_*.json")
            if p.name == f"calibration_{p.parent.name}.json")
        if not names:
            raise SourceError(f"{root}: no Panoptic sequence folders (<seq>/calibration_<seq>"
                              ".json) found")
        self.cameras = {name: self._cameras(name) for name in names}
        self.items = [(name, frame, camera) for name in names for frame in self._frames(name)
                      for camera in options.cameras]

    def _cameras(self, sequence: str) -> dict[str, Camera]:
        path = self.require(self.root / sequence / f"calibration_{sequence}.json",
                            "the sequence's calibration file")
        calibration = load_json(path, "a Panoptic calibration file")
        require_keys(calibration, ("cameras",), path, "a Panoptic calibration")
        found = {c.get("name"): c for c in calibration["cameras"] if c.get("type") == "hd"}
        missing = [name for name in self.options.cameras if name not in found]
        if missing:
            raise SourceError(f"{path}: no HD cameras {missing}; it has {sorted(found)}")
        cameras = {}
        for name in self.options.cameras:
            c = found[name]
            K = np.array(c["K"], dtype=np.float64)
            K[:2, 2] += self.pixel_offset
            cameras[name] = Camera(name, K, np.array(c["distCoef"], dtype=np.float64),
                                   np.array(c["R"], dtype=np.float64),
                                   np.ravel(np.array(c["t"], dtype=np.float64)),
                                   (int(c["resolution"][1]), int(c["resolution"][0])))
        return cameras

    def _frames(self, sequence: str) -> list[int]:
        folder = self.root / sequence
        if self.options.frame_list is None:
            names = (folder / "hdPose3d_stage1_coco19").glob("body3DScene_*.json")
            frames = sorted(int(re.search(r"(\d+)\.json$", p.name).group(1)) for p in names)
            if not frames:
                raise SourceError(f"{folder / 'hdPose3d_stage1_coco19'}: no body3DScene files")
            return frames
        path = self.require(folder / self.options.frame_list, "the frame list")
        try:
            return [int(line) for line in path.read_text().split()]
        except ValueError as error:
            raise SourceError(f"{path}: expected one HD frame number a line ({error})") from error

    def __len__(self) -> int:
        return self.limited(len(self.items))

    def input_files(self) -> list[Path]:
        files = [self.root / s / f"calibration_{s}.json" for s in self.cameras]
        if self.options.frame_list:
            files += [self.root / s / self.options.frame_list for s in self.cameras]
        return files

    def records(self, tally: Tally) -> Iterator[Record]:
        for index, (sequence, frame, name) in enumerate(self.items[:len(self)]):
            relative = f"{sequence}/hdPose3d_stage1_coco19/body3DScene_{frame:08d}.json"
            if not (self.root / relative).is_file():
                tally.add("skipped_samples", "missing_annotation", relative)
                continue
            scene = load_json(self.root / relative, "a Panoptic body3DScene file")
            require_keys(scene, ("bodies",), self.root / relative, "a body3DScene file")
            camera = self.cameras[sequence][name]
            people = [self._person(body, camera) for body in scene["bodies"]]
            for person in people:
                if person is None:
                    tally.add("filtered", "person_out_of_view", f"{relative} camera {name}")
            people = [p for p in people if p is not None]
            if not people:
                tally.add("filtered", "frame_without_people_in_view", f"{relative} {name}")
                continue
            image = f"{sequence}/hdImgs/{name}/{name}_{frame:08d}.jpg"
            yield Record(
                key=self.key(index), root=self.root, image=image,
                meta=self.meta(relative, image, sequence=sequence, camera=name, frame=frame,
                               distortion=camera.distortion.tolist(),
                               body_ids=[p["id"] for p in people]),
                kp2d=np.stack([p["kp2d"] for p in people]),
                box_points=[p["box_points"] for p in people], K=camera.K,
                intrinsics="calibrated", kp3d=np.stack([p["kp3d"] for p in people]),
                expected_size=camera.size)

    def _person(self, body: dict, camera: Camera) -> dict | None:
        """One body in ``camera``'s frame and image, or ``None`` if it is out of view."""
        joints = np.asarray(body["joints19"], dtype=np.float64).reshape(19, 4)
        known = joints[:, 3] > MIN_CONFIDENCE
        points = (joints[:, :3] @ camera.R.T + camera.t) / 100.0  # [19, 3] metres
        in_front = points[:, 2] > 0
        pixels = project_distorted(np.where(in_front[:, None], points, 1.0), camera.K,
                                   camera.distortion)
        height, width = camera.size
        inside = ((pixels[:, 0] >= 0) & (pixels[:, 0] < width)
                  & (pixels[:, 1] >= 0) & (pixels[:, 1] < height))
        visible = known & in_front & inside
        if visible.sum() < MIN_BOX_POINTS:
            return None
        kp2d = np.column_stack([np.where(visible[:, None], pixels, 0), visible])
        kp3d = np.column_stack([np.where(known[:, None], points, 0), known])
        return {"id": body.get("id"), "kp2d": convert(kp2d, "panoptic19", "coco17"),
                "kp3d": convert(kp3d, "panoptic19", "h36m17").astype(np.float32),
                "box_points": pixels[visible]}
