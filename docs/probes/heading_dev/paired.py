"""Paired differences of the heading probes (README, "Heading"): each arm's baseline,
re-trained (pretraining and baseline phases) on a changed training set, minus this run's
baseline, on the same development scenes (``seed: 1000``), with paired bootstrap
intervals over images; the mean-pose row for scale. The arms:

- ``any_heading``: the training people face every direction (``probe.patch``'s
  ``CRMH_PROBE_ANY_HEADING``; the test scenes keep their layouts' headings);
- ``hair_any``: as ``any_heading``, and every person rendered with hair on the top and
  back of the head (``hair.patch``), the training images and the development copies
  alike (the same scenes, keys and people; only their look changes);
- ``hair``: hair, the committed training headings.

    python docs/probes/heading_dev/paired.py    # from the repository root
"""

from __future__ import annotations

from pathlib import Path

from pipelines.evaluation import metric_replicates, read_records, record_weights
from stages.tables import paired_difference

HERE = Path(__file__).resolve().parent
ARMS = ("any_heading", "hair_any", "hair")
ROWS = {"synth_single": (("pa_mpjpe_mm", None), ("mpjpe_mm", None), ("collision_frames", None)),
        "synth_groups": (("mpjpe_mm", "mean"), ("pa_mpjpe_mm", None), ("collision_frames", None)),
        "synth_multi": (("pck_all", None), ("pa_mpjpe_mm", None), ("mpjpe_mm", None),
                        ("collision_frames", None), ("depth_order_acc", None))}


def point(benchmark: str, model: str, metric: str, group: str | None) -> float:
    records = read_records(HERE / benchmark / f"{model}.jsonl")
    return metric_replicates(records, record_weights(records, 1, 0), metric, group, None)[0]


def main() -> None:
    for benchmark, rows in ROWS.items():
        arms = [a for a in ARMS if (HERE / benchmark / f"baseline_{a}.jsonl").is_file()]
        for metric, group in rows:
            name = metric + (f"@{group}" if group else "")
            values = " ".join(f"{m} {point(benchmark, m, metric, group):.1f}"
                              for m in ("mean_pose", "baseline"))
            print(f"{benchmark:12s} {name:18s} {values}")
            for arm in arms:
                delta = paired_difference(HERE, benchmark, f"baseline_{arm}", metric, group,
                                          2000, 0, reference="baseline")
                value = point(benchmark, f"baseline_{arm}", metric, group)
                print(f"{'':31s} {arm:12s} {value:6.1f}: {delta.value:+.1f} "
                      f"[{delta.low:+.1f}, {delta.high:+.1f}]")


if __name__ == "__main__":
    main()
