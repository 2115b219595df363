"""The sparse RoIAlign's matrix alone, built and transposed as before 1ac516c and as
now: 512 random RoIs at 7×7 over a crop batch's pyramid (8 crops of 128×128, levels
P2-P5), the box head's share of one pretraining step. Not part of the pipeline.

    PYTHONPATH=. python docs/probes/pretrain_step/roi_matrix.py     # from the root
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import ops.roi_align as roi_align

sys.path.insert(0, str(Path(__file__).parent))
from roi_rows import old_builder  # noqa: E402

SHAPES = [(8, 32, 32), (8, 16, 16), (8, 8, 8), (8, 4, 4)]
SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


def milliseconds(function, repeats: int = 20) -> float:
    function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    corner = torch.rand(512, 2, generator=generator, dtype=torch.float64) * 100
    size = torch.rand(512, 2, generator=generator, dtype=torch.float64) * 60 + 4
    image = torch.randint(0, 8, (512, 1), generator=generator).double()
    rois = torch.cat([image, corner, corner + size], dim=1)
    level = torch.randint(0, 4, (512,), generator=generator)
    old_build, old_transpose = old_builder()
    for label, build, transpose in (("coalesced (before)", old_build, old_transpose),
                                    ("per-row (now)", roi_align.interpolation_matrix,
                                     roi_align._transposed)):
        def make(build=build):
            return build(rois, level, SHAPES, SCALES, (7, 7), 2, torch.float32)
        matrix = make()
        print(f"{label}: {matrix._nnz()} entries, build {milliseconds(make):.1f} ms, "
              f"transpose {milliseconds(lambda m=matrix, t=transpose: t(m)):.1f} ms")


if __name__ == "__main__":
    main()
