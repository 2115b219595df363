"""Paired differences between this workspace's evaluations and a committed run's: the
same model on the same test images, a 95 % paired bootstrap interval over images.

    PYTHONPATH=. python docs/runs/paired_runs.py 69b2240                 # every model
    PYTHONPATH=. python docs/runs/paired_runs.py 69b2240 --models baseline full

Reads the other run's ``evaluations/<model>/<benchmark>.jsonl`` (before the evaluation
became one stage per model: ``evaluations/<benchmark>/<model>.jsonl``) with ``git show``
(so it needs the repository's history) and this workspace's from ``evaluations/``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from ops.bootstrap import paired
from ops.detection import ap_replicates, average_precision
from pipelines.evaluation import (
    detection_inputs,
    find_records,
    read_records,
    record_weights,
    records_path,
)
from stages.common import read_params
from stages.tables import paired_difference

ROWS = {"synth_single": (("pa_mpjpe_mm", None), ("mpjpe_mm", None), ("collision_frames", None)),
        "synth_groups": (("mpjpe_mm", "mean"), ("pa_mpjpe_mm", None)),
        "synth_multi": (("pa_mpjpe_mm", None), ("mpjpe_mm", None), ("pck_all", None),
                        ("collision_frames", None), ("depth_order_acc", None)),
        "synth_crowd": (("pa_mpjpe_mm", None), ("collision_frames", None),
                        ("depth_order_acc", None))}


def committed_records(commit: str, benchmark: str, model: str, folder: Path) -> None:
    """Write ``commit``'s evaluation of ``model`` as ``<model>@old`` and this workspace's
    as ``<model>`` in ``folder`` (laid out as ``records_path`` says)."""
    for layout in (f"evaluations/{model}/{benchmark}.jsonl",
                   f"evaluations/{benchmark}/{model}.jsonl"):  # now, and before
        shown = subprocess.run(["git", "show", f"{commit}:{layout}"], capture_output=True,
                               text=True)
        if shown.returncode == 0:
            break
    else:
        raise SystemExit(f"{commit} has no evaluation of {model} on {benchmark}")
    for name, text in ((f"{model}@old", shown.stdout),
                       (model, records_path(Path("evaluations"), benchmark, model).read_text())):
        path = records_path(folder, benchmark, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def ap_difference(folder: Path, benchmark: str, model: str, replicates: int,
                  reference: str) -> str:
    """AP50 (%) of ``model`` minus ``reference``'s records on the images both evaluated."""
    new, old = ({r["key"]: r for r in read_records(find_records(folder, benchmark, name))}
                for name in (model, reference))
    keys = sorted(set(new) & set(old))
    weights = record_weights([new[k] for k in keys], replicates, 0)
    images = [detection_inputs([records[k] for k in keys]) for records in (new, old)]
    points = [100 * average_precision(*inputs) for inputs in images]
    draws = [100 * ap_replicates(*inputs, weights) for inputs in images]
    delta = paired(points[0], points[1], *draws)
    return (f"{points[1]:.1f} -> {points[0]:.1f}: {delta.value:+.1f} "
            f"[{delta.low:+.1f}, {delta.high:+.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the other run's commit")
    parser.add_argument("--models", nargs="+", help="default: params.yaml eval.models")
    args = parser.parse_args()
    params = read_params()
    models = args.models or [m for m in params["eval"]["models"] if m != "mean_pose"]
    replicates = int(params["eval"]["bootstrap_replicates"])
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for model in models:
            for benchmark in ROWS:
                committed_records(args.commit, benchmark, model, folder)
                print_differences(folder, benchmark, model, f"{model}@old", replicates)


def print_differences(folder: Path, benchmark: str, model: str, reference: str,
                      replicates: int) -> None:
    """One line per row of ``ROWS[benchmark]`` and one for AP50: ``model`` minus
    ``reference``, both in ``folder`` (``records_path``), paired over images."""
    for metric, group in ROWS[benchmark]:
        delta = paired_difference(folder, benchmark, model, metric, group, replicates, 0,
                                  reference=reference)
        name = metric + (f"@{group}" if group else "")
        print(f"{model:13s} {benchmark:12s} {name:18s} " + (
            "no records" if delta is None else
            f"{delta.value:+.1f} [{delta.low:+.1f}, {delta.high:+.1f}]"))
    print(f"{model:13s} {benchmark:12s} {'ap50':18s} "
          + ap_difference(folder, benchmark, model, replicates, reference))


if __name__ == "__main__":
    main()
