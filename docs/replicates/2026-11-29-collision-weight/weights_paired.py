"""The interpenetration weight 0.1 (this folder's report) against 0.01 (6f07864's run,
``docs/replicates/2026-11-28-6f07864``), seed by seed, for ``full`` and L_P alone.

    PYTHONPATH=. python docs/replicates/2026-11-29-collision-weight/weights_paired.py

Both runs fine-tuned every seed from the same baseline, on the same images in the same
order, so a seed's difference between its two Δ-from-the-baseline values is the weight's
effect on that seed. Only the interval across seeds (Student's t) is computed: the
per-image records of 6f07864's seeds 1-4 were not kept, so there is no interval over
images.
"""

import json
from pathlib import Path

from stages.replicate import across_seeds

HERE = Path(__file__).resolve().parent
OLD = HERE.parent / "2026-11-28-6f07864" / "summary.json"

old, new = (json.loads(path.read_text()) for path in (OLD, HERE / "summary.json"))
for variant in ("full", "no_depth"):
    for benchmark in ("synth_multi", "synth_crowd"):
        for metric in ("collision_frames", "collision_litres_matched", "depth_order_acc",
                       "pa_mpjpe_mm"):
            key = f"{variant}/baseline/{benchmark}/{metric}"
            per_seed = [n["value"] - o["value"]
                        for n, o in zip(new[key]["per_seed"], old[key]["per_seed"], strict=True)]
            mean = across_seeds(per_seed)
            print(f"{variant:9s} {benchmark:12s} {metric:25s} 0.1 - 0.01: {mean.value:+.2f} "
                  f"t [{mean.low:+.2f}, {mean.high:+.2f}]  per seed "
                  + " ".join(f"{v:+.2f}" for v in per_seed))
