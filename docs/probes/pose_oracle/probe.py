"""Probe (not part of the pipeline): how far below the mean-pose row can a model get
that knows only *which* activity each person shows, or only their heading?

The synthetic people are posed from five activities (stand, walk, gesture, sit,
crouch) with Gaussian variation (``pipelines/synthetic/poses.py``). This probe scores,
on the test benchmarks' ground truth, bodies that carry no image evidence beyond an
oracle's answer:

1. ``mean``: the mean-pose reference of Tables 1-3 (stage ``mean_pose``: the chordal
   mean of the training rotations, global orientation included, and the mean shape);
2. ``mean + true heading``: the same articulation, turned by each person's true global
   rotation (MPJPE only: PA-MPJPE removes the rotation anyway);
3. ``activity mean``: the chordal mean of the training people *of the person's true
   activity*, global orientation included (``+ true heading``: turned by the true one).

PA-MPJPE on the Table 1 joints and MPJPE (root-centred, ``h36m17``) per person, then
the mean over a benchmark's split groups (Table 2's "mean of the scene types"; one
group on the other benchmarks). Run it in a workspace where ``dvc repro`` has written
the shards:

    python docs/probes/pose_oracle/probe.py synth_single synth_groups synth_multi
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import roma
import torch

from model.body import load_body_model
from ops.metrics import H36M_EVAL_JOINTS, mpjpe, pa_mpjpe
from pipelines.shards import SHARDS, read_shards
from stages.common import read_params


def chordal_mean(rotmats: torch.Tensor) -> torch.Tensor:
    """``[N, J, 3, 3]`` -> ``[J, 3, 3]``: the rotations nearest to the mean matrices (as
    stage ``mean_pose``)."""
    return roma.special_procrustes(rotmats.double().mean(dim=0)).float()


def training_means(datasets: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Mean rotations overall (``"all"``) and per activity, and the mean shape."""
    by_activity, shapes = defaultdict(list), []
    for dataset in datasets:
        for sample in read_shards(SHARDS / "train" / dataset):
            target = sample["target"]
            for person, activity in enumerate(sample["meta"]["activities"]):
                by_activity[activity].append(target["rotmats"][person])
                shapes.append(target["shape"][person])
    means = {"all": chordal_mean(torch.stack([r for v in by_activity.values() for r in v]))}
    means.update({activity: chordal_mean(torch.stack(v)) for activity, v in by_activity.items()})
    print("training people per activity:", {a: len(v) for a, v in sorted(by_activity.items())})
    return means, torch.stack(shapes).mean(dim=0)


@torch.no_grad()
def skeletons(body, means: dict[str, torch.Tensor], shape: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each mean articulation posed once with the mean shape and no global rotation:
    ``{name: h36m17 joints [17, 3]}``, pelvis at the origin (turning them by a global
    rotation R is what the body model does with R as rotation 0)."""
    rotmats = torch.stack(list(means.values())).clone()
    rotmats[:, 0] = torch.eye(3)
    joints = body(rotmats, shape.expand(len(means), -1)).joints["h36m17"]
    return dict(zip(means, joints, strict=True))


def oracle_errors(benchmark: str, means: dict[str, torch.Tensor],
                  skeleton: dict[str, torch.Tensor]) -> dict[str, dict[str, list[float]]]:
    """``{row: {split group: [per-person error, mm]}}`` for one test benchmark."""
    errors = defaultdict(lambda: defaultdict(list))
    for sample in read_shards(SHARDS / "test" / benchmark):
        target, group = sample["target"], sample["meta"]["split"]
        gt = target["kp3d"][..., :3].float()
        for person, activity in enumerate(sample["meta"]["activities"]):
            true_heading = target["rotmats"][person, 0]
            truth = gt[person:person + 1]
            for row, articulation, heading in (
                    ("mean", "all", None), ("mean + true heading", "all", true_heading),
                    ("activity mean", activity, None),
                    ("activity mean + true heading", activity, true_heading)):
                turn = means[articulation][0] if heading is None else heading  # its mean
                joints = (skeleton[articulation] @ turn.T)[None]  # row vectors: R x
                errors[f"MPJPE, {row}"][group].append(float(mpjpe(joints, truth)))
                if heading is None:
                    errors[f"PA-MPJPE, {row}"][group].append(float(pa_mpjpe(
                        joints[:, H36M_EVAL_JOINTS], truth[:, H36M_EVAL_JOINTS])))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="+")
    args = parser.parse_args()
    params = read_params()
    body = load_body_model(params["body_model"]["kind"])
    means, shape = training_means([n for n, role in params["datasets"].items() if role == "train"])
    skeleton = skeletons(body, means, shape)
    for benchmark in args.benchmarks:
        errors = oracle_errors(benchmark, means, skeleton)
        print(f"\n{benchmark} (mean over split groups of the per-person mean, mm)")
        reference = {}
        for row, groups in errors.items():
            value = sum(sum(v) / len(v) for v in groups.values()) / len(groups)
            metric = row.split(",")[0]
            reference.setdefault(metric, value)  # the first row of each metric: the mean pose
            people = sum(len(v) for v in groups.values())
            print(f"  {row:36s} {value:6.1f}  ({100 * (1 - value / reference[metric]):5.1f} % "
                  f"below the mean pose; {people} people)")


if __name__ == "__main__":
    main()
