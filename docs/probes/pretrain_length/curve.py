"""The pretraining's learning curve on the development copies (probe, not in the
pipeline): each pretraining length's model scored as the mean-pose reference row is, and
paired with the committed 1,350-step pretraining on the same images.

    python docs/probes/pretrain_length/curve.py    # from the repository root
    python docs/probes/pretrain_length/curve.py baseline_pretrain4050 baseline

Reads ``<benchmark>/<arm>.jsonl`` records in this folder (``run.sh`` wrote them): the
mean pose (``mean_pose``), the pretraining after N steps (``pretrain<N>``), the
committed baseline (``baseline``), the baseline phase trained on the N-step
pretraining (``baseline_pretrain<N>``), and both phases re-trained with ``seed: 1``
(``baseline_s1_pretrain<N>``). With two arguments, the first arm against the
second instead of the curve.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from ops.bootstrap import replicate_weights
from ops.detection import ap_replicates, average_precision
from pipelines.evaluation import detection_inputs, metric_replicates, read_records, record_weights
from stages.tables import paired_difference

HERE = Path(__file__).resolve().parent
REFERENCE = "pretrain1350"
# (benchmark, metric, group): Table 1's and Table 2's pose targets, then 3DPCK.
POSE = (("synth_single", "pa_mpjpe_mm", None), ("synth_groups", "mpjpe_mm", "mean"),
        ("synth_multi", "pa_mpjpe_mm", None), ("synth_multi", "pck_all", None))


def arms() -> list[str]:
    """The pretraining arms present, shortest first."""
    names = {p.stem for p in (HERE / "synth_single").glob("pretrain[0-9]*.jsonl")}
    return sorted(names, key=lambda name: int(re.sub(r"\D", "", name)))


def below(mean: float, value: float) -> str:
    return f" ({100 * (mean - value) / mean:.1f} % below)"


def one_arm(arm: str, reference: str, mean: str = "mean_pose") -> None:
    """``arm``'s pose rows (with the share below the mean pose), then AP50 and the
    colliding frames, each paired with ``reference`` on the same images."""
    for benchmark, metric, group in (*POSE, ("synth_single", "collision_frames", None),
                                     ("synth_multi", "collision_frames", None)):
        base, before, after = (point(benchmark, m, metric, group) for m in (mean, reference, arm))
        shares = [below(base, v) if "mpjpe" in metric else "" for v in (before, after)]
        delta = paired_difference(HERE, benchmark, arm, metric, group, 2000, 0,
                                  reference=reference)
        name = metric + (f"@{group}" if group else "")
        print(f"{benchmark} {name}: mean pose {base:.1f}, {reference} {before:.1f}{shares[0]}, "
              f"{arm} {after:.1f}{shares[1]}: {delta.value:+.1f} [{delta.low:+.1f}, "
              f"{delta.high:+.1f}]")
    value, difference, low, high = ap50(arm, reference)
    print(f"synth_multi ap50: {reference} {value - difference:.1f}, {arm} {value:.1f}: "
          f"{difference:+.1f} [{low:+.1f}, {high:+.1f}]")


def point(benchmark: str, arm: str, metric: str, group: str | None) -> float:
    records = read_records(HERE / benchmark / f"{arm}.jsonl")
    return metric_replicates(records, record_weights(records, 1, 0), metric, group)[0]


def ap50(arm: str, reference: str = REFERENCE) -> tuple[float, float, float, float]:
    """AP50 on the development ``synth_multi``, and its paired difference from the
    reference with the difference's 95 % bootstrap interval over images."""
    def load(name):
        records = {r["key"]: r for r in read_records(HERE / "synth_multi" / f"{name}.jsonl")}
        return [records[k] for k in sorted(records)]
    images, reference = (detection_inputs(load(name)) for name in (arm, reference))
    weights = replicate_weights(len(images[1]), 2000, 0)
    draws = 100 * (ap_replicates(*images, weights) - ap_replicates(*reference, weights))
    low, high = np.percentile(draws, [2.5, 97.5])
    value = 100 * average_precision(*images)
    return value, value - 100 * average_precision(*reference), float(low), float(high)


def main() -> None:
    if len(sys.argv) == 3:
        one_arm(*sys.argv[1:])
        return
    for benchmark, metric, group in POSE:
        name = metric + (f"@{group}" if group else "")
        mean = point(benchmark, "mean_pose", metric, group)
        print(f"{benchmark} {name}: mean pose {mean:.1f}")
        for arm in arms():
            value = point(benchmark, arm, metric, group)
            share = below(mean, value) if "mpjpe" in metric else ""
            delta = paired_difference(HERE, benchmark, arm, metric, group, 2000, 0,
                                      reference=REFERENCE)
            print(f"  {arm:14s} {value:6.1f}{share}; vs {REFERENCE} {delta.value:+.1f} "
                  f"[{delta.low:+.1f}, {delta.high:+.1f}]")
    print("synth_multi ap50")
    for arm in arms():
        value, delta, low, high = ap50(arm)
        print(f"  {arm:14s} {value:5.1f}; vs {REFERENCE} {delta:+.1f} [{low:+.1f}, {high:+.1f}]")


if __name__ == "__main__":
    main()
