"""L_P alone minus the control of the same seed, paired on the 32 training images, with
the evaluation's paired bootstrap interval (``stages.tables.paired_difference``).

    PYTHONPATH=<repo> python paired.py SCRATCH 0 1 2     # after run.sh
"""
import sys
from pathlib import Path

from stages.common import read_params
from stages.tables import paired_difference

METRICS = ("collision_frames", "collision_frames_matched", "collision_litres_matched",
           "pa_mpjpe_mm", "depth_order_acc")


def main() -> None:
    scratch, seeds = Path(sys.argv[1]), sys.argv[2:]
    replicates = int(read_params()["eval"]["bootstrap_replicates"])
    for seed in seeds:
        evaluations = scratch / f"seed{seed}" / "evaluations"
        for metric in METRICS:
            delta = paired_difference(evaluations, "synth_crowd", "no_depth", metric, None,
                                      replicates, 0, reference="no_scene")
            text = "no records" if delta is None else \
                f"{delta.value:+.3f} [{delta.low:+.3f}, {delta.high:+.3f}]"
            print(f"seed {seed} L_P alone - control {metric:26s} {text}")


if __name__ == "__main__":
    main()
