"""Paired differences between two scratch runs' ``baseline`` on the development copies
(``seed: 1000``), as ``docs/runs/paired_runs.py`` prints them for committed runs.

    PYTHONPATH=. python docs/probes/crop_partial/paired.py ARM REFERENCE

Each argument names records in this folder, ``<benchmark>/<name>.jsonl``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "runs"))
from paired_runs import ROWS, print_differences  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arm")
    parser.add_argument("reference")
    args = parser.parse_args()
    for benchmark in ROWS:
        if (HERE / benchmark / f"{args.arm}.jsonl").is_file():
            print_differences(HERE, benchmark, args.arm, args.reference, 2000)


if __name__ == "__main__":
    main()
