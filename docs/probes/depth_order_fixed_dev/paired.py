"""Paired differences of the depth-order-weight check (README, "The depth-order weight"):
each fine-tune (weight 25 or 100, seeds 0-2) minus the baseline on the same development
images, with its bootstrap interval over images, and the mean of the three seeds with
its Student's t interval across seeds.

    python docs/probes/depth_order_fixed_dev/paired.py    # from the repository root
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from stages.tables import paired_difference

HERE = Path(__file__).resolve().parent
METRICS = ("collision_frames", "depth_order_acc", "depth_order_overlap_acc", "pa_mpjpe_mm",
           "pck_all")


def main() -> None:
    for benchmark in ("synth_multi", "synth_crowd"):
        for metric in METRICS:
            for weight in (25, 100):
                differences = [paired_difference(HERE, benchmark, f"full_w{weight}_s{seed}",
                                                 metric, None, 2000, 0) for seed in (0, 1, 2)]
                points = [d.value for d in differences]
                mean = float(np.mean(points))
                half = (stats.t.ppf(0.975, len(points) - 1) * np.std(points, ddof=1)
                        / np.sqrt(len(points)))
                cells = " | ".join(f"{d.value:+.1f} [{d.low:+.1f}, {d.high:+.1f}]"
                                   for d in differences)
                print(f"{benchmark:12s} {metric:24s} w{weight:<4d} {cells} | mean {mean:+.1f} "
                      f"[{mean - half:+.1f}, {mean + half:+.1f}]")


if __name__ == "__main__":
    main()
