"""Arms of ``finetune_arms.sh`` against references of their own seed, across seeds.

For each comparison ``ARM:REFERENCE``, benchmark and metric: the mean over training
seeds of the paired difference on the development copies, its Student's t interval
across seeds and its bootstrap interval over images (:func:`stages.replicate.seed_spread`).
The baseline is seed 0's (every seed fine-tunes the same one).

    PYTHONPATH=. python docs/probes/finetune_arms_paired.py SCRATCH "0 1 2 3 4" \
        full_vote:full no_collision_vote:no_scene ...
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.evaluation import read_records, records_path
from stages.common import read_params
from stages.replicate import seed_spread

METRICS = ("collision_frames", "depth_order_acc", "depth_order_overlap_acc", "pa_mpjpe_mm")


def main() -> None:
    scratch, seeds = Path(sys.argv[1]), [int(s) for s in sys.argv[2].split()]
    comparisons = [tuple(pair.split(":")) for pair in sys.argv[3:]]
    params = read_params()

    def records(seed: int, benchmark: str, model: str) -> list[dict]:
        place = scratch / f"seed{0 if model == 'baseline' else seed}" / "evaluations"
        return read_records(records_path(place, benchmark, model))

    for benchmark in ("synth_multi", "synth_crowd"):
        print(f"# {benchmark} (development copies, seed 1000), seeds {seeds}")
        for metric in METRICS:
            digits = 1 if metric == "collision_frames" else 2
            for arm, reference in comparisons:
                spread = seed_spread({s: records(s, benchmark, arm) for s in seeds},
                                     {s: records(s, benchmark, reference) for s in seeds},
                                     metric, params["eval"]["bootstrap_replicates"],
                                     params["seed"])
                t, b = spread.across_seeds, spread.over_images
                per_seed = " ".join(f"{d.value:+.{digits - 1}f}" for d in spread.per_seed)
                print(f"{metric:24s} {arm:18s} - {reference:13s} {t.value:+8.{digits}f} "
                      f"t [{t.low:+.{digits}f}, {t.high:+.{digits}f}] "
                      f"images [{b.low:+.{digits}f}, {b.high:+.{digits}f}] "
                      f"{'shown' if spread.shown else '     '}  per seed {per_seed}")
            print()


if __name__ == "__main__":
    main()
