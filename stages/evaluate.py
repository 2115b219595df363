"""Stage ``evaluate@<model>-<benchmark>``: run a trained model over a benchmark's shards.

    python -m stages.evaluate --model full --benchmark synth_multi

This writes ``metrics/<benchmark>/<model>.json`` with flat keys, including the counts
of images, people and detections and the failed images. Every metric is computed on
every benchmark; the tables pick what the paper reports for each one. All protocols
are in :mod:`ops.metrics`. Per image:

1. Detections scoring at least ``eval.score_threshold`` (official: 0.05) are posed
   with the paper's camera conversion.
2. **Matching.** The official MuPoTS greedy 2D matching is applied to the projected
   ``h36m17`` joints. It gives 3DPCK All/Matched, and the pairs for the depth order.
   Panoptic-style MPJPE matches each person to the detection with the nearest
   root-relative pose instead. PA-MPJPE keeps the best detection per person, as the
   official H36M evaluator did.
3. **Collisions.** These are counted on the detections scoring at least
   ``eval.collision_score_threshold`` (64³ volumes). A diagnostic,
   ``collision_frames_matched``, counts them only among the predictions matched to
   distinct people, so duplicate detections of one person do not count.

An image that fails is counted, logged with its key and the error, and left out. The
stage fails when more than ``eval.max_failed_fraction`` of the images fail.
"""

from __future__ import annotations

import argparse
import json
import traceback
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from model.camera import project
from model.rcnn import ModelConfig, build_model
from ops.collision import collision_volume
from ops.metrics import depth_order_accuracy, match_people, mpjpe, pa_mpjpe, pck3d
from pipelines.poses import SyntheticPrior
from pipelines.shards import read_shards
from pipelines.transforms import to_network_input
from stages.common import BodyModelParams, from_section, read_params, write_json
from stages.train import typed


@dataclass(frozen=True)
class EvalParams:
    """``eval`` section."""

    models: tuple[str, ...]
    benchmarks: tuple[str, ...]
    score_threshold: float  # detections used by the metrics (official 0.05)
    collision_score_threshold: float  # detections checked for collisions
    max_failed_fraction: float


def load_model(params: dict, name: str, body):
    model = build_model(typed(ModelConfig, params, "model"), body, SyntheticPrior(0),
                        int(params["seed"]))
    model.load_state_dict(torch.load(f"models/{name}/model.pt", map_location="cpu"))
    return model.eval()


