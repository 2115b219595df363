"""Leeds Sports Pose (LSP), from the official ``joints.mat``.

Layout under the root::

    joints.mat        variable ``joints`` [3, 14, 2000]: x, y, and 0 = visible, 1 = occluded
    images/im%04d.jpg

One person per image. The official split: ``train`` is images 1-1000, ``test`` images
1001-2000. A joint is usable when LSP marks it visible (the flag is inverted: 0 means
visible). Boxes come from the visible joints.

Pixels: MATLAB's 1-based coordinates, so 0.5 is subtracted.
"""

from __future__ import annotations

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
    load_mat,
)
from pipelines.readers.joints import convert

__all__ = ["LspReader", "LspOptions"]


@dataclass(frozen=True)
class LspOptions(ReaderOptions):
    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' (images 1-1000) or 'test' (1001-2000), "
                             f"got {self.split!r}")


class LspReader(Reader):
    kind = "lsp"
    options_type = LspOptions
    pixel_offset = -0.5
    image_pattern = "images/im{:04d}.jpg"

    def __init__(self, root: Path, dataset: str, options: ReaderOptions, body_kind: str) -> None:
        super().__init__(root, dataset, options, body_kind)
        self.annotation_file = self.require(root / "joints.mat", "joints.mat")
        self.joints, self.visible = self._load()  # [N, 14, 2], [N, 14] bool
        self.numbers = self._split_numbers(len(self.joints))

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        joints = load_mat(self.annotation_file, "joints", "LSP joints [3, 14, N]")
        if joints.ndim != 3 or joints.shape[:2] != (3, 14):
            raise SourceError(f"{self.annotation_file}: 'joints' has shape {list(joints.shape)}, "
                              "expected [3, 14, N] (LSP; LSP-extended is [14, 3, N], kind lspet)")
        joints = joints.transpose(2, 1, 0)  # [N, 14, 3]
        return joints[..., :2], joints[..., 2] == 0

    def _split_numbers(self, count: int) -> list[int]:
        if count != 2000:
            raise SourceError(f"{self.annotation_file}: {count} images; the LSP train/test "
                              "split needs the 2000-image file")
        first = 1 if self.options.split == "train" else 1001
        return list(range(first, first + 1000))

    def __len__(self) -> int:
        return self.limited(len(self.numbers))

    def input_files(self) -> list[Path]:
        return [self.annotation_file]

    def records(self, tally: Tally) -> Iterator[Record]:
        for index, number in enumerate(self.numbers[:len(self)]):
            where = f"joints.mat#{number}"
            visible = self.visible[number - 1]
            if visible.sum() < MIN_BOX_POINTS:
                tally.add("skipped_people", "too_few_keypoints", where)
                tally.add("skipped_samples", "no_usable_person", where)
                continue
            xy = np.where(visible[:, None], self.joints[number - 1] + self.pixel_offset, 0)
            joints = np.column_stack([xy, visible])
            path = self.image_pattern.format(number)
            yield Record(key=self.key(index), root=self.root, image=path,
                         meta=self.meta(where, path),
                         kp2d=convert(joints[None], "lsp14", "coco17"),
                         box_points=[xy[visible]])
