"""Paired differences of the pose-anchor probe (README, "Pose anchors"): a model trained
with ``model.pose_anchors`` minus one trained without, both evaluated on the same
development scenes (``seed: 1000``), with paired bootstrap intervals over images.

    python docs/probes/pose_anchors/paired.py anchors32 baseline    # from the repository root

Each argument names ``<benchmark>/<model>.jsonl`` records in this folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.evaluation import metric_replicates, read_records, record_weights
from stages.tables import paired_difference

HERE = Path(__file__).resolve().parent
ROWS = {"synth_single": (("pa_mpjpe_mm", None), ("mpjpe_mm", None), ("collision_frames", None)),
        "synth_groups": (("mpjpe_mm", "mean"), ("pa_mpjpe_mm", None)),
        "synth_multi": (("pa_mpjpe_mm", None), ("mpjpe_mm", None), ("pck_all", None),
                        ("collision_frames", None), ("depth_order_acc", None))}


def point(benchmark: str, model: str, metric: str, group: str | None) -> float:
    records = read_records(HERE / benchmark / f"{model}.jsonl")
    return metric_replicates(records, record_weights(records, 1, 0), metric, group, None)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arm")
    parser.add_argument("reference")
    args = parser.parse_args()
    for benchmark, rows in ROWS.items():
        if not (HERE / benchmark / f"{args.arm}.jsonl").is_file():
            continue
        for metric, group in rows:
            name = metric + (f"@{group}" if group else "")
            delta = paired_difference(HERE, benchmark, args.arm, metric, group, 2000, 0,
                                      reference=args.reference)
            before, after = (point(benchmark, m, metric, group)
                             for m in (args.reference, args.arm))
            print(f"{benchmark:12s} {name:18s} {args.reference} {before:6.1f}  {args.arm} "
                  f"{after:6.1f}: {delta.value:+.1f} [{delta.low:+.1f}, {delta.high:+.1f}]")


if __name__ == "__main__":
    main()
