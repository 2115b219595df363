"""Probe (not part of the pipeline): one baseline minus another on the same test images.

    python docs/probes/smpl_rois/paired.py CAPPED_WORKSPACE ALL_WORKSPACE [MODEL]

Each workspace holds ``evaluations/<benchmark>/<MODEL>.jsonl`` (default ``baseline``)
and ``metrics/<benchmark>/<MODEL>.json``. Prints, per benchmark, the first minus the
second with a paired bootstrap interval over images (stages.tables.paired_difference,
2,000 resamples), and each one's AP50 with its own interval (AP has no paired form here).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from stages.tables import paired_difference

BENCHMARKS = ("synth_single", "synth_groups", "synth_multi", "synth_crowd")
METRICS = (("pa_mpjpe_mm", None), ("mpjpe_mm", "mean"), ("pck_all", None),
           ("collision_frames", None), ("depth_order_acc", None))


def main() -> None:
    first, second = Path(sys.argv[1]), Path(sys.argv[2])
    model = sys.argv[3] if len(sys.argv) > 3 else "baseline"
    both = Path(tempfile.mkdtemp())
    for benchmark in BENCHMARKS:  # one folder holding both, as paired_difference reads them
        (both / benchmark).mkdir()
        for workspace, name in ((first, "first"), (second, "second")):
            shutil.copy(workspace / "evaluations" / benchmark / f"{model}.jsonl",
                        both / benchmark / f"{name}.jsonl")
    print(f"{model}: {first} minus {second}")
    for benchmark in BENCHMARKS:
        cells = []
        for metric, group in METRICS:
            d = paired_difference(both, benchmark, "first", metric, group, 2000, 0,
                                  reference="second")
            if d is not None:
                cells.append(f"{metric} {d.value:+.1f} [{d.low:+.1f}, {d.high:+.1f}]")
        for workspace in (first, second):
            m = json.loads((workspace / "metrics" / benchmark / f"{model}.json").read_text())
            cells.append(f"AP50 {m['ap50']:.1f} [{m['ap50_lo']:.1f}, {m['ap50_hi']:.1f}]")
        print(f"{benchmark}: " + "; ".join(cells))
    shutil.rmtree(both)


if __name__ == "__main__":
    main()
