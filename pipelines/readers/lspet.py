"""LSP-extended (LSPET), from its ``joints.mat``.

Layout under the root::

    joints.mat         variable ``joints`` [14, 3, 10000]: x, y, and 1 = visible
    images/im%05d.jpg

The same joints as LSP in a transposed array, with the opposite visibility flag (1 means
visible). A joint marked 0 may carry arbitrary coordinates; it is not used. Every image
is a training image (split ``train``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.readers.base import ReaderOptions, SourceError, load_mat
from pipelines.readers.lsp import LspReader

__all__ = ["LspetReader"]


@dataclass(frozen=True)
class LspetOptions(ReaderOptions):
    def __post_init__(self) -> None:
        super().__post_init__()
        if self.split != "train":
            raise ValueError(f"LSP-extended has one split, 'train'; got {self.split!r}")


class LspetReader(LspReader):
    kind = "lspet"
    options_type = LspetOptions
    image_pattern = "images/im{:05d}.jpg"

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        joints = load_mat(self.annotation_file, "joints", "LSP-extended joints [14, 3, N]")
        if joints.ndim != 3 or joints.shape[:2] != (14, 3):
            raise SourceError(f"{self.annotation_file}: 'joints' has shape {list(joints.shape)}, "
                              "expected [14, 3, N] (LSP-extended; LSP is [3, 14, N], kind lsp)")
        joints = joints.transpose(2, 0, 1)  # [N, 14, 3]
        return joints[..., :2], joints[..., 2] == 1

    def _split_numbers(self, count: int) -> list[int]:
        return list(range(1, count + 1))
