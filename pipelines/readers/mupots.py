"""MuPoTS-3D, from its official files.

Layout under the root::

    MultiPersonTestSet/TS<n>/annot.mat       cell array [frames, people] of structs:
                                             annot2 [2, 17] px, annot3 [3, 17] mm,
                                             univ_annot3, isValidFrame
    MultiPersonTestSet/TS<n>/occlusion.mat   cell array [frames, people] of [1, 17], 1 = occluded
    MultiPersonTestSet/TS<n>/img_%06d.jpg    frame 0, 1, ...

A sample is a frame of TS1-TS20 (``sequences``; default: every ``TS<n>`` folder, in
number order); every annotated person of the sequence is a person of every frame. The
17 joints are MPI-INF-3DHP's. ``annot3`` becomes the h36m17 3D joints in metres (and
``univ_annot3``, the height-normalised skeleton the official 3DPCK uses, ``kp3d_univ``),
valid where ``isValidFrame`` is set; a 2D joint is visible where the frame is valid and
``occlusion.mat`` does not mark it occluded. Boxes come from ``annot2``.

Intrinsics are not shipped: they are solved per sequence from ``annot2`` against
``annot3`` over every valid frame (pinhole least squares; the fit's error is in each
sample's ``meta.intrinsics``). The spine joint is left out of the fit and of the boxes:
its 2D annotation does not match its 3D one (130 px apart in TS1, where every other
joint fits within 1 px). Pixels: annot2 are pixel indices (0.5 added).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.readers.base import Reader, ReaderOptions, Record, SourceError, Tally, load_mat
from pipelines.readers.calibration import solve_intrinsics
from pipelines.readers.joints import JOINT_LISTS, convert

__all__ = ["MuPoTSReader", "MuPoTSOptions"]

_SPINE = JOINT_LISTS["mpi17"].index("spine")
_FIT_JOINTS = [j for j in range(17) if j != _SPINE]


@dataclass(frozen=True)
class MuPoTSOptions(ReaderOptions):
    sequences: tuple[str, ...] | None = None  # TS<n> names; None: every TS<n> folder found


@dataclass
class Sequence:
    """One TS<n> folder's annotations, as arrays."""

    name: str
    annot2: np.ndarray  # [F, P, 17, 2] our pixels
    annot3: np.ndarray  # [F, P, 17, 3] metres
    univ: np.ndarray  # [F, P, 17, 3] metres, the height-normalised skeleton (univ_annot3)
    valid: np.ndarray  # [F, P] bool
    occluded: np.ndarray  # [F, P, 17] bool
    K: np.ndarray
    intrinsics: str


class MuPoTSReader(Reader):
    kind = "mupots"
    options_type = MuPoTSOptions
    pixel_offset = 0.5

    def __init__(self, root: Path, dataset: str, options: ReaderOptions, body_kind: str) -> None:
        super().__init__(root, dataset, options, body_kind)
        self.folder = root / "MultiPersonTestSet"
        names = options.sequences or self._found()
        self.sequences = [self._load(name) for name in names]
        self.frames = [(s, f) for s in self.sequences for f in range(len(s.valid))]

    def _found(self) -> list[str]:
        names = [p.name for p in self.folder.glob("TS*") if re.fullmatch(r"TS\d+", p.name)]
        if not names:
            raise SourceError(f"{self.folder}: no TS<n> sequence folders found")
        return sorted(names, key=lambda name: int(name[2:]))

    def _load(self, name: str) -> Sequence:
        annot_file = self.require(self.folder / name / "annot.mat", f"{name}'s annot.mat")
        cells = load_mat(annot_file, "annotations", "a [frames, people] cell array of structs")
        occlusion_file = self.require(self.folder / name / "occlusion.mat",
                                      f"{name}'s occlusion.mat")
        occlusion = load_mat(occlusion_file, "occlusion_labels", "a [frames, people] cell array")
        if cells.ndim != 2 or occlusion.shape != cells.shape:
            raise SourceError(f"{annot_file}: annotations {list(cells.shape)} and "
                              f"occlusion_labels {list(occlusion.shape)} must both be "
                              "[frames, people]")
        try:
            annot2 = _stack(cells, "annot2", (2, 17)) + self.pixel_offset
            annot3 = _stack(cells, "annot3", (3, 17)) / 1000.0
            univ = _stack(cells, "univ_annot3", (3, 17)) / 1000.0
            valid = np.array([[bool(np.ravel(c[0, 0].isValidFrame)[0]) for c in row]
                              for row in cells])
            occluded = np.stack([np.stack([np.ravel(o) > 0 for o in row]) for row in occlusion])
        except (AttributeError, IndexError, ValueError) as error:
            raise SourceError(f"{annot_file}: a cell lacks annot2 [2, 17], annot3 [3, 17] or "
                              f"isValidFrame, or occlusion.mat is not [1, 17] per cell "
                              f"({error})") from error
        fit = (slice(None), slice(None), _FIT_JOINTS)
        K, rms = solve_intrinsics(annot3[fit][valid].reshape(-1, 3),
                                  annot2[fit][valid].reshape(-1, 2))
        return Sequence(name, annot2, annot3, univ, valid, occluded, K,
                        f"solved from annot2/annot3 without the spine, rms {rms:.2f} px")

    def __len__(self) -> int:
        return self.limited(len(self.frames))

    def input_files(self) -> list[Path]:
        return [self.folder / s.name / f for s in self.sequences
                for f in ("annot.mat", "occlusion.mat")]

    def records(self, tally: Tally) -> Iterator[Record]:
        for index, (sequence, frame) in enumerate(self.frames[:len(self)]):
            valid = sequence.valid[frame]  # [P]
            flags = np.broadcast_to(valid[:, None, None], (len(valid), 17, 1))
            kp3d = np.concatenate([sequence.annot3[frame], flags], axis=-1)
            univ = np.concatenate([sequence.univ[frame], flags], axis=-1)
            visible = valid[:, None] & ~sequence.occluded[frame]
            kp2d = np.concatenate([sequence.annot2[frame], visible[..., None]], axis=-1)
            image = f"MultiPersonTestSet/{sequence.name}/img_{frame:06d}.jpg"
            yield Record(
                key=self.key(index), root=self.root, image=image,
                meta=self.meta(f"MultiPersonTestSet/{sequence.name}/annot.mat#frame={frame}",
                               image, sequence=sequence.name, frame=frame,
                               valid_people=valid.tolist()),
                kp2d=convert(kp2d, "mpi17", "coco17"),
                box_points=[person[_FIT_JOINTS] for person in sequence.annot2[frame]],
                K=sequence.K, intrinsics=sequence.intrinsics,
                kp3d=convert(kp3d, "mpi17", "h36m17").astype(np.float32),
                kp3d_univ=convert(univ, "mpi17", "h36m17").astype(np.float32))


def _stack(cells: np.ndarray, field: str, shape: tuple[int, int]) -> np.ndarray:
    """``[F, P, 17, C]`` from each cell's ``field`` (a ``[C, 17]`` array)."""
    def one(cell: np.ndarray) -> np.ndarray:
        value = np.asarray(getattr(cell[0, 0], field), dtype=np.float64)
        if value.shape != shape:
            raise ValueError(f"{field} has shape {list(value.shape)}, expected {list(shape)}")
        return value.T

    return np.stack([np.stack([one(cell) for cell in row]) for row in cells])