class Accumulator:
    """Sums of per-person and per-frame results of one benchmark."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, key: str, value: float, count: int = 1) -> None:
        self.sums[key] += value
        self.counts[key] += count

    def mean(self, key: str) -> float | None:
        return self.sums[key] / self.counts[key] if self.counts[key] else None


@torch.no_grad()
def evaluate_image(sample: dict, model, body, config: EvalParams, totals: Accumulator) -> None:
    """Add one image's results to ``totals``."""
    image, target = sample["image"], sample["target"]
    K = target["K"]
    detections = model(image[None], intrinsics=[K])[0]
    keep = detections["scores"] >= config.score_threshold
    det = {k: v[keep] for k, v in detections.items()}
    gt_body = body(target["rotmats"], target["shape"])
    gt_h36m = target["kp3d"][..., :3]
    gt_lsp = gt_body.joints["lsp14"] + target["transl"][:, None]
    people = gt_h36m.shape[0]
    totals.add("images", 1, 0)
    totals.add("people", people, 0)
    totals.add("detections", int(keep.sum()), 0)
    layout = sample["meta"].get("layout", "all")
    if len(det["scores"]):
        pred = body(det["rotmats"], det["shape"])
        pred_h36m = pred.joints["h36m17"] + det["transl"][:, None]
        pred_lsp = pred.joints["lsp14"] + det["transl"][:, None]
    else:
        pred_h36m = pred_lsp = gt_h36m[:0]
    matches = match_people(project(pred_h36m, K), project(gt_h36m, K))
    for person, match in enumerate(matches):
        if len(pred_h36m):
            errors = mpjpe(pred_h36m, gt_h36m[person].expand_as(pred_h36m))
            nearest = int(errors.argmin())
            totals.add("mpjpe_mm", float(errors[nearest]))
            totals.add(f"mpjpe_mm_{layout}", float(errors[nearest]))
            pa = pa_mpjpe(pred_lsp, gt_lsp[person].expand_as(pred_lsp))
            totals.add("pa_mpjpe_mm", float(pa.min()))
        pck = float(pck3d(pred_h36m[match:match + 1], gt_h36m[person:person + 1])) \
            if match is not None else 0.0
        totals.add("pck_all", pck)
        if match is not None:
            totals.add("pck_matched", pck)
    pairs = [(p, m) for p, m in enumerate(matches) if m is not None]
    if len(pairs) >= 2:
        gt_depth = torch.stack([target["transl"][p, 2] for p, _ in pairs])
        pred_depth = torch.stack([det["transl"][m, 2] for _, m in pairs])
        correct, total = depth_order_accuracy(pred_depth, gt_depth)
        totals.add("depth_order_acc", correct, total)
    vertices = (pred.vertices + det["transl"][:, None] if len(det["scores"])
                else gt_body.vertices[:0])
    colliding = det["scores"] >= config.collision_score_threshold
    volumes = collision_volume(vertices[colliding], body.faces, grid_size=64)
    totals.add("collision_frames", int((volumes > 0).any()), 1)
    # Diagnostic: only the predictions matched to distinct people (no duplicates).
    matched = [m for m in matches if m is not None]
    volumes = collision_volume(vertices[matched], body.faces, grid_size=64)
    totals.add("collision_frames_matched", int((volumes > 0).any()), 1)


def summarise(totals: Accumulator, failed: list[str], benchmark: str, model: str,
              body_model: str) -> dict:
    result = {"benchmark": benchmark, "model": model, "body_model": body_model,
              "dataset_kind": "synthetic" if benchmark.startswith("synth") else "real",
              "images": int(totals.sums["images"]), "people": int(totals.sums["people"]),
              "detections": int(totals.sums["detections"]), "failed_images": len(failed),
              "collision_frames": int(totals.sums["collision_frames"]),
              "collision_frames_matched": int(totals.sums["collision_frames_matched"]),
              "depth_pairs": totals.counts["depth_order_acc"],
              "matched_people": totals.counts["pck_matched"]}
    for key in sorted(totals.sums):
        if key.startswith(("mpjpe", "pa_mpjpe", "pck", "depth_order")):
            value = totals.mean(key)
            scale = 100.0 if key.startswith(("pck", "depth_order")) else 1.0
            if value is not None:  # a metric with nothing to measure is left out
                result[key] = round(value * scale, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="Evaluate one model on one benchmark.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--benchmark", required=True)
    args = parser.parse_args()
    params = read_params()
    config = typed(EvalParams, params, "eval")
    size = (params["train"]["common"]["input_height"], params["train"]["common"]["input_width"])
    torch.set_num_threads(2)
    body = from_section(BodyModelParams, params, "body_model").build()
    model = load_model(params, args.model, body)
    totals, failed = Accumulator(), []
    for sample in read_shards(Path("data/shards") / args.benchmark):
        try:
            network_input = to_network_input(sample, *size)
            evaluate_image({**sample, **network_input}, model, body, config, totals)
        except Exception as error:  # noqa: BLE001 - counted, reported, and bounded below
            failed.append(sample["key"])
            print(f"{sample['key']}: evaluation failed: {error!r}")
            traceback.print_exc()
    result = summarise(totals, failed, args.benchmark, args.model, body.name)
    write_json(Path("metrics") / args.benchmark / f"{args.model}.json", result)
    print(json.dumps(result))
    if failed:
        print(f"failed images: {failed}")
    images = result["images"] + len(failed)
    if len(failed) > config.max_failed_fraction * max(images, 1):
        raise RuntimeError(f"{len(failed)} of {images} images failed on {args.benchmark}")


if __name__ == "__main__":
    main()
