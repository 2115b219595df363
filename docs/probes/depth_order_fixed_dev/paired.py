"""Paired differences of the depth-order-weight check (README, "The depth-order weight"):
each fine-tune (weight 25 or 100, seeds 0-2) minus the baseline on the same development
images, with its bootstrap interval over images, and the mean of the three seeds with
its Student's t interval across seeds (stages.replicate's seed spread).

    python docs/probes/depth_order_fixed_dev/paired.py    # from the repository root
"""

from __future__ import annotations

from pathlib import Path

from pipelines.evaluation import read_records
from stages.replicate import seed_spread

HERE = Path(__file__).resolve().parent
METRICS = ("collision_frames", "depth_order_acc", "depth_order_overlap_acc", "pa_mpjpe_mm",
           "pck_all")


def main() -> None:
    for benchmark in ("synth_multi", "synth_crowd"):
        baseline = read_records(HERE / benchmark / "baseline.jsonl")
        for metric in METRICS:
            for weight in (25, 100):
                fine_tunes = {s: read_records(HERE / benchmark / f"full_w{weight}_s{s}.jsonl")
                              for s in (0, 1, 2)}
                spread = seed_spread(fine_tunes, baseline, metric, 2000, 0)
                mean = spread.across_seeds
                cells = " | ".join(f"{d.value:+.1f} [{d.low:+.1f}, {d.high:+.1f}]"
                                   for d in spread.per_seed)
                print(f"{benchmark:12s} {metric:24s} w{weight:<4d} {cells} | mean "
                      f"{mean.value:+.1f} [{mean.low:+.1f}, {mean.high:+.1f}]")


if __name__ == "__main__":
    main()
