"""Miniature real datasets for tests: each dataset's official folder layout, built in a
temporary directory from the real excerpts in ``tests/fixtures/real`` (see its
``SOURCES.md``). Where a dataset's images are not part of the excerpt (LSP, MuPoTS,
Panoptic), blank JPEGs of the right size stand in for them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real"
MUPOTS_SIZE = (2048, 2048)  # TS1-TS5 frames (width, height)
PANOPTIC_FRAMES = (168, 169)

# prepare.<name> entries that read the miniature tree (roots come from `sources`).
PREPARE = {
    "coco_val": {"kind": "coco", "split": "val2017", "limit": None},
    "h36m_test": {"kind": "h36m", "split": "test", "limit": None,
                  "annotations": "test_h36m.npz", "intrinsics": "cameras.json"},
    "mpii_val": {"kind": "mpii", "split": "valid", "limit": None},
    "lsp_test": {"kind": "lsp", "split": "test", "limit": 4},
    "lspet_train": {"kind": "lspet", "split": "train", "limit": 10},
    "3dhp_train": {"kind": "mpi_inf_3dhp", "split": "train", "limit": None,
                   "annotations": "test_3dhp_train.npz", "intrinsics": "cameras_train.json"},
    "3dhp_test": {"kind": "mpi_inf_3dhp", "split": "test", "limit": None,
                  "annotations": "test_3dhp_test.npz", "intrinsics": None},
    "posetrack_val": {"kind": "posetrack18", "split": "val", "limit": None},
    "mupots": {"kind": "mupots", "split": "test", "limit": None, "sequences": ["TS1"]},
    "panoptic": {"kind": "panoptic", "split": "test", "limit": None},
}
KINDS = sorted({entry["kind"] for entry in PREPARE.values()})


def blank_jpeg(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 120, 120)).save(path, quality=40)


def _copy(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, folder / file.name)


def build_real_tree(root: Path, mupots_frames: int = 201) -> dict[str, str]:
    """Write every dataset's layout under ``root/<kind>``; returns ``sources`` roots."""
    real = FIXTURES
    coco = root / "coco"
    _copy(sorted((real / "coco").glob("*.jpg")), coco / "val2017")
    (coco / "annotations").mkdir(parents=True)
    shutil.copy(real / "coco/test_coco.json", coco / "annotations/person_keypoints_val2017.json")
    h36m = root / "h36m"
    _copy([real / "h36m/test_h36m.npz", real / "h36m/cameras.json"], h36m)
    _copy(sorted((real / "h36m").glob("*.jpg")), h36m / "images")
    mpii = root / "mpii"
    (mpii / "annot").mkdir(parents=True)
    shutil.copy(real / "mpii/test_mpii.json", mpii / "annot/valid.json")
    _copy(sorted((real / "mpii").glob("*.jpg")), mpii / "images")
    _build_lsp(root / "lsp")
    shutil.copytree(real / "lspet", root / "lspet")
    hdp = root / "mpi_inf_3dhp"
    _copy(sorted((real / "mpi_inf_3dhp").glob("*.npz"))
          + sorted((real / "mpi_inf_3dhp").glob("*.json")), hdp)
    _copy(sorted((real / "mpi_inf_3dhp").glob("*.jpg")), hdp / "images")
    shutil.copytree(real / "posetrack18", root / "posetrack18")
    _build_mupots(root / "mupots", mupots_frames)
    _build_panoptic(root / "panoptic")
    return {kind: str(root / kind) for kind in KINDS}


def _build_lsp(folder: Path) -> None:
    """joints.mat, and blank images (sized to hold every joint) for the first images of
    each split."""
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "lsp/joints.mat", folder / "joints.mat")
    joints = scipy.io.loadmat(folder / "joints.mat")["joints"]  # [3, 14, 2000]
    for number in [*range(1, 9), *range(1001, 1009)]:
        extent = joints[:2, :, number - 1].max(axis=1)
        blank_jpeg(folder / f"images/im{number:04d}.jpg",
                   (int(np.ceil(extent[0])) + 20, int(np.ceil(extent[1])) + 20))


def _build_mupots(folder: Path, frames: int) -> None:
    sequence = folder / "MultiPersonTestSet" / "TS1"
    _copy([FIXTURES / "mupots/TS1/annot.mat", FIXTURES / "mupots/TS1/occlusion.mat"], sequence)
    blank_jpeg(sequence / "img_000000.jpg", MUPOTS_SIZE)
    for frame in range(1, frames):
        shutil.copy(sequence / "img_000000.jpg", sequence / f"img_{frame:06d}.jpg")


def _build_panoptic(folder: Path) -> None:
    shutil.copytree(FIXTURES / "panoptic", folder)
    for camera in ("00_16", "00_30"):
        for frame in PANOPTIC_FRAMES:
            blank_jpeg(folder / f"160906_band1/hdImgs/{camera}/{camera}_{frame:08d}.jpg",
                       (1920, 1080))
