"""AP50 of two models' evaluation records on the same images, with a paired bootstrap
interval, and their colliding-frame counts (probe).

    python docs/probes/box_sampling_dev/ap_paired.py A.jsonl B.jsonl
"""

import sys
from pathlib import Path

import numpy as np

from ops.bootstrap import replicate_weights
from ops.detection import ap_replicates, average_precision
from pipelines.evaluation import detection_inputs, read_records


def main() -> None:
    a_path, b_path = Path(sys.argv[1]), Path(sys.argv[2])
    a, b = ({r["key"]: r for r in read_records(path)} for path in (a_path, b_path))
    keys = sorted(set(a) & set(b))
    weights = replicate_weights(len(keys), 2000, 0)
    a_images, b_images = (detection_inputs([r[k] for k in keys]) for r in (a, b))
    points = [100 * average_precision(*images) for images in (a_images, b_images)]
    draws = 100 * (ap_replicates(*a_images, weights) - ap_replicates(*b_images, weights))
    low, high = np.percentile(draws, [2.5, 97.5])
    print(f"AP50 {points[0]:.1f} vs {points[1]:.1f}: {points[0] - points[1]:+.1f} "
          f"[{low:+.1f}, {high:+.1f}] over {len(keys)} images")
    for name, records in (("A", a), ("B", b)):
        frames = sum(records[k]["values"]["collision"][0] for k in keys)
        print(name, "colliding frames", int(frames))


if __name__ == "__main__":
    main()
