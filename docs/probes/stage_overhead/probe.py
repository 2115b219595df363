"""What an evaluation stage costs besides its images. Not part of the pipeline.

    PYTHONPATH=. python docs/probes/stage_overhead/probe.py baseline          # from the root
    PYTHONPATH=. python docs/probes/stage_overhead/probe.py baseline --dvc    # and DVC's share

Run in the workspace of a ``dvc repro`` (its shards and ``models/``), nothing else running:

1. a process's start: ``python -c "import stages.evaluate"``, three times;
2. the model on every benchmark of ``eval.benchmarks``, once with one process per
   benchmark (as the ``evaluate@<model>-<benchmark>`` stages ran before the evaluation
   became one stage per model) and once with all of them in one process (as
   ``evaluate@<model>`` runs now: ``--benchmark`` naming them all). Each runs in a scratch
   folder whose ``data`` and ``models`` link to the workspace, so the workspace's
   ``evaluations/`` and ``metrics/`` stay as they are; the two runs' records and metrics
   must be byte-identical;
3. with ``--dvc``: ``dvc repro --force --single-item`` of the model's stage against its
   command alone, then ``git checkout`` of ``dvc.lock``, ``evaluations/`` and
   ``metrics/``, which that repro rewrote.

``output.txt`` was measured on 28ce734's code, where the one-process run called
``stages.evaluate.evaluate`` once per benchmark and the stage was
``evaluate@<model>-synth_single``.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipelines.evaluation import metrics_path, records_path

ROOT = Path.cwd()


def timed(command: list[str], cwd: Path = ROOT) -> float:
    """Seconds ``command`` took (its output discarded; a failure stops the probe)."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start


def scratch(parent: Path, name: str) -> Path:
    """A folder that looks like the workspace to ``stages.evaluate``."""
    folder = parent / name
    folder.mkdir()
    for link in ("data", "models"):
        (folder / link).symlink_to(ROOT / link)
    (folder / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return folder


def same_outputs(left: Path, right: Path, model: str, benchmarks: list[str]) -> bool:
    files = [records_path(Path("evaluations"), b, model) for b in benchmarks]
    files += [metrics_path(Path("metrics"), b, model) for b in benchmarks]
    return all(filecmp.cmp(left / f, right / f, shallow=False) for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--dvc", action="store_true")
    args = parser.parse_args()
    benchmarks = yaml.safe_load((ROOT / "params.yaml").read_text())["eval"]["benchmarks"]
    python = sys.executable
    starts = [timed([python, "-c", "import stages.evaluate"]) for _ in range(3)]
    print("import stages.evaluate: " + ", ".join(f"{s:.2f}" for s in starts) + " s")
    with tempfile.TemporaryDirectory() as parent:
        apart, together = scratch(Path(parent), "apart"), scratch(Path(parent), "together")
        seconds = {b: timed([python, "-m", "stages.evaluate", "--model", args.model,
                             "--benchmark", b], apart) for b in benchmarks}
        print(f"{args.model}, one process per benchmark: "
              + ", ".join(f"{b} {s:.1f}" for b, s in seconds.items())
              + f"; in all {sum(seconds.values()):.1f} s")
        one = timed([python, "-m", "stages.evaluate", "--model", args.model, "--benchmark",
                     *benchmarks], together)
        print(f"{args.model}, all {len(benchmarks)} benchmarks in one process: {one:.1f} s "
              f"(saves {sum(seconds.values()) - one:.1f} s); records and metrics "
              f"byte-identical: {same_outputs(apart, together, args.model, benchmarks)}")
    if args.dvc:
        stage = f"evaluate@{args.model}"
        command = timed([python, "-m", "stages.evaluate", "--model", args.model])
        repro = timed(["dvc", "repro", "--force", "--single-item", stage])
        subprocess.run(["git", "checkout", "--", "dvc.lock", "evaluations", "metrics"],
                       check=True, cwd=ROOT)
        print(f"{stage}: its command {command:.1f} s, dvc repro of the stage {repro:.1f} s "
              f"(DVC's own share {repro - command:.1f} s)")


if __name__ == "__main__":
    main()
