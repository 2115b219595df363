"""Stage ``check``: every input the pipeline needs is there, checked before anything runs.

    python -m stages.check --out data/check.json

For each dataset in ``datasets``, the reader of its kind is built (the root, the
annotation files and their format are checked, see :mod:`pipelines.readers`), and the
configured body model is loaded (a missing or wrong SMPL file is named). Every problem
is collected and printed together, and the stage fails, so a user who forgot a dataset
or a root learns all of it at once, before any data is prepared or any training starts.
The report lists what was checked (no timestamps, no paths), so it only changes when
the datasets or the body model do; the ``body_model`` stage depends on it, which puts
this stage first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.readers import build_reader
from stages.common import BodyModelParams, from_section, read_params, section, write_json


def problems_of(params: dict) -> tuple[dict, list[str]]:
    """The report of what was checked and the problems found."""
    report, problems = {"datasets": {}}, []
    for name, role in sorted((params.get("datasets") or {}).items()):
        entry = (params.get("prepare") or {}).get(name)
        if entry is None:
            problems.append(f"datasets lists {name!r}, but params.yaml has no prepare.{name}")
            continue
        kind = entry.get("kind")
        report["datasets"][name] = {"kind": kind, "role": role}
        if kind == "synthetic":
            continue
        options = {k: v for k, v in entry.items() if k != "kind"}
        try:
            build_reader(kind, name, options, params.get("sources"),
                         params["body_model"]["kind"])
        except Exception as error:  # noqa: BLE001 - every problem is collected and shown
            problems.append(f"{name} ({kind}): {error}")
    prior = section(params, "train.common")["prior"]
    if prior != "synthetic" and not Path(prior).is_file():
        problems.append(f"train.common.prior: {prior} does not exist (an .npz of real poses, "
                        "e.g. SPIN's h36m_train.npz, or 'synthetic')")
    try:
        body = from_section(BodyModelParams, params, "body_model").build()
        report["body_model"] = {"kind": body.name, "h36m_joints": body.h36m_joint_source}
    except Exception as error:  # noqa: BLE001
        problems.append(f"body_model: {error}")
    return report, problems


def main() -> None:
    parser = argparse.ArgumentParser(description="Check every dataset and model file.")
    parser.add_argument("--out", default="data/check.json")
    args = parser.parse_args()
    report, problems = problems_of(read_params())
    if problems:
        print(f"{len(problems)} problem(s) with the configured inputs:")
        for problem in problems:
            print(f"  - {problem}")
        raise SystemExit(1)
    write_json(Path(args.out), report)
    print(f"checked {len(report['datasets'])} datasets and the {report['body_model']['kind']} "
          "body model")


if __name__ == "__main__":
    main()
