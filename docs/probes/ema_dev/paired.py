"""Paired differences of the weight-average probe (README, "The weight average"): the
pretraining and baseline phases re-trained with ``train.common.ema_decay: 0.99`` (the
saved model the moving average of the weights), minus the committed run's baseline (the
last step's weights), both evaluated with this commit's code on the same development
scenes (``seed: 1000``), with paired bootstrap intervals over images.

    python docs/probes/ema_dev/paired.py    # from the repository root
"""

from __future__ import annotations

from pathlib import Path

from pipelines.evaluation import metric_replicates, read_records, record_weights
from stages.tables import paired_difference

HERE = Path(__file__).resolve().parent
ROWS = {"synth_single": (("pa_mpjpe_mm", None), ("mpjpe_mm", None), ("collision_frames", None)),
        "synth_groups": (("mpjpe_mm", "mean"), ("pa_mpjpe_mm", None), ("collision_frames", None)),
        "synth_multi": (("pck_all", None), ("pa_mpjpe_mm", None), ("mpjpe_mm", None),
                        ("collision_frames", None), ("depth_order_acc", None)),
        "synth_crowd": (("pa_mpjpe_mm", None), ("collision_frames", None),
                        ("depth_order_acc", None))}


def point(benchmark: str, model: str, metric: str, group: str | None) -> float:
    records = read_records(HERE / benchmark / f"{model}.jsonl")
    return metric_replicates(records, record_weights(records, 1, 0), metric, group, None)[0]


def main() -> None:
    for benchmark, rows in ROWS.items():
        for metric, group in rows:
            name = metric + (f"@{group}" if group else "")
            delta = paired_difference(HERE, benchmark, "baseline_ema", metric, group, 2000, 0,
                                      reference="baseline")
            before, after = (point(benchmark, m, metric, group)
                             for m in ("baseline", "baseline_ema"))
            print(f"{benchmark:12s} {name:18s} baseline {before:6.1f}  ema {after:6.1f}: "
                  f"{delta.value:+.1f} [{delta.low:+.1f}, {delta.high:+.1f}]")


if __name__ == "__main__":
    main()
