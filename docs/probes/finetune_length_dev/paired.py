"""Paired differences of the fine-tune-length check (README, "Longer training"): the
`full` fine-tune at 150 steps (``full_w25_s<seed>``, from docs/probes/depth_order_fixed_dev)
and at ``ITERS`` steps (``<variant>_i<iters>_s<seed>``), each minus the baseline, and the
long minus the short run of the same seed, on the same development images, with bootstrap
intervals over images; then the mean of the three seeds with its Student's t interval
across seeds. With ``noscene 450`` (the control: the same fine-tune without the scene
losses), the control minus the baseline and the long `full` minus the control of its seed;
with ``no_depth 450`` (L_P alone) or ``no_collision 450`` (L_D alone), also that
variant minus the control of its seed.

    python docs/probes/finetune_length_dev/paired.py [variant iters]   # repository root
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.evaluation import read_records
from stages.replicate import seed_spread

HERE = Path(__file__).resolve().parent
METRICS = ("collision_frames", "collision_frames_matched", "depth_order_acc",
           "depth_order_overlap_acc", "pa_mpjpe_mm", "pck_all")
SEEDS = (0, 1, 2)


def row(benchmark: str, metric: str, label: str, model: str, reference: str) -> None:
    """One line: each seed's ``model - reference`` and their mean (stages.replicate's
    seed spread: paired intervals over images, Student's t across seeds)."""
    def records(name: str) -> dict[int, list[dict]]:
        return {s: read_records(HERE / benchmark / f"{name.format(seed=s)}.jsonl")
                for s in SEEDS}

    spread = seed_spread(records(model), records(reference), metric, 2000, 0)
    mean = spread.across_seeds
    cells = " | ".join(f"{d.value:+.1f} [{d.low:+.1f}, {d.high:+.1f}]"
                       for d in spread.per_seed)
    print(f"{benchmark:12s} {metric:25s} {label:22s} {cells} | mean {mean.value:+.1f} "
          f"[{mean.low:+.1f}, {mean.high:+.1f}]")


def main() -> None:
    variant, iters = (sys.argv[1], int(sys.argv[2])) if len(sys.argv) > 2 else ("full", 450)
    short, long = "full_w25_s{seed}", f"{variant}_i{iters}_s{{seed}}"
    for benchmark in ("synth_multi", "synth_crowd"):
        for metric in METRICS:
            if variant == "full":
                row(benchmark, metric, "150 - baseline", short, "baseline")
            row(benchmark, metric, f"{iters} - baseline", long, "baseline")
            if variant == "full":
                row(benchmark, metric, f"{iters} - 150", long, short)
            if variant in ("no_depth", "no_collision"):
                label = {"no_depth": "L_P", "no_collision": "L_D"}[variant]
                row(benchmark, metric, f"{label} {iters} - {iters}", long,
                    f"noscene_i{iters}_s{{seed}}")
            if variant == "noscene":
                row(benchmark, metric, f"full {iters} - {iters}", f"full_i{iters}_s{{seed}}",
                    long)


if __name__ == "__main__":
    main()
