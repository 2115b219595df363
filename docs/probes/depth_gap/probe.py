"""Probe (not part of the pipeline): does the depth-order loss pull overlapping people
together in depth?

The five-seed replicates (``docs/replicates/2026-11-28-6f07864/``) show the fine-tune
with L_D alone colliding in more ``synth_crowd`` frames than the control fine-tuned
without scene losses (+13.4 frames). Eq. 4 acts only where two people overlap in the
image, and it moves both of them (the visible one forward, the other back), so it may
shrink their depth gap until the bodies meet. This probe measures that gap.

For each training seed's workspace (seed 0: this one; seeds 1-4:
``replicates/seed<k>/models``) and each model, on a test benchmark (default
``synth_crowd``): every pair of annotated people whose boxes overlap and who are both
matched to detections (the evaluation's own matching, ``pipelines.evaluation``), with
the predicted and the true distance between their roots along the camera axis. Prints
per seed and model the mean predicted gap, the mean true gap of the same pairs, their
ratio, the share of pairs predicted closer than 0.3 m (about a body's depth) and the
share whose order along the camera axis is right ("order"; added after the first output,
for ``docs/probes/withheld_3d_long/``); then each model minus the control of the same
seed, with its Student's t interval across seeds.

    PYTHONPATH=. python docs/probes/depth_gap/probe.py [benchmark]   # after the replicates

Other workspaces (``finetune_arms.sh``'s scratch seeds, say), models and benchmark
copies through the environment: ``GAP_WORKSPACES="0=/tmp/x/seed0/models 1=..."``,
``GAP_MODELS="no_scene_a full_a"`` (the first is the control) and ``GAP_SHARDS`` (the
folder of the benchmarks' shards; default ``data/shards/test``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from model.body import posed_in_camera
from model.camera import project
from model.io import load_network
from ops.metrics import depth_order_accuracy, match_people
from pipelines.evaluation import EvalParams, annotated_kp3d
from pipelines.shards import SHARDS, read_shards
from pipelines.training import TrainParams
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params, typed
from stages.evaluate import match_threshold
from stages.replicate import across_seeds

MODELS = os.environ.get("GAP_MODELS", "baseline no_scene no_collision no_depth full").split()
CONTROL = "no_scene" if "GAP_MODELS" not in os.environ else MODELS[0]
CLOSE_M = 0.3


def workspaces() -> dict[int, Path]:
    if "GAP_WORKSPACES" in os.environ:
        return {int(seed): Path(folder) for seed, folder in
                (entry.split("=", 1) for entry in os.environ["GAP_WORKSPACES"].split())}
    found = {0: Path("models")}
    for seed in range(1, 10):
        folder = Path("replicates") / f"seed{seed}" / "models"
        if folder.is_dir():
            found[seed] = folder
    return found


@torch.no_grad()
def pair_gaps(network, body, samples: list[dict], config: EvalParams,
              size: tuple[int, int]) -> np.ndarray:
    """``[N, 4]``: for each overlapping matched pair, the predicted and the true root-depth
    gap and the evaluation's depth-order count of the pair (correct, counted)."""
    rows = []
    for sample in samples:
        net_input = to_network_input(sample, *size)
        det = network(net_input["image"][None], intrinsics=[net_input["target"]["K"]])[0]
        keep = det["scores"] >= config.score_threshold
        det = {k: v[keep] for k, v in det.items() if torch.is_tensor(v)}
        K = sample["target"]["K"]
        kp3d = annotated_kp3d(sample["target"])
        annotated = kp3d[..., 3].bool().any(dim=-1)
        gt = kp3d[annotated][..., :3]
        pred = posed_in_camera(body, det["rotmats"], det["shape"], det["transl"]).joints["h36m17"]
        matches = match_people(project(pred, K), project(gt, K),
                               match_threshold(config, True, K))
        boxes = net_input["target"]["boxes"][annotated]
        overlap = (box_iou(boxes, boxes) > 0).triu(1).nonzero().tolist()
        for a, b in overlap:
            if matches[a] is None or matches[b] is None:
                continue
            pred_roots = pred[[matches[a], matches[b]], 0, 2]
            gt_roots = gt[[a, b], 0, 2]
            gaps = (abs(float(pred_roots[0] - pred_roots[1])),
                    abs(float(gt_roots[0] - gt_roots[1])))
            rows.append((*gaps, *depth_order_accuracy(pred_roots, gt_roots)))
    return np.asarray(rows).reshape(-1, 4)


def summary(rows: np.ndarray) -> dict[str, float]:
    gaps = rows[:, :2]
    return {"pairs": len(gaps), "pred": gaps[:, 0].mean(), "true": gaps[:, 1].mean(),
            "ratio": gaps[:, 0].mean() / gaps[:, 1].mean(),
            "close": 100.0 * (gaps[:, 0] < CLOSE_M).mean(),
            "order": 100.0 * rows[:, 2].sum() / rows[:, 3].sum()}


def main() -> None:
    benchmark = sys.argv[1] if len(sys.argv) > 1 else "synth_crowd"
    params = read_params()
    config = typed(EvalParams, params, "eval")
    common = typed(TrainParams, params, "train.common")
    size = (common.input_height, common.input_width)  # as the evaluation
    body = from_section(BodyModelParams, params, "body_model").build()
    samples = list(read_shards(Path(os.environ.get("GAP_SHARDS", SHARDS / "test")) / benchmark))
    results: dict[tuple[int, str], dict[str, float]] = {}
    print(f"# {benchmark}: overlapping matched pairs; gaps in metres; close: predicted "
          f"gap < {CLOSE_M} m, % of pairs")
    done: dict[Path, dict[str, float]] = {}  # the seeds share one baseline (a link)
    for seed, folder in workspaces().items():
        for name in MODELS:
            path = (folder / name / "model.pt").resolve()
            if path not in done:
                network, _ = load_network(path, body)
                done[path] = summary(pair_gaps(network, body, samples, config, size))
            row = results[seed, name] = done[path]
            print(f"seed {seed} {name:13s} pairs {row['pairs']:4d}  predicted gap "
                  f"{row['pred']:.3f}  true {row['true']:.3f}  ratio {row['ratio']:.3f}  "
                  f"close {row['close']:.1f}  order {row['order']:.1f}", flush=True)
    seeds = sorted({seed for seed, _ in results})
    print(f"# each model minus the control ({CONTROL}) of its seed; t interval across seeds")
    for name in MODELS:
        for key in ("ratio", "close", "order"):
            diffs = np.array([results[s, name][key] - results[s, CONTROL][key]
                              for s in seeds])
            mean = across_seeds(list(diffs))
            print(f"{name:13s} {key:5s} {mean.value:+.3f} [{mean.low:+.3f}, {mean.high:+.3f}]  "
                  f"per seed {' '.join(f'{d:+.3f}' for d in diffs)}")



if __name__ == "__main__":
    main()
