"""The crop-pretraining step with the sparse RoIAlign's matrix built as before 1ac516c
(every entry coalesced at once, the transpose coalesced again) and as now (each bin's
row summed on its own, the transpose read from CSC): three alternating pairs in one
process, the same batches' stream. Not part of the pipeline.

    PYTHONPATH=. python docs/probes/pretrain_step/roi_rows.py     # from the root

The old matrix builder is loaded from git history (47ca187's ``ops/roi_align.py``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import ops.roi_align as roi_align

sys.path.insert(0, str(Path(__file__).parent))
from step_speed import TIMED, WARMUP, pretraining_step  # noqa: E402

from pipelines.determinism import deterministic_cpu_kernels  # noqa: E402


def old_builder():
    """47ca187's ``interpolation_matrix`` and transpose."""
    source = subprocess.run(["git", "show", "47ca187:ops/roi_align.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_roi_align.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_roi_align", path)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    return old.interpolation_matrix, lambda matrix: old._csr(matrix.to_sparse_coo().t())


def main() -> None:
    step, batch_size = pretraining_step(cap=2)
    builders = {"coalesced (before)": old_builder(),
                "per-row (now)": (roi_align.interpolation_matrix, roi_align._transposed)}
    with deterministic_cpu_kernels(torch.device("cpu")):
        for _ in range(WARMUP):
            step()
        alternate(step, batch_size, builders)


def alternate(step, batch_size: int, builders: dict) -> None:
    """Times each builder in turn, swapped into ``ops.roi_align``; puts the module's own
    functions back afterwards."""
    original = roi_align.interpolation_matrix, roi_align._transposed
    try:
        for _ in range(3):
            for label, (build, transpose) in builders.items():
                roi_align.interpolation_matrix, roi_align._transposed = build, transpose
                start = time.perf_counter()
                for _ in range(TIMED):
                    step()
                seconds = (time.perf_counter() - start) / TIMED
                print(f"{label}: {batch_size / seconds:.2f} crops/s", flush=True)
    finally:
        roi_align.interpolation_matrix, roi_align._transposed = original


if __name__ == "__main__":
    main()
